package main

import (
	"context"
	"encoding/json"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/webhook"
)

// canaryUpdateRevision is the revision the canary pod of the promotion case runs.
const canaryUpdateRevision = "pd-upgrade-example-pingdirectory-7f9b8c6d54"

// prepareBenchCases builds the four requests of the benchmark. The object to validate is
// the one pdguard itself patched, as the API server would send it.
func prepareBenchCases(ctx context.Context, c *client) ([]benchCase, error) {
	live := fixture.Live()
	tagged := fixture.WithTag(fixture.Live(), newTag)
	mutate, err := newRequest("/mutate", live, tagged, checkCanaryPatch(live))
	if err != nil {
		return nil, err
	}
	var patch []jsonpatch.JsonPatchOperation
	keep := mutate
	keep.check = func(r *admissionv1.AdmissionResponse) error {
		if err := mutate.check(r); err != nil {
			return err
		}
		return json.Unmarshal(r.Patch, &patch)
	}
	if _, err := c.call(ctx, &keep); err != nil {
		return nil, fmt.Errorf("tag change: %w", err)
	}
	patched, err := webhook.ApplyPatch(tagged, patch)
	if err != nil {
		return nil, err
	}
	validate, err := newRequest("/validate", live, patched, checkAllowed)
	if err != nil {
		return nil, err
	}

	// As the API server sends a review: with the managedFields of a Helm 4 install.
	applied, err := newRequest("/mutate", fixture.WithManagedFields(fixture.Live()), fixture.WithManagedFields(fixture.WithTag(fixture.Live(), newTag)), checkCanaryPatch(live))
	if err != nil {
		return nil, err
	}

	touched := fixture.Live()
	touched.Labels["example.com/team"] = "directory"
	touched.Annotations["example.com/ticket"] = "OPS-1234"
	unrelated, err := newRequest("/validate", live, touched, checkAllowed)
	if err != nil {
		return nil, err
	}

	open := openCanary(patched)
	promote := open.DeepCopy()
	promote.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(0))
	promotion, err := newRequest("/validate", open, promote, checkDenied("partition-gate"))
	if err != nil {
		return nil, err
	}

	cases := []benchCase{
		{name: "mutate tag change", pdguard: mutate},
		{name: "mutate tag change, managedFields", pdguard: applied},
		{name: "validate mutated", pdguard: validate},
		{name: "validate unrelated update", pdguard: unrelated},
		{name: "validate promotion, canary open", pdguard: promotion},
	}
	for _, bc := range cases {
		if _, err := c.call(ctx, &bc.pdguard); err != nil {
			return nil, fmt.Errorf("%s: %w", bc.name, err)
		}
	}
	return cases, nil
}

// openCanary is the mutated StatefulSet once the controller has rolled the top ordinal:
// two revisions in status, so the canary is open.
func openCanary(patched *appsv1.StatefulSet) *appsv1.StatefulSet {
	sts := patched.DeepCopy()
	sts.Status.ObservedGeneration = sts.Generation
	sts.Status.UpdateRevision = canaryUpdateRevision
	sts.Status.UpdatedReplicas = 1
	return sts
}

// createCanaryPods stores the StatefulSet and the pods of the open canary, ready, so the promotion case reads
// them from pdguard's cache as in a cluster: the canary on the update revision, the rest
// on the current one.
func createCanaryPods(ctx context.Context, cp *controlplane.ControlPlane) error {
	cs, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		return err
	}
	sts := openCanary(fixture.WithTag(fixture.Live(), newTag))
	if err := ensureNamespace(ctx, cs, sts.Namespace); err != nil {
		return err
	}
	// The reviews are about this StatefulSet, stored as in a cluster, so the audit
	// Reports of its denials have their owner; no controller runs here to act on it.
	stored := fixture.Live()
	stored.ResourceVersion, stored.UID, stored.Status = "", "", appsv1.StatefulSetStatus{}
	if _, err := cs.AppsV1().StatefulSets(stored.Namespace).Create(ctx, stored, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("storing the StatefulSet the reviews are about: %w", err)
	}
	for i := range *sts.Spec.Replicas {
		rev := sts.Status.CurrentRevision
		if i == *sts.Spec.Replicas-1 {
			rev = canaryUpdateRevision
		}
		pod := fixture.Pod(sts, i, rev)
		if i != *sts.Spec.Replicas-1 {
			pod = fixture.Pod(fixture.Live(), i, rev)
		}
		if err := createReadyPod(ctx, cs, pod); err != nil {
			return err
		}
	}
	return nil
}

// ensureNamespace creates the namespace and its default service account, which pod
// admission needs and no controller makes here.
func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	_, err = cs.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the default service account in %s: %w", name, err)
	}
	return nil
}

// createReadyPod stores a pod and then its status, which create ignores.
func createReadyPod(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	status := pod.Status
	pod = pod.DeepCopy()
	pod.ResourceVersion, pod.UID = "", ""
	created, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	created.Status = status
	if _, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting the status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
