package openreports

import (
	"testing"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func rec(at time.Duration, mut func(*audit.Record)) audit.Record {
	r := audit.Record{
		Time: t0.Add(at), Kind: audit.KindAdmission, Webhook: "validate", Namespace: "pd", Name: "pd", UID: "u1",
		Operation: "UPDATE", User: "alice", Groups: []string{"ops", "system:authenticated"}, Rules: []string{"partition-gate"},
		FromImage: "pd:9.0.0.1-latest", ToImage: "pd:9.1.0.0-latest", FromVersion: "9.0.0.1", ToVersion: "9.1.0.0",
		UpdateRevision: "pd-7c8d", Mode: "enforce", Outcome: audit.Denied, Reasons: []string{"not proven"}, Basis: "41",
	}
	if mut != nil {
		mut(&r)
	}
	return r
}

func TestResultCarriesTheRecord(t *testing.T) {
	tests := map[string]struct {
		r                     audit.Record
		rule, result, message string
		props                 map[string]string
	}{
		"a denial fails its rule": {
			r: rec(0, nil), rule: "partition-gate", result: "fail", message: "not proven",
			props: map[string]string{"user": "alice", "groups": "ops,system:authenticated", "fromImage": "pd:9.0.0.1-latest", "toImage": "pd:9.1.0.0-latest",
				"fromVersion": "9.0.0.1", "toVersion": "9.1.0.0", "updateRevision": "pd-7c8d", "mode": "enforce", "operation": "UPDATE", "outcome": "denied", "uid": "u1"},
		},
		"an override warns under override": {
			r: rec(0, func(r *audit.Record) {
				r.Outcome, r.Rules, r.Reasons, r.Warnings = audit.Warned, []string{"bundled-config-and-version", "override"}, nil, []string{"overridden: hotfix"}
			}),
			rule: "override", result: "warn", message: "overridden: hotfix", props: map[string]string{"override": "true", "rules": "bundled-config-and-version,override"},
		},
		"a warning warns": {
			r: rec(0, func(r *audit.Record) {
				r.Outcome, r.Rules, r.Reasons, r.Warnings = audit.Warned, []string{"single-replica"}, nil, []string{"one replica"}
			}),
			rule: "single-replica", result: "warn", message: "one replica",
		},
		"an opened canary passes canary-partition": {
			r: rec(0, func(r *audit.Record) {
				r.Outcome, r.Rules, r.Reasons = audit.Allowed, nil, nil
				r.Canary = &rollout.CanaryRecord{FromImage: "pd:9.0.0.1-latest", ToImage: "pd:9.1.0.0-latest", Partition: 2}
			}),
			rule: "canary-partition", result: "pass", message: "canary opened: pods from ordinal 2 up move from pd:9.0.0.1-latest to pd:9.1.0.0-latest, the others stay until its replace-profile is proven",
		},
		"a Failed verdict fails replace-profile": {
			r:    audit.Record{Time: t0, Kind: audit.KindVerdict, Namespace: "pd", Name: "pd", Pod: "pd-2", Verdict: rollout.VerdictFailed, Message: "pod pd-2: replace-profile Failed"},
			rule: "replace-profile", result: "fail", message: "pod pd-2: replace-profile Failed", props: map[string]string{"pod": "pd-2", "verdict": "Failed", "kind": "verdict"},
		},
		"a Succeeded verdict passes": {
			r:    audit.Record{Time: t0, Kind: audit.KindVerdict, Namespace: "pd", Name: "pd", Pod: "pd-2", Verdict: rollout.VerdictSucceeded, Message: "ok"},
			rule: "replace-profile", result: "pass", message: "ok",
		},
		"a promotion passes": {
			r:    audit.Record{Time: t0, Kind: audit.KindPromotion, Namespace: "pd", Name: "pd", Message: "partition lowered 2 -> 1"},
			rule: "promotion", result: "pass", message: "partition lowered 2 -> 1",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := Result(&tc.r)
			if res.Policy != "pdguard" || res.Source != "pdguard" || res.Rule != tc.rule || string(res.Result) != tc.result || res.Description != tc.message {
				t.Errorf("result = policy %q source %q rule %q result %q message %q, want pdguard pdguard %q %q %q", res.Policy, res.Source, res.Rule, res.Result, res.Description, tc.rule, tc.result, tc.message)
			}
			for k, v := range tc.props {
				if res.Properties[k] != v {
					t.Errorf("property %s = %q, want %q", k, res.Properties[k], v)
				}
			}
			if res.Properties[KeyProperty] != tc.r.Key() || res.Timestamp.Seconds != t0.Unix() {
				t.Errorf("key %q time %v, want %q %v", res.Properties[KeyProperty], res.Timestamp, tc.r.Key(), t0)
			}
		})
	}
}

func TestApplyIsIdempotentAndKeepsTheNewest(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "pd", Name: "pd", UID: "u1"}}
	rep := NewReport(sts)
	if rep.OwnerReferences[0].UID != "u1" || rep.Scope.Name != "pd" || rep.Name != "pdguard-pd" {
		t.Fatalf("report %+v is not scoped to and owned by its StatefulSet", rep.ObjectMeta)
	}
	first := rec(0, func(r *audit.Record) { r.Reasons = []string{"InProgress"} })
	retried := rec(time.Second, func(r *audit.Record) { r.Reasons = []string{"InProgress"} })
	failed := rec(2*time.Second, func(r *audit.Record) { r.Reasons = []string{"Failed"} })
	if !Apply(&rep, []audit.Record{first}, 3) {
		t.Fatal("the first record changed nothing")
	}
	if Apply(&rep, []audit.Record{retried, first}, 3) {
		t.Error("a retried identical request changed the Report")
	}
	Apply(&rep, []audit.Record{failed}, 3)
	if len(rep.Results) != 2 || rep.Results[0].Description != "InProgress" || rep.Results[1].Description != "Failed" {
		t.Fatalf("results = %v, want the InProgress then the Failed denial", descriptions(rep.Results))
	}
	for i := range 5 {
		Apply(&rep, []audit.Record{rec(time.Duration(10+i)*time.Second, func(r *audit.Record) { r.Reasons = []string{string(rune('a' + i))} })}, 3)
	}
	if got := descriptions(rep.Results); len(got) != 3 || got[0] != "c" || got[2] != "e" {
		t.Errorf("results = %v, want the newest three c d e", got)
	}
	if rep.Summary.Fail != 3 || rep.Configuration.Limits.MaxResults != 3 {
		t.Errorf("summary %+v limits %+v", rep.Summary, rep.Configuration)
	}
}

func descriptions(rs []reportsv1alpha1.ReportResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Description)
	}
	return out
}
