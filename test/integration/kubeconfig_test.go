//go:build integration

package integration

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/pdguard/pdguard/internal/report"
	"github.com/pdguard/pdguard/internal/status"
)

// kubeconfigWithContext writes a copy of the control plane's kubeconfig with one more
// context, name, whose namespace is ns; the current context keeps none.
func kubeconfigWithContext(t *testing.T, name, ns string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.cp.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	ctx := *cfg.Contexts[cfg.CurrentContext]
	ctx.Namespace = ns
	cfg.Contexts[name] = &ctx
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Without -n, check --live, status and report work in the namespace of the kubeconfig's
// context (--context picks it, as kubectl does), and report -A covers every namespace.
func TestCommandsDefaultToTheContextNamespace(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "kubectx")
	other := newGuarded(t, "kubectx-other")
	kubeconfig := kubeconfigWithContext(t, "pd-team", g.ns)
	conn := []string{"--kubeconfig", kubeconfig, "--context", "pd-team"}

	// helm template leaves the namespace out: the context's fills it.
	args := append([]string{"check", "--live", "--new", releaseFile(t, newTag), "--soak=" + serveSoak,
		"--user", adminUser, "--group", overrideGroup, "--verdict-key-secret", verdictKeySecret(), "-o", "json"}, conn...)
	stdout, stderr, code := run(t, g.ctx, env.binary, args...)
	var c liveCheck
	if err := json.Unmarshal([]byte(stdout), &c); err != nil || code != 0 || len(c.Objects) != 1 {
		t.Fatalf("check --live --context: exit %d, %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	if o := c.Objects[0]; o.Namespace != g.ns || o.Operation != "UPDATE" || !slices.Contains(c.rules(), "canary-partition") {
		t.Errorf("check --live --context decided %s %s/%s (rules %v), want UPDATE in the context's namespace %s pinning the canary", o.Operation, o.Namespace, o.Name, c.rules(), g.ns)
	}

	stdout, stderr, code = run(t, g.ctx, env.binary, append([]string{"status", "-o", "json", "--soak=" + serveSoak, "--verdict-key-secret", verdictKeySecret()}, conn...)...)
	var list struct {
		Items []status.Status `json:"items"`
	}
	if err := json.Unmarshal([]byte(stdout), &list); err != nil || code != 0 || len(list.Items) != 1 || list.Items[0].Namespace != g.ns || list.Items[0].Name != g.name {
		t.Errorf("status --context: exit %d, %v, want only %s/%s\nstdout: %s\nstderr: %s", code, err, g.ns, g.name, stdout, stderr)
	}

	reportSets := func(extra ...string) []string {
		t.Helper()
		stdout, stderr, code := run(t, g.ctx, env.binary, append([]string{"report", "-o", "json"}, extra...)...)
		var rep report.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 {
			t.Fatalf("report %q: exit %d, %v\nstdout: %s\nstderr: %s", extra, code, err, stdout, stderr)
		}
		var out []string
		for _, s := range rep.StatefulSets {
			out = append(out, s.Namespace+"/"+s.Name)
		}
		return out
	}
	if got := reportSets(conn...); !slices.Equal(got, []string{g.ns + "/" + g.name}) {
		t.Errorf("report --context = %v, want only the context namespace's %s/%s", got, g.ns, g.name)
	}
	if got := reportSets(append(conn, "-A")...); !slices.Contains(got, g.ns+"/"+g.name) || !slices.Contains(got, other.ns+"/"+other.name) {
		t.Errorf("report -A = %v, want every namespace's guarded StatefulSets, %s/%s and %s/%s among them", got, g.ns, g.name, other.ns, other.name)
	}
	// The current context has no namespace: default, where no guarded StatefulSet runs.
	if got := reportSets("--kubeconfig", kubeconfig); slices.Contains(got, g.ns+"/"+g.name) {
		t.Errorf("report without --context = %v, want the default namespace only", got)
	}
}
