package rollout

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Partition returns spec.updateStrategy.rollingUpdate.partition and whether it is set.
// An absent partition behaves as 0.
func Partition(sts *appsv1.StatefulSet) (int32, bool) {
	ru := sts.Spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.Partition == nil {
		return 0, false
	}
	return *ru.Partition, true
}

// Replicas returns spec.replicas, which the API server defaults to 1.
func Replicas(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Replicas == nil {
		return 1
	}
	return *sts.Spec.Replicas
}

// CanaryOpen reports whether some pods of the live object run, or are about to run, an
// update revision that the pods below the partition do not. Whoever set the partition
// (pdguard, or a person following the vendor's manual procedure) does not matter. A spec
// change the StatefulSet controller has not observed yet counts as open: between an
// image change and the controller's next sync, status still shows one revision, and a
// promotion sent in that window must not slip through.
func CanaryOpen(sts *appsv1.StatefulSet) bool {
	partition, _ := Partition(sts)
	if partition <= 0 {
		return false
	}
	if sts.Status.ObservedGeneration < sts.Generation {
		return true
	}
	return sts.Status.UpdateRevision != "" && sts.Status.CurrentRevision != sts.Status.UpdateRevision
}

// ReadCanaryRecord parses the CanaryAnnotation; nil, nil when it is absent.
func ReadCanaryRecord(sts *appsv1.StatefulSet) (*CanaryRecord, error) {
	raw, ok := sts.Annotations[CanaryAnnotation]
	if !ok {
		return nil, nil
	}
	var rec CanaryRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("annotation %s on statefulset %s/%s is not valid JSON: %w", CanaryAnnotation, sts.Namespace, sts.Name, err)
	}
	return &rec, nil
}

// ReadVerdict parses the ReplaceProfileAnnotation on a pod; nil, nil when it is absent.
func ReadVerdict(pod *corev1.Pod) (*Verdict, error) {
	raw, ok := pod.Annotations[ReplaceProfileAnnotation]
	if !ok {
		return nil, nil
	}
	var v Verdict
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return nil, fmt.Errorf("annotation %s on pod %s/%s is not valid JSON: %w", ReplaceProfileAnnotation, pod.Namespace, pod.Name, err)
	}
	if v.Verdict == "" {
		return nil, fmt.Errorf("annotation %s on pod %s/%s has no verdict field", ReplaceProfileAnnotation, pod.Namespace, pod.Name)
	}
	return &v, nil
}

// LiveCanaryRecord returns the canary record only while it describes the rollout the
// object is in: the record's target image is what the template runs now. A record left
// from a finished rollout, or from before the template moved on, says nothing about the
// current one and is ignored.
func LiveCanaryRecord(sts *appsv1.StatefulSet, container string) *CanaryRecord {
	rec, err := ReadCanaryRecord(sts)
	if err != nil || rec == nil {
		return nil
	}
	image, ok := ContainerImage(&sts.Spec.Template.Spec, container)
	if !ok || image != rec.ToImage {
		return nil
	}
	return rec
}

// ContainerImage returns the image of the named container in a pod template or pod spec.
func ContainerImage(spec *corev1.PodSpec, container string) (string, bool) {
	for i := range spec.Containers {
		if spec.Containers[i].Name == container {
			return spec.Containers[i].Image, true
		}
	}
	return "", false
}

// PodOrdinal returns the ordinal of a pod named <statefulset>-<n>; ok is false for pods
// that do not belong to the StatefulSet by name.
func PodOrdinal(stsName string, pod *corev1.Pod) (int32, bool) {
	suffix, found := strings.CutPrefix(pod.Name, stsName+"-")
	if !found || suffix == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(suffix, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != suffix {
		return 0, false
	}
	return int32(n), true
}

// OwnedBy reports whether the pod's controller is the given StatefulSet.
func OwnedBy(sts *appsv1.StatefulSet, pod *corev1.Pod) bool {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			return ref.Kind == "StatefulSet" && ref.Name == sts.Name && (sts.UID == "" || ref.UID == sts.UID)
		}
	}
	return false
}

// ContainerState is what the evidence rules need from one container of a pod.
type ContainerState struct {
	ID       string
	Restarts int32
	Running  bool
	// Waiting is the waiting reason (CrashLoopBackOff, ...), empty when not waiting.
	Waiting string
	// LastExitCode is the exit code of the previous instance, -1 when there was none.
	LastExitCode int32
	LastReason   string
}

// Container returns the status of the named container; ok is false when the pod has
// not reported one yet.
func Container(pod *corev1.Pod, container string) (ContainerState, bool) {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != container {
			continue
		}
		st := ContainerState{ID: cs.ContainerID, Restarts: cs.RestartCount, Running: cs.State.Running != nil, LastExitCode: -1}
		if cs.State.Waiting != nil {
			st.Waiting = cs.State.Waiting.Reason
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			st.LastExitCode = t.ExitCode
			st.LastReason = t.Reason
		}
		return st, true
	}
	return ContainerState{}, false
}

// ReadySince returns when the pod's Ready condition turned True; ok is false when the
// pod is not Ready.
func ReadySince(pod *corev1.Pod) (time.Time, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status != corev1.ConditionTrue {
				return time.Time{}, false
			}
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}
