//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/pdguard/pdguard/internal/report"
	"github.com/pdguard/pdguard/internal/rollout"
)

// run runs a command and returns stdout, stderr and the exit code; a command that could
// not be started fails the test.
func run(t *testing.T, ctx context.Context, name string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("running %s %q: %v", name, args, err)
	return "", "", -1
}

func (g *guarded) kubectl(args ...string) string {
	g.t.Helper()
	args = append([]string{"--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns}, args...)
	out, stderr, code := run(g.t, g.ctx, filepath.Join(env.cp.BinDir(), "kubectl"), args...)
	if code != 0 {
		g.t.Fatalf("kubectl %q: exit %d: %s", args, code, stderr)
	}
	return out
}

// `webhook report` must show what the apiserver holds: the StatefulSet with its open
// canary, the canary's verdict, and the rollout pdguard blocked.
func TestReport(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "report")
	g.openCanary()
	_, _, err := g.patch(adminConfig(), partitionPatch(0))
	mustDeny(t, err, "lowering the partition before a verdict")
	g.serveLog(1, "in-progress.log")
	g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress })

	// Events reach the apiserver through a broadcaster, a moment after the denial.
	var rep report.Report
	var out string
	began := time.Now()
	g.eventually("the report to list the RolloutBlocked event", func() (bool, string) {
		stdout, stderr, code := run(t, g.ctx, env.binary, "report", "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns, "-o", "json")
		out = stdout
		if code != 0 {
			return false, fmt.Sprintf("exit %d: %s", code, stderr)
		}
		rep = report.Report{}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			return false, fmt.Sprintf("not JSON: %v: %s", err, stdout)
		}
		return slices.ContainsFunc(rep.Events, func(e report.Event) bool { return e.Reason == "RolloutBlocked" }), stdout
	})
	t.Logf("report listed the RolloutBlocked event %s after the verdict", time.Since(began).Round(time.Millisecond))

	if len(rep.StatefulSets) != 1 {
		t.Fatalf("report lists %d StatefulSets, want 1:\n%s", len(rep.StatefulSets), out)
	}
	s := rep.StatefulSets[0]
	if s.Namespace != g.ns || s.Name != g.name || s.Replicas != 2 || s.Partition != 1 || !s.CanaryOpen || s.Image != newImage || s.StableImage != oldImage {
		t.Errorf("report entry = %+v, want %s/%s, 2 replicas, partition 1, canary open on %s from %s", s, g.ns, g.name, newImage, oldImage)
	}
	wantPods := []report.PodStatus{
		{Name: podName(0), Image: oldImage, Ready: true},
		{Name: podName(1), Image: newImage, Ready: true, Verdict: rollout.VerdictInProgress},
	}
	if len(s.Pods) != len(wantPods) {
		t.Fatalf("report lists pods %+v, want %d", s.Pods, len(wantPods))
	}
	for i, want := range wantPods {
		got := s.Pods[i]
		if got.Name != want.Name || got.Image != want.Image || got.Ready != want.Ready || got.Verdict != want.Verdict || got.Revision == "" {
			t.Errorf("report pod %d = %+v, want %+v with a revision", i, got, want)
		}
	}
	if s.Pods[0].Revision == s.Pods[1].Revision {
		t.Errorf("stable and canary pod on the same revision %s", s.Pods[0].Revision)
	}
	i := slices.IndexFunc(rep.Events, func(e report.Event) bool { return e.Reason == "RolloutBlocked" })
	if e := rep.Events[i]; e.Object != g.name || e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, "partition-gate") {
		t.Errorf("RolloutBlocked event = %+v, want a Warning about %s naming partition-gate", e, g.name)
	}
	if !slices.ContainsFunc(rep.Events, func(e report.Event) bool { return e.Reason == "CanaryStarted" }) {
		t.Errorf("report does not list the CanaryStarted event: %+v", rep.Events)
	}

	text, stderr, code := run(t, g.ctx, env.binary, "report", "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns)
	if code != 0 {
		t.Fatalf("report -o text: exit %d: %s", code, stderr)
	}
	if m := missing(text, g.ns+"/"+g.name, "open (stable "+oldImage+")", "verdict=InProgress", "RolloutBlocked"); m != "" {
		t.Errorf("text report does not mention %q:\n%s", m, text)
	}
}

// `webhook check` on what kubectl prints must decide as the apiserver did with the
// same change, rule and words included, so a pipeline can trust it before helm upgrade.
func TestCheckDecidesLikeTheAPIServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// canary opens one first
		canary   bool
		edit     func(*appsv1.StatefulSet)
		wantRule string
		// sameWords compares the whole denial; with pods involved only up to this marker,
		// since their state moves between kubectl's read and the apiserver's.
		upTo string
	}{
		{
			name:     "an image change bundled with an env change",
			edit:     bundle,
			wantRule: "bundled-config-and-version",
		},
		{
			name:     "lowering the partition before the canary has a verdict",
			canary:   true,
			edit:     func(s *appsv1.StatefulSet) { zero := int32(0); s.Spec.UpdateStrategy.RollingUpdate.Partition = &zero },
			wantRule: "partition-gate",
			upTo:     "the canary is not proven.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGuarded(t, "check")
			if tc.canary {
				g.openCanary()
			}
			dir := t.TempDir()
			oldFile := filepath.Join(dir, "live.yaml")
			podsFile := filepath.Join(dir, "pods.yaml")
			newFile := filepath.Join(dir, "new.yaml")
			// The object kubectl printed, edited, is what the apiserver gets; when the
			// StatefulSet controller wrote status in between, read both again.
			var apiReason string
			g.eventually("the apiserver's answer to the edited kubectl output", func() (bool, string) {
				live := g.kubectl("get", "statefulset", g.name, "-o", "yaml")
				pods := g.kubectl("get", "pods", "-l", "app.kubernetes.io/instance=pd-upgrade-example", "-o", "yaml")
				var requested appsv1.StatefulSet
				if err := yaml.Unmarshal([]byte(live), &requested); err != nil {
					t.Fatal(err)
				}
				tc.edit(&requested)
				newYAML, err := yaml.Marshal(&requested)
				if err != nil {
					t.Fatal(err)
				}
				_, err = env.admin.AppsV1().StatefulSets(g.ns).Update(g.ctx, &requested, metav1.UpdateOptions{})
				if apierrors.IsConflict(err) {
					return false, err.Error()
				}
				_, apiReason, _ = strings.Cut(mustDeny(t, err, tc.name), "denied the request: ")
				for file, content := range map[string]string{oldFile: live, podsFile: pods, newFile: string(newYAML)} {
					if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return true, ""
			})

			stdout, stderr, code := run(t, g.ctx, env.binary, "check", "--old", oldFile, "--new", newFile, "--pods", podsFile,
				"--soak="+serveSoak, "--user", adminUser, "--group", overrideGroup, "-o", "json")
			if code != 1 {
				t.Fatalf("check exit code = %d, want 1 (denied) like the apiserver; stdout %s stderr %s", code, stdout, stderr)
			}
			var rep struct {
				Allowed bool `json:"allowed"`
				Objects []struct {
					Namespace string `json:"namespace"`
					Allowed   bool   `json:"allowed"`
					Findings  []struct {
						Rule, Severity, Message string
					} `json:"findings"`
				} `json:"objects"`
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Objects) != 1 {
				t.Fatalf("check -o json printed no JSON report of one object: %v\n%s", err, stdout)
			}
			res := rep.Objects[0]
			var denials []string
			for _, f := range res.Findings {
				if f.Severity == "deny" {
					denials = append(denials, "["+f.Rule+"] "+f.Message)
				}
			}
			if rep.Allowed || res.Allowed || res.Namespace != g.ns || len(denials) != 1 || !strings.HasPrefix(denials[0], "["+tc.wantRule+"]") {
				t.Fatalf("check = %+v, want denied in %s by %s with one reason", res, g.ns, tc.wantRule)
			}
			checkReason := "pdguard: " + denials[0]
			if tc.upTo != "" {
				apiReason, checkReason = through(apiReason, tc.upTo), through(checkReason, tc.upTo)
			}
			if checkReason != apiReason {
				t.Errorf("check and apiserver disagree:\ncheck:     %s\napiserver: %s", checkReason, apiReason)
			}
		})
	}
}

func through(s, marker string) string {
	if i := strings.Index(s, marker); i >= 0 {
		return s[:i+len(marker)]
	}
	return s
}
