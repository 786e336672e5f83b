package main

import (
	"fmt"
	"strings"
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
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
// labels, pdguard's annotations, container names and images, the Ready condition and
// container statuses); TestProjectedPodsObserveAlike holds it to that. Strings that many
// pods share (namespace, labels, owner, images) are interned: at 5,000 pods the copies
// each pod decodes were a third of the cached bytes.
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
		Spec:       corev1.PodSpec{Containers: containerNames(pod.Spec.Containers)},
		Status: corev1.PodStatus{
			Conditions:        readyCondition(pod.Status.Conditions),
			ContainerStatuses: keptContainerStatuses(pod.Status.ContainerStatuses),
		},
	}
	out.ManagedFields = verdictWriters(pod.ManagedFields)
	return out, nil
}

// readyCondition keeps the Ready condition's status and transition time, which is what
// readiness is read from; the other conditions and the messages go.
func readyCondition(in []corev1.PodCondition) []corev1.PodCondition {
	for _, c := range in {
		if c.Type == corev1.PodReady {
			return []corev1.PodCondition{{Type: corev1.PodReady, Status: intern(c.Status), LastTransitionTime: c.LastTransitionTime}}
		}
	}
	return nil
}

// keptContainerStatuses keeps what a container's state is judged by (rollout.Container):
// its name and id, restarts, and whether it runs, why it waits, and the
// exit code and reason of its last termination.
func keptContainerStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	return each(in, func(cs corev1.ContainerStatus) corev1.ContainerStatus {
		return corev1.ContainerStatus{
			Name: intern(cs.Name), ContainerID: cs.ContainerID, RestartCount: cs.RestartCount,
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
// pdguard's annotations. managedFields go, and so do other annotations: nothing reads
// them from the cache, and kubectl's last-applied-configuration alone is as large as the
// object it describes.
func keptMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: intern(m.Namespace), UID: m.UID,
		ResourceVersion: m.ResourceVersion, Generation: m.Generation,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
		Labels: internedLabels(m.Labels), Annotations: pdguardAnnotations(m.Annotations),
		OwnerReferences: each(m.OwnerReferences, func(o metav1.OwnerReference) metav1.OwnerReference {
			o.APIVersion, o.Kind, o.Name, o.UID = intern(o.APIVersion), intern(o.Kind), intern(o.Name), types.UID(intern(string(o.UID)))
			return o
		}),
	}
}

func pdguardAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if strings.HasPrefix(k, rollout.AnnotationPrefix) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

func internedLabels(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[intern(k)] = intern(v)
	}
	return out
}

// intern returns the one copy of s the process keeps for all cached objects.
func intern[S ~string](s S) S { return S(unique.Make(string(s)).Value()) }

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
	return each(cs, func(c corev1.Container) corev1.Container {
		return corev1.Container{Name: intern(c.Name), Image: intern(c.Image)}
	})
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
