package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

const (
	stableRev = "pd-upgrade-example-pingdirectory-6d4cf56db6"
	canaryRev = "pd-upgrade-example-pingdirectory-7f9c8b5d4c"
)

func withVerdict(pod *corev1.Pod, v rollout.Verdict) *corev1.Pod {
	raw, _ := json.Marshal(v)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[rollout.ReplaceProfileAnnotation] = string(raw)
	return pod
}

// A pod below an open canary's partition runs the stable revision: a verdict left on it
// from an earlier revision is no verdict of its own, so it is not shown as stale.
func TestStablePodsShowNoStaleVerdict(t *testing.T) {
	sts := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
	one := int32(1)
	sts.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &one}
	sts.Generation++
	sts.Status.ObservedGeneration = sts.Generation
	sts.Status.CurrentRevision, sts.Status.UpdateRevision = stableRev, canaryRev

	stable := fixture.Pod(fixture.Live(), 0, stableRev)
	withVerdict(stable, rollout.Verdict{Verdict: rollout.VerdictInProgress, Revision: canaryRev, Reason: "container has not started yet"})
	canary := fixture.Pod(sts, 1, canaryRev)
	withVerdict(canary, rollout.Verdict{Verdict: rollout.VerdictInProgress, Revision: "an-older-revision", Reason: "container has not started yet"})
	pods := []corev1.Pod{*stable, *canary}
	for i := range pods {
		pods[i].OwnerReferences[0].UID = sts.UID
	}

	r := BuildReport(time.Now(), []appsv1.StatefulSet{*sts}, pods, nil, fixture.Container, 0)
	if len(r.StatefulSets) != 1 || len(r.StatefulSets[0].Pods) != 2 {
		t.Fatalf("report = %+v, want one StatefulSet with two pods", r)
	}
	p0, p1 := r.StatefulSets[0].Pods[0], r.StatefulSets[0].Pods[1]
	if !p0.Stable || p0.Verdict != "" || p0.Reason != "" {
		t.Errorf("stable pod = %+v, want stable with no verdict", p0)
	}
	if p1.Stable || p1.Verdict != "InProgress (stale)" {
		t.Errorf("canary pod = %+v, want its stale verdict shown", p1)
	}
	var out bytes.Buffer
	if err := r.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	var line0 string
	for _, l := range lines {
		if strings.Contains(l, p0.Name+" ") {
			line0 = l
		}
	}
	if !strings.Contains(line0, "stable revision (no verdict needed)") || strings.Contains(line0, "stale") {
		t.Errorf("stable pod's line is %q, want it to say it needs no verdict\n%s", line0, out.String())
	}
}
