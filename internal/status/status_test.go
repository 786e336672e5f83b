package status

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

const canaryRev = fixture.Name + "-7f9b8c6d5e"

var now = fixture.ReadyAt.Add(time.Hour)

// canary is the live object with ordinal 1 on the new tag, and its pods; verdict, when
// set, is put on the canary pod for its running container.
func canary(verdict string) (*appsv1.StatefulSet, []corev1.Pod) {
	live := fixture.Live()
	stable := fixture.Pod(live, 0, fixture.Revision)
	fixture.WithTag(live, "9.1.0.0-latest")
	one := int32(1)
	live.Spec.UpdateStrategy.RollingUpdate.Partition = &one
	live.Generation, live.Status.ObservedGeneration, live.Status.UpdateRevision = 2, 2, canaryRev
	c := fixture.Pod(live, 1, canaryRev)
	if verdict != "" {
		cs, _ := rollout.Container(c, fixture.Container)
		v := rollout.Verdict{Verdict: verdict, Revision: canaryRev, ContainerID: cs.ID, ObservedAt: now.Add(-90 * time.Second), Reason: "from the log"}
		c.Annotations = map[string]string{rollout.ReplaceProfileAnnotation: mustJSON(v)}
	}
	return live, []corev1.Pod{*stable, *c}
}

func observe(sts *appsv1.StatefulSet, pods []corev1.Pod, soak time.Duration, auto bool) Status {
	s := rollout.Observe(sts, pods, rollout.ObserveOptions{Container: fixture.Container, Soak: soak, Now: now})
	return Of(s, Options{Namespace: sts.Namespace, Name: sts.Name, Soak: soak, Now: now, AutoPromote: auto})
}

func TestOf(t *testing.T) {
	tests := map[string]struct {
		status       func() Status
		phase        string
		next         string
		value, to    string
		blockers     int
		textMentions []string
	}{
		"every pod on one revision": {
			status: func() Status {
				live := fixture.Live()
				return observe(live, []corev1.Pod{*fixture.Pod(live, 0, fixture.Revision), *fixture.Pod(live, 1, fixture.Revision)}, time.Minute, false)
			},
			phase: PhaseStable, next: StepNone, textMentions: []string{"nothing to do"},
		},
		"a canary without a verdict": {
			status: func() Status { sts, pods := canary(""); return observe(sts, pods, time.Minute, false) },
			phase:  PhaseCanary, next: StepWait, blockers: 1, textMentions: []string{"wait for verdict", "-1 has no replace-profile verdict yet"},
		},
		"a canary in progress": {
			status: func() Status {
				sts, pods := canary(rollout.VerdictInProgress)
				return observe(sts, pods, time.Minute, false)
			},
			phase: PhaseCanary, next: StepWait, blockers: 1, textMentions: []string{"verdict is InProgress"},
		},
		"a proven canary": {
			status: func() Status {
				sts, pods := canary(rollout.VerdictSucceeded)
				return observe(sts, pods, time.Minute, false)
			},
			phase: PhaseCanary, next: StepHelm, value: PartitionValue, to: "0",
			textMentions: []string{SameUpgrade, "kubectl -n ping patch statefulset " + fixture.Name},
		},
		"a proven canary that auto-promotes": {
			status: func() Status {
				sts, pods := canary(rollout.VerdictSucceeded)
				return observe(sts, pods, time.Minute, true)
			},
			phase: PhaseCanary, next: StepWait, textMentions: []string{"auto-promote"},
		},
		"a Succeeded canary still soaking": {
			status: func() Status {
				sts, pods := canary(rollout.VerdictSucceeded)
				return observe(sts, pods, 2*time.Hour, false)
			},
			phase: PhaseCanary, next: StepWait, blockers: 1, textMentions: []string{"of the 2h0m0s soak"},
		},
		"a failed canary": {
			status: func() Status {
				sts, pods := canary(rollout.VerdictFailed)
				return observe(sts, pods, time.Minute, false)
			},
			phase: PhaseCanary, next: StepHelm, value: ImageTagValue, to: "9.0.0.1-latest", blockers: 1,
			textMentions: []string{"roll it back", SameUpgrade},
		},
		"the rest rolling after the promotion": {
			status: func() Status {
				sts, pods := canary(rollout.VerdictSucceeded)
				zero := int32(0)
				sts.Spec.UpdateStrategy.RollingUpdate.Partition = &zero
				return observe(sts, pods, time.Minute, false)
			},
			phase: PhaseRolling, next: StepWait, textMentions: []string{"rollout status statefulset"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := tc.status()
			if s.Phase != tc.phase || s.Next.Kind != tc.next || s.Next.Value != tc.value || s.Next.To != tc.to || len(s.Blockers) != tc.blockers {
				t.Fatalf("status = phase %s next %+v blockers %q; want phase %s, next %s %s=%s, %d blockers", s.Phase, s.Next, s.Blockers, tc.phase, tc.next, tc.value, tc.to, tc.blockers)
			}
			text := s.Next.Text + " " + strings.Join(s.Blockers, " ")
			for _, m := range tc.textMentions {
				if !strings.Contains(text, m) {
					t.Errorf("status does not say %q: %s", m, text)
				}
			}
			if s.Namespace != fixture.Namespace || s.Name != fixture.Name || len(s.Pods) != 2 {
				t.Errorf("status names %s/%s with %d pods", s.Namespace, s.Name, len(s.Pods))
			}
		})
	}
}

func mustJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(raw)
}
