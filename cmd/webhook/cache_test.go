package main

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// The rollout model must see the same facts in a projected pod as in the stored one.
func TestProjectedPodsObserveAlike(t *testing.T) {
	key, err := rollout.NewVerdictKey()
	if err != nil {
		t.Fatal(err)
	}
	sts := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
	sts.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(1))
	sts.Status.UpdateRevision = "pd-upgrade-example-pingdirectory-7f9b8c6d54"
	canary := fixture.Pod(sts, 1, sts.Status.UpdateRevision)
	canary.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}
	v := &rollout.Verdict{Verdict: rollout.VerdictSucceeded, Revision: sts.Status.UpdateRevision,
		ContainerID: canary.Status.ContainerStatuses[0].ContainerID, ObservedAt: fixture.ReadyAt.Add(time.Minute)}
	key.Sign(canary, v)
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	canary.Annotations = map[string]string{rollout.ReplaceProfileAnnotation: string(raw)}
	stable := fixture.Pod(fixture.Live(), 0, sts.Status.CurrentRevision)
	notReady := stable.DeepCopy()
	notReady.Status.Conditions[2].Status = corev1.ConditionFalse
	notReady.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	notReady.Status.ContainerStatuses[0].RestartCount = 3
	terminating := canary.DeepCopy()
	terminating.DeletionTimestamp = &metav1.Time{Time: fixture.ReadyAt}
	oomKilled := notReady.DeepCopy()
	oomKilled.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"}}
	oomKilled.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", Message: "the last lines of the log"}}

	for name, pods := range map[string][]corev1.Pod{
		"open canary":    {*stable, *canary},
		"crash looping":  {*notReady, *canary},
		"killed":         {*oomKilled, *canary},
		"terminating":    {*stable, *terminating},
		"forged verdict": {*stable, *withAnnotation(canary, rollout.ReplaceProfileAnnotation, `{"verdict":"succeeded"}`)},
		"no pods":        nil,
	} {
		projected := make([]corev1.Pod, len(pods))
		for i := range pods {
			out, err := projectPod(pods[i].DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			projected[i] = *out.(*corev1.Pod)
			if projected[i].ManagedFields != nil || projected[i].Spec.Volumes != nil || keepsMessages(&projected[i]) {
				t.Errorf("%s: pod %s keeps fields no decision reads", name, pods[i].Name)
			}
		}
		opts := rollout.ObserveOptions{Container: fixture.Container, Soak: 30 * time.Second, Now: fixture.ReadyAt.Add(time.Hour), Trust: key.Trust}
		want := rollout.Observe(sts, pods, opts)
		got := rollout.Observe(sts, projected, opts)
		for _, s := range []*rollout.State{want, got} {
			for i := range s.Pods {
				s.Pods[i].Pod = nil
			}
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: projected pods observe as\n%+v\nstored pods as\n%+v", name, got, want)
		}
	}
}

// The rollout model must see the same facts in a projected StatefulSet as in the stored
// one, with its pods, in each state of a rollout.
func TestProjectedStatefulSetsObserveAlike(t *testing.T) {
	open := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
	open.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(1))
	open.Status.UpdateRevision = "pd-upgrade-example-pingdirectory-7f9b8c6d54"
	open.Annotations = map[string]string{rollout.CanaryAnnotation: `{"fromImage":"pingidentity/pingdirectory:9.0.0.1-latest","toImage":"pingidentity/pingdirectory:9.1.0.0-latest","partition":1,"started":"2026-12-01T10:00:00Z","requestedBy":"helm"}`}
	lagging := open.DeepCopy()
	lagging.Generation = lagging.Status.ObservedGeneration + 1
	pods := []corev1.Pod{*fixture.Pod(fixture.Live(), 0, open.Status.CurrentRevision), *fixture.Pod(open, 1, open.Status.UpdateRevision)}
	for name, sts := range map[string]*appsv1.StatefulSet{"settled": fixture.Live(), "open canary": open, "status behind the spec": lagging} {
		out, err := projectStatefulSet(sts.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		projected := out.(*appsv1.StatefulSet)
		if projected.Spec.Template.Spec.Volumes != nil || len(projected.Spec.Template.Spec.Containers[0].Env) > 0 {
			t.Errorf("%s: keeps template fields no decision reads", name)
		}
		opts := rollout.ObserveOptions{Container: fixture.Container, Soak: 30 * time.Second, Now: fixture.ReadyAt.Add(time.Hour)}
		want, got := rollout.Observe(sts, pods, opts), rollout.Observe(projected, pods, opts)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: projected StatefulSet observes as\n%+v\nstored as\n%+v", name, got, want)
		}
		if rollout.PublishedUpdateRevision(projected) != rollout.PublishedUpdateRevision(sts) {
			t.Errorf("%s: published update revision differs", name)
		}
	}
}

func withAnnotation(pod *corev1.Pod, key, value string) *corev1.Pod {
	p := pod.DeepCopy()
	p.Annotations = map[string]string{key: value}
	return p
}

func TestProjectedPodsKeepTheVerdictWriter(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-1", ManagedFields: []metav1.ManagedFieldsEntry{
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Time: &at,
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:app":{}}}}`)}},
		{Manager: "kubectl-annotate", Operation: metav1.ManagedFieldsOperationUpdate, Time: &at,
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:pdguard.io/replace-profile":{},"f:other":{}}}}`)}},
	}}}
	out, err := projectPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	projected := out.(*corev1.Pod)
	if got, want := rollout.AnnotationWriter(projected, rollout.ReplaceProfileAnnotation), rollout.AnnotationWriter(pod, rollout.ReplaceProfileAnnotation); got != want {
		t.Errorf("writer after projection %q, want %q", got, want)
	}
	if len(projected.ManagedFields) != 1 {
		t.Errorf("kept %d managedFields entries, want only the verdict's writer", len(projected.ManagedFields))
	}
}

// keepsMessages: the free text of a pod's status, which no decision reads.
func keepsMessages(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Message != "" || c.Reason != "" {
			return true
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		for _, st := range []corev1.ContainerState{cs.State, cs.LastTerminationState} {
			if (st.Waiting != nil && st.Waiting.Message != "") || (st.Terminated != nil && st.Terminated.Message != "") {
				return true
			}
		}
	}
	return false
}
