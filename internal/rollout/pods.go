package rollout

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ListPods lists the pods the StatefulSet's selector matches in its namespace. Admission
// and the evidence controller both read them through their informer cache; Observe then
// keeps only the pods the set owns. opts are added to the list's options.
func ListPods(ctx context.Context, r client.Reader, sts *appsv1.StatefulSet, opts ...client.ListOption) ([]corev1.Pod, error) {
	sel, err := podSelector(sts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("statefulset %s/%s has an invalid selector: %w", sts.Namespace, sts.Name, err)
	}
	var list corev1.PodList
	opts = append([]client.ListOption{client.InNamespace(sts.Namespace), client.MatchingLabelsSelector{Selector: sel}}, opts...)
	if err := r.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing pods of statefulset %s/%s from cache: %w", sts.Namespace, sts.Name, err)
	}
	return list.Items, nil
}

// podSelector is the StatefulSet's selector as a labels.Selector. The API server validated
// it when it stored the object, so a selector of labels alone skips the key and value checks
// of metav1.LabelSelectorAsSelector, a regular expression per label that was a third of
// listing a canary's pods on each promotion attempt.
func podSelector(ps *metav1.LabelSelector) (labels.Selector, error) {
	if ps != nil && len(ps.MatchExpressions) == 0 && len(ps.MatchLabels) > 0 {
		return labels.SelectorFromValidatedSet(ps.MatchLabels), nil
	}
	return metav1.LabelSelectorAsSelector(ps)
}
