package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/audit/openreports"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/golden"
)

var (
	recordState = flag.Bool("record-state", false, "rewrite testdata/audit/state.json from the records below")
)

var auditNow = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

const statePath = "testdata/audit/state.json"

// recordedState is what `webhook audit` reads from a cluster where one rollout was
// blocked twice for different reasons and then overridden, and another was proven and
// promoted; a third StatefulSet has no Report (no CRD where it ran), only Events.
func recordedState(t *testing.T) AuditInput {
	t.Helper()
	at := func(h, m int) time.Time { return time.Date(2026, 11, 25, h, m, 0, 0, time.UTC) }
	sts := func(ns, name string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}}
	}
	blocked, proven := sts("pd-prod", "pingdirectory"), sts("pd-stage", "pingdirectory")
	canary := rollout.CanaryRecord{FromImage: "pingidentity/pingdirectory:9.0.0.1-latest", ToImage: "pingidentity/pingdirectory:9.1.0.0-latest", Partition: 1, Started: at(9, 58)}
	raw, _ := json.Marshal(canary)
	one := int32(1)
	blocked.Annotations = map[string]string{rollout.CanaryAnnotation: string(raw)}
	blocked.Spec.Replicas = new(int32)
	*blocked.Spec.Replicas = 2
	blocked.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &one}
	blocked.Status.CurrentRevision, blocked.Status.UpdateRevision = "pingdirectory-6d4cf56db6", "pingdirectory-7f9c8b5d4c"
	adm := func(s *appsv1.StatefulSet, when time.Time, user string, outcome string, rules []string, msg string) audit.Record {
		r := audit.Record{Time: when, Kind: audit.KindAdmission, Webhook: "validate", Namespace: s.Namespace, Name: s.Name, UID: s.UID,
			Operation: "UPDATE", User: user, Groups: []string{"system:authenticated"}, Rules: rules, Mode: "enforce", Outcome: outcome,
			FromImage: canary.FromImage, ToImage: canary.ToImage, FromVersion: "9.0.0.1", ToVersion: "9.1.0.0", UpdateRevision: s.Name + "-7f9c8b5d4c", Basis: when.String()}
		if outcome == audit.Denied {
			r.Reasons = []string{msg}
		} else {
			r.Warnings = []string{msg}
		}
		return r
	}
	verdict := func(s *appsv1.StatefulSet, when time.Time, v, msg string) audit.Record {
		return audit.Record{Time: when, Kind: audit.KindVerdict, Namespace: s.Namespace, Name: s.Name, UID: s.UID, User: "pdguard",
			Pod: s.Name + "-1", Verdict: v, Message: "pod " + s.Name + "-1: replace-profile " + v + ": " + msg, Basis: "containerd://" + v}
	}
	opened := func(s *appsv1.StatefulSet, when time.Time) audit.Record {
		r := adm(s, when, "helm", audit.Allowed, nil, "")
		r.Warnings, r.Canary = nil, &canary
		return r
	}
	prodRep, stageRep := openreports.NewReport(blocked), openreports.NewReport(proven)
	openreports.Apply(&prodRep, []audit.Record{
		adm(blocked, at(9, 40), "helm", audit.Denied, []string{"bundled-config-and-version"}, "this change updates the product version and also changes spec.template.spec.containers[pingdirectory].env; roll them out separately"),
		opened(blocked, at(9, 58)),
		adm(blocked, at(10, 5), "alice", audit.Denied, []string{"partition-gate"}, "promotion refused: pod pingdirectory-1 has replace-profile InProgress; wait for its verdict"),
		verdict(blocked, at(10, 9), rollout.VerdictFailed, "replace-profile exited with errors"),
		adm(blocked, at(10, 12), "alice", audit.Denied, []string{"partition-gate"}, "promotion refused: pod pingdirectory-1 has replace-profile Failed; set pingdirectory.image.tag back to 9.0.0.1-latest"),
		adm(blocked, at(11, 30), "bob", audit.Warned, []string{"partition-gate", "override"}, "pdguard.io/override-reason \"INC-4711 restore writes\" lifted partition-gate"),
	}, 100)
	prom := adm(proven, at(14, 20), "helm", audit.Allowed, nil, "")
	prom.Warnings, prom.Proof = nil, []rollout.Proof{{Pod: "pingdirectory-1", ContainerID: "containerd://c1", Revision: "pingdirectory-7f9c8b5d4c", IssuedAt: at(14, 10)}}
	openreports.Apply(&stageRep, []audit.Record{
		opened(proven, at(14, 0)),
		verdict(proven, at(14, 10), rollout.VerdictSucceeded, "manage-profile replace-profile updated the server version from 9.0.0.1 to 9.1.0.0 without errors"),
		prom,
		adm(proven, at(2, 0), "helm", audit.Denied, []string{"downgrade"}, "older than --since"),
	}, 100)
	ev := eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: "pd-dev", Name: "pingdirectory.1"},
		EventTime:  metav1.NewMicroTime(at(17, 30)), Type: "Warning", Reason: audit.ReasonRolloutBlocked, Action: "Deny-0a1b2c3d",
		Regarding: corev1.ObjectReference{Kind: "StatefulSet", Namespace: "pd-dev", Name: "pingdirectory"},
		Note:      "[missing-canary] by helm: this version change arrived without the canary partition",
	}
	return AuditInput{StatefulSets: []appsv1.StatefulSet{*blocked, *proven}, Reports: []reportsv1alpha1.Report{prodRep, stageRep}, Events: []eventsv1.Event{ev}, Since: 12 * time.Hour}
}

func loadState(t *testing.T) AuditInput {
	t.Helper()
	if *recordState {
		raw, err := json.MarshalIndent(recordedState(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(statePath, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var in AuditInput
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("%s: %v", statePath, err)
	}
	return in
}

func TestAuditGoldenOutput(t *testing.T) {
	a := BuildAudit(auditNow, loadState(t))
	ext := map[string]string{"table": "txt", "json": "json", "markdown": "md", "html": "html"}
	for _, format := range AuditFormats {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := a.Write(&b, format); err != nil {
				t.Fatal(err)
			}
			goldenPath := filepath.Join("testdata", "audit", "audit."+ext[format])
			golden.Check(t, goldenPath, b.String())
		})
	}
}

func TestAuditSummarisesEachStatefulSet(t *testing.T) {
	a := BuildAudit(auditNow, loadState(t))
	if len(a.Summaries) != 3 {
		t.Fatalf("%d summaries, want pd-dev, pd-prod and pd-stage: %+v", len(a.Summaries), a.Summaries)
	}
	dev, prod, stage := a.Summaries[0], a.Summaries[1], a.Summaries[2]
	if prod.Blocked != 3 || prod.Warned != 1 || prod.LastOverrideBy != "bob" || !strings.HasPrefix(prod.LastVerdict, "Failed") || !strings.Contains(prod.OpenCanary, "9.1.0.0-latest from ordinal 1") {
		t.Errorf("pd-prod summary %+v", prod)
	}
	if stage.Blocked != 0 || !strings.HasPrefix(stage.LastVerdict, "Succeeded") || stage.OpenCanary != "" {
		t.Errorf("pd-stage summary %+v: the downgrade denial is older than --since", stage)
	}
	if dev.Blocked != 1 {
		t.Errorf("pd-dev, known only from an Event, summary %+v", dev)
	}
	for i := 1; i < len(a.Entries); i++ {
		if a.Entries[i].Time.After(a.Entries[i-1].Time) {
			t.Fatalf("records are not newest first: %s before %s", a.Entries[i-1].Time, a.Entries[i].Time)
		}
	}
	one := BuildAudit(auditNow, AuditInput{Reports: loadState(t).Reports, StatefulSet: "nothing"})
	if len(one.Entries) != 0 {
		t.Errorf("--statefulset nothing kept %d records", len(one.Entries))
	}
}
