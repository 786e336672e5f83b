package audit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pdguard/pdguard/internal/rollout"
)

type captured struct{ reasons, notes []string }

func (c *captured) Eventf(_ runtime.Object, _ runtime.Object, _, reason, _, note string, args ...interface{}) {
	c.reasons = append(c.reasons, reason)
	c.notes = append(c.notes, fmt.Sprintf(note, args...))
}

func TestRecordWritesOneEventPerReportedDecision(t *testing.T) {
	sts := &appsv1.StatefulSet{}
	tests := map[string]struct {
		d          Decision
		wantReason string
	}{
		"a denial is reported as RolloutBlocked":                   {d: Decision{Webhook: "validate", Outcome: Denied, Rules: []string{"partition-gate"}, Reasons: []string{"not proven"}}, wantReason: ReasonRolloutBlocked},
		"an admitted override is reported as GuardOverridden":      {d: Decision{Webhook: "validate", Outcome: Warned, Rules: []string{"bundled-config-and-version", "override"}}, wantReason: ReasonOverride},
		"warnings alone are reported as RolloutWarned":             {d: Decision{Webhook: "validate", Outcome: Warned, Rules: []string{"unreadable-version"}}, wantReason: ReasonRolloutWarned},
		"an admitted request that opens a canary is CanaryStarted": {d: Decision{Webhook: "validate", Outcome: Allowed, Canary: &rollout.CanaryRecord{FromImage: "pd:9.0.0.1-latest", ToImage: "pd:9.1.0.0-latest", Partition: 1}}, wantReason: ReasonCanaryStarted},
		"an admitted promotion names the verdicts it rests on":     {d: Decision{Webhook: "validate", Outcome: Allowed, Proof: []rollout.Proof{{Pod: "pd-1", ContainerID: "containerd://c1", Revision: "pd-7c8d"}}}, wantReason: ReasonPromoted},
		"the mutating webhook's patch alone writes no event":       {d: Decision{Webhook: "mutate", Outcome: Patched, Rules: []string{"canary-partition"}}},
		"a dry-run denial writes no event":                         {d: Decision{Webhook: "validate", Outcome: Denied, DryRun: true}},
		"an allowed request with nothing to say writes no event":   {d: Decision{Webhook: "validate", Outcome: Allowed}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ev := &captured{}
			reg := prometheus.NewRegistry()
			r := NewRecorder(logr.Discard(), ev, reg)
			tc.d.Object = sts
			tc.d.User = "helm"
			r.Record(tc.d)
			if tc.wantReason == "" {
				if len(ev.reasons) != 0 {
					t.Fatalf("events = %v, want none", ev.reasons)
				}
			} else if len(ev.reasons) != 1 || ev.reasons[0] != tc.wantReason {
				t.Fatalf("events = %v, want one %s", ev.reasons, tc.wantReason)
			}
			if tc.wantReason == ReasonCanaryStarted && !strings.Contains(ev.notes[0], "move from pd:9.0.0.1-latest to pd:9.1.0.0-latest") {
				t.Errorf("CanaryStarted note %q does not describe the canary", ev.notes[0])
			}
			if tc.wantReason == ReasonPromoted && !strings.Contains(ev.notes[0], "pd-1 (container containerd://c1, revision pd-7c8d") {
				t.Errorf("CanaryPromoted note %q does not name the verdict", ev.notes[0])
			}
			if got := testutil.CollectAndCount(reg, "pdguard_admission_decisions_total"); got != 1 {
				t.Errorf("decision series = %d, want 1", got)
			}
		})
	}
}

func TestEventNoteFitsTheEventsAPI(t *testing.T) {
	note := note1k("helm", []string{"bundled-config-and-version"}, []string{strings.Repeat("x", 4000)})
	if len(note) > 1024 {
		t.Fatalf("note is %d bytes, the events API takes 1024", len(note))
	}
}
