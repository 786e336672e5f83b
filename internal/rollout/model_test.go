package rollout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

const (
	stableImage = "pingidentity/pingdirectory:9.0.0.1-latest"
	canaryImage = "pingidentity/pingdirectory:9.1.0.0-latest"
	stableRev   = "pd-5b6f"
	canaryRev   = "pd-7c8d"
)

var (
	now     = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	testKey = VerdictKey("0123456789abcdef0123456789abcdef")
)

// canarySet is pd with 3 replicas whose canary (pd-2) runs 9.1.0.0.
func canarySet() *appsv1.StatefulSet {
	rec, _ := json.Marshal(CanaryRecord{FromImage: stableImage, ToImage: canaryImage, FromVersion: "9.0.0.1", ToVersion: "9.1.0.0", Partition: 2})
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ping", Name: "pd", UID: "sts-uid", Generation: 4, Annotations: map[string]string{CanaryAnnotation: string(rec)}},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](3),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](2)},
			},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "pingdirectory", Image: canaryImage}}}},
		},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 4, CurrentRevision: stableRev, UpdateRevision: canaryRev},
	}
}

func pod(ordinal int, revision, image string, readyFor time.Duration) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ping", Name: "pd-" + string(rune('0'+ordinal)), UID: types.UID("uid-" + string(rune('0'+ordinal))),
			Labels:          map[string]string{RevisionLabel: revision},
			OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "pd", UID: "sts-uid", Controller: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "pingdirectory", Image: image}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "pingdirectory", ContainerID: "containerd://c" + string(rune('0'+ordinal)), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}}},
	}
	if readyFor >= 0 {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-readyFor))}}
	}
	return p
}

func withVerdict(p corev1.Pod, v Verdict, sign bool) corev1.Pod {
	if sign {
		testKey.Sign(&p, &v)
	}
	raw, _ := json.Marshal(v)
	p.Annotations = map[string]string{ReplaceProfileAnnotation: string(raw)}
	return p
}

func succeeded(p corev1.Pod) Verdict {
	return Verdict{Verdict: VerdictSucceeded, Revision: p.Labels[RevisionLabel], ContainerID: p.Status.ContainerStatuses[0].ContainerID, From: "9.0.0.1", To: "9.1.0.0", ObservedAt: now.Add(-time.Hour)}
}

func observe(sts *appsv1.StatefulSet, pods ...corev1.Pod) *State {
	return Observe(sts, pods, ObserveOptions{Container: "pingdirectory", Soak: time.Minute, Now: now, Trust: testKey.Trust})
}

// TestObserve pins every fact of the rollout model: admission, the evidence controller
// and the report all read these and compute none of them again.
func TestObserve(t *testing.T) {
	stable0 := pod(0, stableRev, stableImage, time.Hour)
	stable1 := pod(1, stableRev, stableImage, time.Hour)
	canary := pod(2, canaryRev, canaryImage, 10*time.Minute)
	proven := withVerdict(canary, succeeded(canary), true)

	type podWant struct {
		evidence Evidence
		soaked   bool
		proven   bool
		onUpdate bool
		errHas   string
	}
	tests := map[string]struct {
		sts  func() *appsv1.StatefulSet
		pods []corev1.Pod
		// set facts
		open, active   bool
		updateRevision string
		stable         string
		from           string
		canaryOrdinals []int32
		provenFromPart bool
		want           map[string]podWant
	}{
		"a signed Succeeded verdict on a soaked canary proves it": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, proven},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2}, provenFromPart: true,
			want: map[string]podWant{
				"pd-0": {evidence: EvidenceNone, soaked: true},
				"pd-2": {evidence: EvidenceCurrent, soaked: true, proven: true, onUpdate: true},
			},
		},
		"a verdict without pdguard's signature is untrusted and proves nothing": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, withVerdict(canary, succeeded(canary), false)},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceUntrusted, soaked: true, onUpdate: true, errHas: "no pdguard signature"}},
		},
		"a signed verdict changed afterwards is untrusted": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, func() corev1.Pod {
				v := succeeded(canary)
				v.Verdict = VerdictInProgress
				testKey.Sign(&canary, &v)
				v.Verdict = VerdictSucceeded
				return withVerdict(canary, v, false)
			}()},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceUntrusted, soaked: true, onUpdate: true, errHas: "does not match"}},
		},
		"a signed verdict copied from another pod is untrusted": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, func() corev1.Pod {
				other := canary
				other.UID = "another-pod"
				v := succeeded(canary)
				testKey.Sign(&other, &v)
				return withVerdict(canary, v, false)
			}()},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceUntrusted, soaked: true, onUpdate: true}},
		},
		"a verdict about an earlier container is stale": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, func() corev1.Pod {
				v := succeeded(canary)
				v.ContainerID = "containerd://before-restart"
				return withVerdict(canary, v, true)
			}()},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceStaleContainer, soaked: true, onUpdate: true}},
		},
		"a verdict about another revision is stale": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, func() corev1.Pod {
				v := succeeded(canary)
				v.Revision = "pd-older"
				return withVerdict(canary, v, true)
			}()},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceStaleRevision, soaked: true, onUpdate: true}},
		},
		"an annotation that is not a verdict is unreadable": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, func() corev1.Pod {
				p := canary
				p.Annotations = map[string]string{ReplaceProfileAnnotation: "Succeeded"}
				return p
			}()},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceUnreadable, soaked: true, onUpdate: true, errHas: "not valid JSON"}},
		},
		"a canary Ready for less than the soak is not proven": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, func() corev1.Pod {
				p := pod(2, canaryRev, canaryImage, 20*time.Second)
				return withVerdict(p, succeeded(p), true)
			}()},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceCurrent, onUpdate: true}},
		},
		"a canary that is not Ready is not proven": {
			sts: canarySet, pods: []corev1.Pod{stable0, stable1, func() corev1.Pod {
				p := pod(2, canaryRev, canaryImage, -1)
				return withVerdict(p, succeeded(p), true)
			}()},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceCurrent, onUpdate: true}},
		},
		"while status lags the spec there is no update revision and nothing is proven": {
			sts: func() *appsv1.StatefulSet { s := canarySet(); s.Generation = 5; return s }, pods: []corev1.Pod{stable0, stable1, proven},
			open: true, active: true, updateRevision: "", stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceCurrent, soaked: true}},
		},
		"without a record the stable image is a pod's on the current revision": {
			sts: func() *appsv1.StatefulSet { s := canarySet(); s.Annotations = nil; return s }, pods: []corev1.Pod{stable0, stable1, proven},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2}, provenFromPart: true,
			want: map[string]podWant{"pd-2": {evidence: EvidenceCurrent, soaked: true, proven: true, onUpdate: true}},
		},
		"after the last promotion the rollout is active but no canary is open": {
			sts: func() *appsv1.StatefulSet {
				s := canarySet()
				s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](0)
				return s
			}, pods: []corev1.Pod{stable0, stable1, proven},
			open: false, active: true, updateRevision: canaryRev, stable: canaryImage, from: "9.0.0.1", canaryOrdinals: []int32{0, 1, 2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceCurrent, soaked: true, proven: true, onUpdate: true}},
		},
		"a finished rollout: one revision, the template is stable": {
			sts: func() *appsv1.StatefulSet {
				s := canarySet()
				s.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](0)
				s.Status.CurrentRevision = canaryRev
				return s
			}, pods: []corev1.Pod{proven},
			open: false, active: false, updateRevision: canaryRev, stable: canaryImage, from: "9.0.0.1", canaryOrdinals: []int32{0, 1, 2},
			want: map[string]podWant{"pd-2": {evidence: EvidenceCurrent, soaked: true, proven: true, onUpdate: true}},
		},
		"pods of another owner or without an ordinal are not the set's": {
			sts: canarySet, pods: []corev1.Pod{
				func() corev1.Pod { p := proven.DeepCopy(); p.OwnerReferences[0].UID = "other"; return *p }(),
				func() corev1.Pod { p := pod(1, canaryRev, canaryImage, time.Hour); p.Name = "pd-x"; return p }(),
			},
			open: true, active: true, updateRevision: canaryRev, stable: stableImage, from: "9.0.0.1", canaryOrdinals: []int32{2},
			want: map[string]podWant{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := observe(tc.sts(), tc.pods...)
			if s.CanaryOpen != tc.open || s.Active != tc.active || s.UpdateRevision != tc.updateRevision {
				t.Errorf("open, active, update revision = %v, %v, %q; want %v, %v, %q", s.CanaryOpen, s.Active, s.UpdateRevision, tc.open, tc.active, tc.updateRevision)
			}
			if s.StableImage != tc.stable {
				t.Errorf("stable image = %q, want %q", s.StableImage, tc.stable)
			}
			if got := s.MigrationFrom(); got != tc.from {
				t.Errorf("migration from = %q, want %q", got, tc.from)
			}
			if got := s.CanaryOrdinals(); !equalInts(got, tc.canaryOrdinals) {
				t.Errorf("canary ordinals = %v, want %v", got, tc.canaryOrdinals)
			}
			if got := s.ProvenFrom(s.Partition); got != tc.provenFromPart {
				t.Errorf("proven from the partition = %v, want %v", got, tc.provenFromPart)
			}
			if len(s.Pods) < len(tc.want) {
				t.Fatalf("observed %d pods, want at least %d", len(s.Pods), len(tc.want))
			}
			if len(tc.want) == 0 && len(s.Pods) != 0 {
				t.Errorf("observed pods %v, want none", s.Pods)
			}
			for i := 1; i < len(s.Pods); i++ {
				if s.Pods[i-1].Ordinal >= s.Pods[i].Ordinal {
					t.Errorf("pods are not in ordinal order: %d before %d", s.Pods[i-1].Ordinal, s.Pods[i].Ordinal)
				}
			}
			for podName, w := range tc.want {
				var p *PodState
				for i := range s.Pods {
					if s.Pods[i].Name == podName {
						p = &s.Pods[i]
					}
				}
				if p == nil {
					t.Fatalf("pod %s not observed", podName)
				}
				if p.Evidence != w.evidence || p.Soaked != w.soaked || p.Proven != w.proven || p.OnUpdateRevision != w.onUpdate {
					t.Errorf("%s: evidence, soaked, proven, on update revision = %s, %v, %v, %v; want %s, %v, %v, %v",
						podName, p.Evidence, p.Soaked, p.Proven, p.OnUpdateRevision, w.evidence, w.soaked, w.proven, w.onUpdate)
				}
				if w.errHas != "" && (p.VerdictErr == nil || !strings.Contains(p.VerdictErr.Error(), w.errHas)) {
					t.Errorf("%s: verdict error = %v, want one containing %q", podName, p.VerdictErr, w.errHas)
				}
			}
		})
	}
}

func TestRecordedVerdictProvesAtOnce(t *testing.T) {
	canary := pod(2, canaryRev, canaryImage, 10*time.Minute)
	s := observe(canarySet(), pod(0, stableRev, stableImage, time.Hour), pod(1, stableRev, stableImage, time.Hour), withVerdict(canary, succeeded(canary), false))
	p, _ := s.Pod(2)
	if p.Proven || p.Evidence != EvidenceUntrusted {
		t.Fatalf("forged verdict: proven %v, evidence %s", p.Proven, p.Evidence)
	}
	v := succeeded(canary)
	testKey.Sign(&canary, &v)
	p.Record(v)
	if !p.Proven || p.Evidence != EvidenceCurrent || p.VerdictErr != nil {
		t.Errorf("after Record: proven %v, evidence %s, error %v; want proven by a current verdict", p.Proven, p.Evidence, p.VerdictErr)
	}
	if proof := s.ProofFrom(2); len(proof) != 1 || proof[0].Pod != "pd-2" || proof[0].ContainerID != "containerd://c2" || proof[0].Revision != canaryRev {
		t.Errorf("proof = %+v, want pd-2's verdict", proof)
	}
}

func TestAnyOtherKeyIsNotTrusted(t *testing.T) {
	canary := pod(2, canaryRev, canaryImage, time.Minute)
	v := succeeded(canary)
	testKey.Sign(&canary, &v)
	if err := testKey.Trust(&canary, &v); err != nil {
		t.Fatalf("own signature not trusted: %v", err)
	}
	other, err := NewVerdictKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Trust(&canary, &v); err == nil {
		t.Error("a verdict signed with another key is trusted")
	}
	if _, err := ParseVerdictKey([]byte("short")); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short key: err = %v, want one naming the minimum", err)
	}
	if len(other) < MinVerdictKeyBytes {
		t.Errorf("generated key has %d bytes", len(other))
	}
}

func TestAnnotationWriterNamesTheLatestManager(t *testing.T) {
	p := pod(2, canaryRev, canaryImage, time.Minute)
	t1, t2 := metav1.NewTime(now.Add(-time.Hour)), metav1.NewTime(now)
	fields := func(s string) *metav1.FieldsV1 { return &metav1.FieldsV1{Raw: []byte(s)} }
	p.ManagedFields = []metav1.ManagedFieldsEntry{
		{Manager: "pdguard-evidence", Operation: metav1.ManagedFieldsOperationUpdate, Time: &t1, FieldsV1: fields(`{"f:metadata":{"f:annotations":{"f:pdguard.io/replace-profile":{}}}}`)},
		{Manager: "kubectl-annotate", Operation: metav1.ManagedFieldsOperationUpdate, Time: &t2, FieldsV1: fields(`{"f:metadata":{"f:annotations":{"f:pdguard.io/replace-profile":{}}}}`)},
		{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, Time: &t2, FieldsV1: fields(`{"f:status":{}}`)},
	}
	got := AnnotationWriter(&p, ReplaceProfileAnnotation)
	if !strings.Contains(got, `"kubectl-annotate"`) || !strings.Contains(got, "2026-12-01T12:00:00Z") {
		t.Errorf("writer = %q, want kubectl-annotate at its time", got)
	}
	p.ManagedFields = nil
	if got := AnnotationWriter(&p, ReplaceProfileAnnotation); got != "an unknown writer" {
		t.Errorf("writer without managedFields = %q", got)
	}
}

func equalInts(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
