//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/pdguard/pdguard/internal/report"
)

// auditKubeconfig is the admin kubeconfig with a second context made current that points
// at nothing listening: `webhook audit` only reaches the test apiserver when it honours
// --context.
func (g *guarded) auditKubeconfig() (path, context string) {
	g.t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.cp.KubeconfigPath())
	if err != nil {
		g.t.Fatal(err)
	}
	context = cfg.CurrentContext
	if _, ok := cfg.Contexts[context]; !ok {
		g.t.Fatalf("the admin kubeconfig has no current context %q", context)
	}
	cfg.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:9"}
	cfg.Contexts["nowhere"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: cfg.Contexts[context].AuthInfo}
	cfg.CurrentContext = "nowhere"
	path = filepath.Join(g.t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		g.t.Fatal(err)
	}
	return path, context
}

// audit runs `webhook audit -n NS --statefulset NAME -o format` through a kubeconfig whose
// current context is not the test apiserver, selecting the right one with --context.
func (g *guarded) audit(format string) string {
	g.t.Helper()
	kubeconfig, context := g.auditKubeconfig()
	stdout, stderr, code := run(g.t, g.ctx, env.binary, "audit", "--kubeconfig", kubeconfig, "--context", context,
		"-n", g.ns, "--statefulset", g.name, "--since", "1h", "-o", format)
	if code != 0 {
		g.t.Fatalf("webhook audit -o %s: exit %d: %s", format, code, stderr)
	}
	return stdout
}

// wantAudit is what `webhook audit` must say about the StatefulSet: the records, newest
// first, and the summary.
type wantAudit struct {
	records []auditRecord // oldest first, as they happened
	canary  *bool         // an open canary in the summary; nil: either
	verdict string        // the summary's last verdict, e.g. "Failed (pod)"
	blocked int           // at least
	by      string        // who made the last override; "" for none
	reason  string        // the override's reason
}

type auditRecord struct{ result, rule, text string }

// checkAudit runs `webhook audit` in json, table and html and checks each against want.
func (g *guarded) checkAudit(want wantAudit) {
	g.t.Helper()
	// The context check: the same command without --context goes to the current context.
	kubeconfig, _ := g.auditKubeconfig()
	if _, _, code := run(g.t, g.ctx, env.binary, "audit", "--kubeconfig", kubeconfig, "-n", g.ns, "-o", "json", "--request-timeout", "5s"); code == 0 {
		g.t.Error("webhook audit reached the apiserver through a current context that points nowhere")
	}

	raw := g.audit("json")
	var a report.Audit
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		g.t.Fatalf("webhook audit -o json printed no audit: %v\n%s", err, raw)
	}
	describe := func() string {
		var b strings.Builder
		for _, e := range a.Entries {
			fmt.Fprintf(&b, "\n  %s %s %s %s by %s: %.100s", e.Time.Format(time.RFC3339Nano), e.Result, e.Rule, e.Source, e.User, e.Message)
		}
		return b.String()
	}
	for i := 1; i < len(a.Entries); i++ {
		if a.Entries[i].Time.After(a.Entries[i-1].Time) {
			g.t.Errorf("records are not newest first: %s after %s:%s", a.Entries[i].Time, a.Entries[i-1].Time, describe())
		}
	}
	// Each wanted record is found, in reverse order of when it happened.
	at := len(a.Entries)
	var order []int
	for _, w := range want.records {
		found := -1
		for i := at - 1; i >= 0; i-- {
			e := a.Entries[i]
			if e.Result == w.result && e.Rule == w.rule && strings.Contains(e.Message, w.text) && e.Namespace == g.ns && e.StatefulSet == g.name {
				found = i
				break
			}
		}
		if found < 0 {
			g.t.Fatalf("webhook audit -o json has no %s %s record %q after the one before it:%s", w.result, w.rule, w.text, describe())
		}
		order, at = append(order, found), found
	}
	if len(a.Summaries) != 1 {
		g.t.Fatalf("webhook audit --statefulset %s summarises %d StatefulSets, want 1: %+v", g.name, len(a.Summaries), a.Summaries)
	}
	s := a.Summaries[0]
	g.t.Logf("webhook audit: %d records; summary: canary %q, last verdict %q, blocked %d, warned %d, last override %q by %q",
		len(a.Entries), s.OpenCanary, s.LastVerdict, s.Blocked, s.Warned, s.LastOverride, s.LastOverrideBy)
	if s.Namespace != g.ns || s.StatefulSet != g.name {
		g.t.Errorf("summary is about %s/%s, want %s/%s", s.Namespace, s.StatefulSet, g.ns, g.name)
	}
	if want.canary != nil && *want.canary != strings.Contains(s.OpenCanary, newImage) {
		g.t.Errorf("summary open canary %q, want one to %s: %v", s.OpenCanary, newImage, *want.canary)
	}
	if s.LastVerdict != want.verdict || s.Blocked < want.blocked {
		g.t.Errorf("summary last verdict %q, blocked %d; want %q and at least %d", s.LastVerdict, s.Blocked, want.verdict, want.blocked)
	}
	if s.LastOverrideBy != want.by || !strings.Contains(s.LastOverride, want.reason) {
		g.t.Errorf("summary last override %q by %q, want %q by %q", s.LastOverride, s.LastOverrideBy, want.reason, want.by)
	}

	// The table: the summary row, then the same records in the same order.
	table := g.audit("table")
	row := fmt.Sprintf("%s/%s", g.ns, g.name)
	summaryLine := ""
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, row+" ") {
			summaryLine = l
			break
		}
	}
	if summaryLine == "" || !strings.Contains(summaryLine, want.verdict) || (want.by != "" && !strings.Contains(summaryLine, "by "+want.by)) ||
		(want.canary != nil && *want.canary != strings.Contains(summaryLine, newImage)) {
		g.t.Errorf("webhook audit -o table has no summary row for %s with verdict %q, override by %q, canary %v:\n%s", row, want.verdict, want.by, s.OpenCanary, table)
	}
	last := len(table)
	for k, w := range want.records {
		e := a.Entries[order[k]]
		line := fmt.Sprintf("%s  %s", e.Time.UTC().Format(time.RFC3339), row)
		i := strings.LastIndex(table[:last], line)
		if i < 0 {
			g.t.Errorf("webhook audit -o table lacks the %s %s record at %s above the one before it:\n%s", w.result, w.rule, e.Time, table)
			continue
		}
		last = i
	}

	page := g.audit("html")
	for _, text := range []string{"<title>pdguard audit</title>", "Timeline of " + row, "<td>" + row + "</td>"} {
		if !strings.Contains(page, text) {
			g.t.Errorf("webhook audit -o html lacks %q", text)
		}
	}
	if want.by != "" && !strings.Contains(page, `<span class="result warn">overridden</span>`) {
		g.t.Error("webhook audit -o html shows no overridden record")
	}
	if !strings.Contains(page, `<span class="result fail">blocked</span> <strong>partition-gate</strong>`) {
		g.t.Error("webhook audit -o html shows no blocked partition-gate record")
	}
	for _, external := range []string{"http://", "https://", "<script", "<link"} {
		if strings.Contains(strings.ToLower(page), external) {
			g.t.Errorf("webhook audit -o html is not self-contained: it has %q", external)
		}
	}
}
