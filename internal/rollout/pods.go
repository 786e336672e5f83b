package rollout

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ListPods lists the pods the StatefulSet's selector matches in its namespace. Admission
// and the evidence controller both read them through their informer cache; Observe then
// keeps only the pods the set owns.
func ListPods(ctx context.Context, r client.Reader, sts *appsv1.StatefulSet) ([]corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("statefulset %s/%s has an invalid selector: %w", sts.Namespace, sts.Name, err)
	}
	var list corev1.PodList
	if err := r.List(ctx, &list, client.InNamespace(sts.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing pods of statefulset %s/%s from cache: %w", sts.Namespace, sts.Name, err)
	}
	return list.Items, nil
}
