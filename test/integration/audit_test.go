//go:build integration

package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/audit/openreports"
	"github.com/pdguard/pdguard/internal/rollout"
)

func reportClient(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := reportsv1alpha1.Install(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(adminConfig(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitResults waits until the StatefulSet's Report holds results that ok accepts.
func (g *guarded) waitResults(what string, ok func([]reportsv1alpha1.ReportResult) bool) *reportsv1alpha1.Report {
	g.t.Helper()
	c := reportClient(g.t)
	var rep reportsv1alpha1.Report
	g.eventually(what, func() (bool, string) {
		if err := c.Get(g.ctx, types.NamespacedName{Namespace: g.ns, Name: openreports.ReportName(g.name)}, &rep); err != nil {
			return false, err.Error()
		}
		return ok(rep.Results), describeResults(rep.Results)
	})
	return &rep
}

func describeResults(rs []reportsv1alpha1.ReportResult) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  %s %s %s by %s: %.120s", r.Result, r.Rule, r.Properties["kind"], r.Properties["user"], r.Description)
	}
	return fmt.Sprintf("%d results:%s", len(rs), b.String())
}

func matching(rs []reportsv1alpha1.ReportResult, result, rule, text string) []reportsv1alpha1.ReportResult {
	var out []reportsv1alpha1.ReportResult
	for _, r := range rs {
		if string(r.Result) == result && r.Rule == rule && strings.Contains(r.Description, text) {
			out = append(out, r)
		}
	}
	return out
}

// Blocked, overridden and proven rollouts and the verdicts in between all end up as
// results of one Report per StatefulSet, each once.
func TestAuditReportResults(t *testing.T) {
	t.Parallel()
	t.Run("blocked, retried, refused while InProgress and again once Failed, then overridden", func(t *testing.T) {
		t.Parallel()
		g := newGuarded(t, "audit-fail")
		sts := g.get()
		for range 2 {
			_, _, err := g.change(adminConfig(), bundle)
			mustDeny(t, err, "a bundled change")
		}
		rep := g.waitResults("the bundled denial", func(rs []reportsv1alpha1.ReportResult) bool {
			return len(matching(rs, "fail", "bundled-config-and-version", "")) > 0
		})
		if rep.Source != "pdguard" || len(rep.OwnerReferences) != 1 || rep.OwnerReferences[0].UID != sts.UID || rep.Scope == nil || rep.Scope.Name != g.name {
			t.Errorf("Report %s is not pdguard's, scoped to and owned by StatefulSet %s (uid %s): source %q owners %+v scope %+v", rep.Name, g.name, sts.UID, rep.Source, rep.OwnerReferences, rep.Scope)
		}
		denied := matching(rep.Results, "fail", "bundled-config-and-version", "")
		if len(denied) != 1 {
			t.Errorf("the retried identical request gave %d results, want 1:%s", len(denied), describeResults(rep.Results))
		}
		p := denied[0].Properties
		for k, want := range map[string]string{
			"user": adminUser, "operation": "UPDATE", "fromImage": oldImage, "toImage": newImage, "fromVersion": oldVersion, "toVersion": newVersion,
			"mode": "enforce", "outcome": "denied", "uid": string(sts.UID), "webhook": "validate",
		} {
			if p[k] != want {
				t.Errorf("property %s = %q, want %q", k, p[k], want)
			}
		}
		if !strings.Contains(p["groups"], overrideGroup) || p["key"] == "" || p["updateRevision"] == "" {
			t.Errorf("groups %q key %q updateRevision %q: want the user's groups, a key and the update revision", p["groups"], p["key"], p["updateRevision"])
		}

		g.openCanary()
		g.serveLog(1, "in-progress.log")
		g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress })
		_, _, err := g.patch(adminConfig(), partitionPatch(0))
		mustDeny(t, err, "a promotion while replace-profile runs")
		g.serveLog(1, "failed-masked-step-error.log")
		g.waitVerdict(1, "Failed", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictFailed })
		g.eventually("the promotion refused on the Failed verdict", func() (bool, string) {
			_, _, err := g.patch(adminConfig(), partitionPatch(0))
			return err != nil && strings.Contains(apiMessage(err), "Failed"), fmt.Sprint(err)
		})
		rep = g.waitResults("two partition-gate denials and a Failed verdict", func(rs []reportsv1alpha1.ReportResult) bool {
			return len(matching(rs, "fail", "partition-gate", "")) >= 2 && len(matching(rs, "fail", "replace-profile", "Failed")) >= 1
		})
		gate := matching(rep.Results, "fail", "partition-gate", "")
		if gate[0].Description == gate[1].Description {
			t.Errorf("the InProgress and the Failed denials have one message: %s", gate[0].Description)
		}
		// At least one: a tag change retried after a storage conflict passes admission twice.
		if len(matching(rep.Results, "pass", "canary-partition", newImage)) == 0 {
			t.Errorf("no canary-partition result for the opened canary:%s", describeResults(rep.Results))
		}
		verdict := matching(rep.Results, "fail", "replace-profile", "Failed")[0]
		if verdict.Properties["pod"] != podName(1) || verdict.Properties["verdict"] != "Failed" || verdict.Properties["user"] != "pdguard" {
			t.Errorf("verdict result properties %v: want pod %s, verdict Failed, by pdguard", verdict.Properties, podName(1))
		}
		gateEvents := 0
		events, _ := g.events()
		for _, e := range events {
			if e.Reason == "RolloutBlocked" && strings.Contains(e.Note, "partition-gate") {
				gateEvents++
			}
		}
		if gateEvents < 2 {
			t.Errorf("%d RolloutBlocked partition-gate Events, want one per different denial", gateEvents)
		}

		// `webhook audit` reads the same back through a kubeconfig, newest first.
		open := true
		history := []auditRecord{
			{"fail", "bundled-config-and-version", "a version change goes alone"},
			{"fail", "partition-gate", "InProgress"},
			{"fail", "replace-profile", "Failed"},
			{"fail", "partition-gate", "Failed"},
		}
		g.checkAudit(wantAudit{records: history, canary: &open, verdict: "Failed (" + podName(1) + ")", blocked: 3})

		body := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`, rollout.OverrideReasonAnnotation, "INC-1 restore writes")
		if _, _, err := g.patch(adminConfig(), body); err != nil {
			t.Fatalf("the override was refused: %v", err)
		}
		rep = g.waitResults("the override", func(rs []reportsv1alpha1.ReportResult) bool {
			return len(matching(rs, "warn", "override", "")) == 1
		})
		if o := matching(rep.Results, "warn", "override", "")[0]; o.Properties["override"] != "true" || o.Properties["user"] != adminUser {
			t.Errorf("override result properties %v", o.Properties)
		}
		if rep.Summary.Fail < 4 || rep.Summary.Warn < 1 || rep.Summary.Pass < 1 {
			t.Errorf("summary %+v does not count the results:%s", rep.Summary, describeResults(rep.Results))
		}
		g.eachVerdictOnce(1, rollout.VerdictInProgress, rollout.VerdictFailed)
		g.checkAudit(wantAudit{
			records: append(history, auditRecord{"warn", "override", "INC-1 restore writes"}),
			verdict: "Failed (" + podName(1) + ")", blocked: 3, by: adminUser, reason: "INC-1 restore writes",
		})
	})

	t.Run("a proven canary and its promotion", func(t *testing.T) {
		t.Parallel()
		g := newGuarded(t, "audit-pass")
		g.openCanary()
		g.serveLog(1, "success-migration.log")
		g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
		g.promote()
		rep := g.waitResults("the Succeeded verdict and the promotion", func(rs []reportsv1alpha1.ReportResult) bool {
			return len(matching(rs, "pass", "replace-profile", "Succeeded")) == 1 && len(matching(rs, "pass", "partition-gate", "promotion admitted")) == 1
		})
		if n := len(matching(rep.Results, "pass", "canary-partition", "")); n != 1 {
			t.Errorf("%d canary-partition results, want 1:%s", n, describeResults(rep.Results))
		}
		g.eachVerdictOnce(1, rollout.VerdictSucceeded)
	})
}

// eachVerdictOnce checks the Events about the pod with the ordinal: no two with the same
// reason and note, and each replace-profile verdict reported once, as one Event of count
// 1 (a repeated denial may be a series; a verdict is reported when it changes). want are
// verdicts that must have been reported.
func (g *guarded) eachVerdictOnce(ordinal int32, want ...string) {
	g.t.Helper()
	pod := podName(ordinal)
	events, err := g.events()
	if err != nil {
		g.t.Fatal(err)
	}
	seen := map[string]int{}
	verdicts := map[string]int{}
	var about []string
	for _, e := range events {
		if e.Related == nil || e.Related.Name != pod {
			continue
		}
		count := 1
		if e.Series != nil {
			count = int(e.Series.Count)
		}
		if int(e.DeprecatedCount) > count {
			count = int(e.DeprecatedCount)
		}
		about = append(about, fmt.Sprintf("%s %s x%d: %s", e.Type, e.Reason, count, e.Note))
		seen[e.Reason+"\x00"+e.Note]++
		if e.Reason != "ReplaceProfileVerdict" {
			continue
		}
		for _, v := range []string{rollout.VerdictInProgress, rollout.VerdictSucceeded, rollout.VerdictFailed, rollout.VerdictNotUpgraded, rollout.VerdictUnknown} {
			if strings.Contains(e.Note, "replace-profile "+v+" ") {
				verdicts[v] += count
			}
		}
	}
	for key, n := range seen {
		if n > 1 {
			g.t.Errorf("%d Events of pod %s with the same reason and note %q:\n%s", n, pod, strings.ReplaceAll(key, "\x00", ": "), strings.Join(about, "\n"))
		}
	}
	for v, n := range verdicts {
		if n > 1 {
			g.t.Errorf("verdict %s of pod %s reported %d times:\n%s", v, pod, n, strings.Join(about, "\n"))
		}
	}
	for _, v := range want {
		if verdicts[v] == 0 {
			g.t.Errorf("no %s verdict Event for pod %s:\n%s", v, pod, strings.Join(about, "\n"))
		}
	}
}

// The dryrun pdguard started before the CRD existed: it says so once and serves on.
func TestAuditWithoutReportCRD(t *testing.T) {
	logs := env.dryrun.Logs()
	if n := strings.Count(logs, "Report CRD is not installed"); n != 1 {
		t.Errorf("the pdguard started without the CRD logged its absence %d times, want once", n)
	}
	if strings.Contains(logs, "audit sink failed") {
		t.Error("a sink failed in the pdguard without the CRD")
	}
	if !slices.ContainsFunc(strings.Split(logs, "\n"), func(l string) bool { return strings.Contains(l, `"admission decision"`) }) {
		t.Error("the pdguard without the CRD decided nothing")
	}
	if strings.Contains(env.guard.Logs(), "Report CRD is not installed") {
		t.Error("the shared pdguard, started after the CRD, says it is not installed")
	}
}
