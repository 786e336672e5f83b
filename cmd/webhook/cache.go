package main

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/rollout"
)

// cacheOptions caches only guarded StatefulSets and their pods, so memory stays flat
// however many other workloads the cluster runs, and of those only what decisions and the
// evidence controller read: managedFields alone are about 40% of a stored pod. Writes are
// merge patches, never updates of a cached object, so a stripped field is never written
// back.
func cacheOptions(sel labels.Selector, namespaces map[string]cache.Config) cache.Options {
	return cache.Options{
		DefaultNamespaces: namespaces,
		DefaultTransform:  cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.StatefulSet{}: {Label: sel, Transform: projectStatefulSet},
			&corev1.Pod{}:         {Label: sel, Transform: projectPod},
		},
	}
}

// projectPod keeps the fields of a pod that internal/rollout reads (identity, owner,
// labels and annotations, container names and images, readiness and container statuses);
// TestProjectedPodsObserveAlike holds it to that.
func projectPod(in any) (any, error) {
	pod, ok := in.(*corev1.Pod)
	if !ok {
		// Deletion tombstones pass through whole.
		if _, tomb := in.(toolscache.DeletedFinalStateUnknown); tomb {
			return in, nil
		}
		return nil, fmt.Errorf("pod cache: unexpected %T", in)
	}
	out := &corev1.Pod{
		TypeMeta:   pod.TypeMeta,
		ObjectMeta: keptMeta(&pod.ObjectMeta),
		Spec: corev1.PodSpec{
			NodeName:       pod.Spec.NodeName,
			InitContainers: containerNames(pod.Spec.InitContainers),
			Containers:     containerNames(pod.Spec.Containers),
		},
		Status: corev1.PodStatus{
			Phase: pod.Status.Phase, Conditions: keptConditions(pod.Status.Conditions),
			ContainerStatuses: keptContainerStatuses(pod.Status.ContainerStatuses), InitContainerStatuses: keptContainerStatuses(pod.Status.InitContainerStatuses),
		},
	}
	out.ManagedFields = verdictWriters(pod.ManagedFields)
	return out, nil
}

// keptConditions keeps each condition's type, status and transition time, which is what
// readiness is read from; the messages go. Stored whole, a pod's status was a fifth of
// the live heap at 5,000 pods.
func keptConditions(in []corev1.PodCondition) []corev1.PodCondition {
	return each(in, func(c corev1.PodCondition) corev1.PodCondition {
		return corev1.PodCondition{Type: c.Type, Status: c.Status, LastTransitionTime: c.LastTransitionTime}
	})
}

// keptContainerStatuses keeps what a container's state is judged by (rollout.Container):
// its name and id, restarts, and whether it runs, why it waits, and the
// exit code and reason of its last termination.
func keptContainerStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	return each(in, func(cs corev1.ContainerStatus) corev1.ContainerStatus {
		return corev1.ContainerStatus{
			Name: cs.Name, ContainerID: cs.ContainerID, RestartCount: cs.RestartCount,
			State: keptState(cs.State), LastTerminationState: keptState(cs.LastTerminationState),
		}
	})
}

func keptState(s corev1.ContainerState) corev1.ContainerState {
	var out corev1.ContainerState
	if s.Running != nil {
		out.Running = &corev1.ContainerStateRunning{}
	}
	if w := s.Waiting; w != nil {
		out.Waiting = &corev1.ContainerStateWaiting{Reason: w.Reason}
	}
	if t := s.Terminated; t != nil {
		out.Terminated = &corev1.ContainerStateTerminated{ExitCode: t.ExitCode, Reason: t.Reason}
	}
	return out
}

// keptMeta is the metadata both projections keep: identity, owners, labels and
// annotations; managedFields go.
func keptMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID,
		ResourceVersion: m.ResourceVersion, Generation: m.Generation,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
		Labels: m.Labels, Annotations: m.Annotations, OwnerReferences: m.OwnerReferences,
	}
}

// projectStatefulSet keeps what the evidence controller reads of a cached StatefulSet
// (identity, labels and annotations, selector, replicas, update strategy, the product
// image and the status): the pod template, most of a chart-rendered StatefulSet, is read
// by admission from the request, never from the cache. At a thousand guarded
// StatefulSets the template was the largest part of pdguard's live heap.
// TestProjectedStatefulSetsObserveAlike holds it to the rollout model.
func projectStatefulSet(in any) (any, error) {
	sts, ok := in.(*appsv1.StatefulSet)
	if !ok {
		if _, tomb := in.(toolscache.DeletedFinalStateUnknown); tomb {
			return in, nil
		}
		return nil, fmt.Errorf("statefulset cache: unexpected %T", in)
	}
	out := &appsv1.StatefulSet{
		TypeMeta:   sts.TypeMeta,
		ObjectMeta: keptMeta(&sts.ObjectMeta),
		Spec: appsv1.StatefulSetSpec{
			Replicas: sts.Spec.Replicas, Selector: sts.Spec.Selector, ServiceName: sts.Spec.ServiceName,
			UpdateStrategy: sts.Spec.UpdateStrategy,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sts.Spec.Template.Labels},
				Spec: corev1.PodSpec{
					InitContainers: containerNames(sts.Spec.Template.Spec.InitContainers),
					Containers:     containerNames(sts.Spec.Template.Spec.Containers),
				},
			},
		},
		Status: sts.Status,
	}
	return out, nil
}

// verdictWriters keeps, of a pod's managedFields, who wrote the replace-profile verdict
// annotation and when: the evidence controller names the writer of a forged verdict.
// Every other field ownership is dropped, as are the other fields those entries own.
func verdictWriters(fields []metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	key := `"f:` + rollout.ReplaceProfileAnnotation + `"`
	var out []metav1.ManagedFieldsEntry
	for _, mf := range fields {
		if mf.FieldsV1 == nil || !strings.Contains(string(mf.FieldsV1.Raw), key) {
			continue
		}
		mf.FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{` + key + `:{}}}}`)}
		out = append(out, mf)
	}
	return out
}

func containerNames(cs []corev1.Container) []corev1.Container {
	return each(cs, func(c corev1.Container) corev1.Container { return corev1.Container{Name: c.Name, Image: c.Image} })
}

// each is in with keep applied to every element; nil stays nil, as the API server sent it.
func each[T any](in []T, keep func(T) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		out[i] = keep(in[i])
	}
	return out
}
