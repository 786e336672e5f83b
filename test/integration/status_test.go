//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/status"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// The shared pdguard keeps its verdict key in the namespace it runs for (no POD_NAMESPACE).
// verdictKeySecret is the key Secret of the shared pdguard, in the namespace it runs in.
func verdictKeySecret() string { return env.guard.Identity.Namespace + "/pdguard-verdict-key" }

// liveCheck is one `check --live` answer.
type liveCheck struct {
	Allowed bool `json:"allowed"`
	Objects []struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Operation string `json:"operation"`
		Allowed   bool   `json:"allowed"`
		Patch     []struct {
			Path  string `json:"path"`
			Value any    `json:"value"`
		} `json:"patch"`
		Findings []struct {
			Rule, Severity, Message string
		} `json:"findings"`
	} `json:"objects"`
	Ignored []struct{ Kind string } `json:"ignored"`
	Notes   []string                `json:"notes"`
}

func (c liveCheck) rules() []string {
	var out []string
	for _, o := range c.Objects {
		for _, f := range o.Findings {
			out = append(out, f.Rule)
		}
	}
	return out
}

// releaseFile writes what helm template prints for the release: a ConfigMap and the
// StatefulSet with the tag, partition 0 and no namespace.
func releaseFile(t *testing.T, tag string) string {
	t.Helper()
	sts := chartStatefulSet("")
	fixture.WithTag(sts, tag)
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "pd-upgrade-example-pingdirectory-env-vars"}}
	var b strings.Builder
	for _, o := range []any{cm, sts} {
		raw, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(raw)
	}
	path := filepath.Join(t.TempDir(), "release.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (g *guarded) checkLive(file string, wantCode int, extra ...string) liveCheck {
	g.t.Helper()
	args := append([]string{"check", "--live", "--new", file, "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns,
		"--soak=" + serveSoak, "--user", adminUser, "--group", overrideGroup, "--verdict-key-secret", verdictKeySecret(), "-o", "json"}, extra...)
	stdout, stderr, code := run(g.t, g.ctx, env.binary, args...)
	if code != wantCode {
		g.t.Fatalf("check --live: exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, stdout, stderr)
	}
	var c liveCheck
	if err := json.Unmarshal([]byte(stdout), &c); err != nil || len(c.Objects) != 1 {
		g.t.Fatalf("check --live -o json is not a report of one StatefulSet: %v\n%s", err, stdout)
	}
	if o := c.Objects[0]; o.Namespace != g.ns || o.Name != g.name || o.Operation != "UPDATE" {
		g.t.Fatalf("check --live decided %s %s/%s, want UPDATE %s/%s", o.Operation, o.Namespace, o.Name, g.ns, g.name)
	}
	if len(c.Ignored) != 1 || c.Ignored[0].Kind != "ConfigMap" {
		g.t.Errorf("check --live ignored %+v, want the ConfigMap", c.Ignored)
	}
	return c
}

func (g *guarded) status() status.Status {
	g.t.Helper()
	stdout, stderr, code := run(g.t, g.ctx, env.binary, "status", g.name, "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns,
		"--soak="+serveSoak, "--verdict-key-secret", verdictKeySecret(), "-o", "json")
	if code != 0 {
		g.t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var list struct {
		Kind  string          `json:"kind"`
		Items []status.Status `json:"items"`
	}
	if err := json.Unmarshal([]byte(stdout), &list); err != nil || list.Kind != "RolloutStatusList" || len(list.Items) != 1 {
		g.t.Fatalf("status -o json is not a list of one status: %v\n%s", err, stdout)
	}
	return list.Items[0]
}

// eventuallyStatus waits until status reports what ok accepts: the verdict and the soak
// arrive in the background.
func (g *guarded) eventuallyStatus(what string, ok func(status.Status) bool) status.Status {
	g.t.Helper()
	var s status.Status
	g.eventually(what, func() (bool, string) {
		s = g.status()
		return ok(s), fmt.Sprintf("%+v", s)
	})
	return s
}

// `check --live` and `status` through the kubeconfig, during an open canary, a blocked
// promotion and after the finished rollout: check must answer as the apiserver does, and
// status must say what to run next.
func TestStatusAndLiveCheck(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "status")
	newRelease := releaseFile(t, newTag)

	if s := g.status(); s.Phase != status.PhaseStable || s.Next.Kind != status.StepNone || s.CanaryOpen {
		t.Fatalf("status before the upgrade = %+v, want stable with nothing to do", s)
	}

	// The tag change: check --live pins the canary as the mutating webhook will.
	c := g.checkLive(newRelease, 0)
	if !c.Allowed || !slices.Contains(c.rules(), "canary-partition") || !slices.ContainsFunc(c.Objects[0].Patch, func(p struct {
		Path  string `json:"path"`
		Value any    `json:"value"`
	}) bool {
		return p.Path == "/spec/updateStrategy/rollingUpdate/partition" && fmt.Sprint(p.Value) == "1"
	}) {
		t.Fatalf("check --live of the new tag = %+v, want allowed with the partition pinned to 1", c)
	}
	if len(c.Notes) != 0 {
		t.Errorf("check --live could read the verdict key, yet notes %q", c.Notes)
	}

	g.openCanary()
	s := g.status()
	if s.Phase != status.PhaseCanary || !s.CanaryOpen || s.Partition != 1 || s.StableImage != oldImage || s.UpdateImage != newImage || len(s.Blockers) == 0 || s.Next.Kind != status.StepWait {
		t.Fatalf("status with the canary open = %+v, want canary from %s to %s, blocked, wait for verdict", s, oldImage, newImage)
	}
	if len(s.Pods) != 2 || !s.Pods[1].Canary || s.Pods[0].Canary || s.Pods[1].Revision == s.Pods[0].Revision {
		t.Errorf("status pods = %+v, want pod 1 the canary on its own revision", s.Pods)
	}

	// The same helm upgrade again (partition 0) before a verdict: blocked, by check and by
	// the apiserver alike.
	c = g.checkLive(newRelease, 1)
	if c.Allowed || !slices.Contains(c.rules(), "partition-gate") {
		t.Fatalf("check --live of the promotion before a verdict = %+v, want denied by partition-gate", c)
	}
	_, _, err := g.patch(adminConfig(), partitionPatch(0))
	mustDeny(t, err, "lowering the partition before a verdict")
	unchecked := g.checkLive(newRelease, 1, "--verdict-key-secret", "default/no-such-secret")
	if len(unchecked.Notes) != 1 || !strings.Contains(unchecked.Notes[0], "verdicts are trusted unchecked") {
		t.Errorf("check --live without a readable key notes %q, want that verdicts are trusted unchecked", unchecked.Notes)
	}

	g.serveLog(1, "success-migration.log")
	g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	s = g.eventuallyStatus("status to say promote", func(s status.Status) bool { return s.Next.Kind == status.StepHelm })
	if s.Next.Value != status.PartitionValue || s.Next.To != "0" || !strings.Contains(s.Next.Text, status.SameUpgrade) || !strings.Contains(s.Next.Command, "-n "+g.ns) || len(s.Blockers) != 0 {
		t.Errorf("status with a proven canary = %+v, want the partition value to 0 in the same helm upgrade", s)
	}
	c = g.eventuallyCheck(newRelease)
	if !c.Allowed {
		t.Fatalf("check --live of the promotion after the verdict = %+v, want allowed", c)
	}

	g.promote()
	g.waitImages(newImage, newImage)
	s = g.eventuallyStatus("status to settle", func(s status.Status) bool { return s.Phase == status.PhaseStable })
	if s.Next.Kind != status.StepNone || s.CanaryOpen || s.StableImage != newImage {
		t.Errorf("status after the rollout = %+v, want stable on %s with nothing to do", s, newImage)
	}
	if c := g.checkLive(newRelease, 0); !c.Allowed || len(c.Objects[0].Patch) != 0 {
		t.Errorf("check --live of the finished release = %+v, want allowed with no patch", c)
	}
}

// eventuallyCheck waits until check --live allows the release: the soak counts whole
// seconds of Ready.
func (g *guarded) eventuallyCheck(file string) liveCheck {
	g.t.Helper()
	var c liveCheck
	g.eventually("check --live to allow the promotion", func() (bool, string) {
		args := []string{"check", "--live", "--new", file, "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns,
			"--soak=" + serveSoak, "--user", adminUser, "--group", overrideGroup, "--verdict-key-secret", verdictKeySecret(), "-o", "json"}
		stdout, _, code := run(g.t, g.ctx, env.binary, args...)
		c = liveCheck{}
		_ = json.Unmarshal([]byte(stdout), &c)
		return code == 0, stdout
	})
	return c
}

// syncBuffer is a command's stdout, read while the command still writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `status -w` started during an open canary prints each state the rollout passes through
// (waiting for the verdict, proven, the promotion) and exits 0 by itself once every pod runs
// the new revision; a StatefulSet that does not exist is an error, not an empty watch.
func TestStatusWatchUntilSettled(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "statusw")
	g.openCanary()

	var stdout, stderr syncBuffer
	cmd := exec.CommandContext(g.ctx, env.binary, "status", g.name, "-w", "--interval=250ms", "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns,
		"--soak="+serveSoak, "--verdict-key-secret", verdictKeySecret())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	header := g.ns + "/" + g.name + ": "
	g.eventually("status -w to print the open canary", func() (bool, string) {
		return strings.Contains(stdout.String(), header+"canary, partition 1 of 2 replicas, canary open"), stdout.String()
	})
	select {
	case err := <-exited:
		t.Fatalf("status -w exited during the open canary: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	default:
	}

	g.serveLog(1, "success-migration.log")
	g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	g.eventually("status -w to print the proven canary", func() (bool, string) {
		return strings.Contains(stdout.String(), "next: promote: the canary is proven"), stdout.String()
	})
	g.promote()
	g.waitImages(newImage, newImage)

	var err error
	g.eventually("status -w to exit after the rollout settled", func() (bool, string) {
		select {
		case err = <-exited:
			return true, ""
		default:
			return false, stdout.String()
		}
	})
	out := stdout.String()
	if err != nil {
		t.Fatalf("status -w: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	// In order: waiting for the verdict, the verdict and the helm value to promote with,
	// then the settled set.
	steps := []string{
		header + "canary, partition 1 of 2 replicas, canary open",
		"next: wait for verdict",
		rollout.VerdictSucceeded,
		"next: promote: the canary is proven; run " + status.SameUpgrade + ", which sends " + status.PartitionValue + "=0",
		header + "stable, partition 0 of 2 replicas",
		"next: nothing to do: every pod runs " + newImage,
	}
	rest := out
	for _, s := range steps {
		i := strings.Index(rest, s)
		if i < 0 {
			t.Fatalf("status -w output lacks %q after the states before it:\n%s", s, out)
		}
		rest = rest[i+len(s):]
	}
	if strings.Contains(rest, header) {
		t.Errorf("status -w printed again after the settled state:\n%s", out)
	}

	for _, args := range [][]string{{"status", "no-such-set"}, {"status", "no-such-set", "-w"}} {
		args = append(args, "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns)
		stdout, stderr, code := run(t, g.ctx, env.binary, args...)
		want := fmt.Sprintf("no guarded StatefulSet %q in namespace %s", "no-such-set", g.ns)
		if code != 2 || !strings.Contains(stderr, want) || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 saying %q", args, code, stdout, stderr, want)
		}
	}
}
