//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

const writePolicyLabel = "pdguard.test/write-policy"

// installWritePolicy creates the chart's write policy rendered with values, its binding
// limited to the namespaces labelled label=on, until the test ends.
func installWritePolicy(t *testing.T, values []string, label string) {
	t.Helper()
	ctx := t.Context()
	objs, err := pdguardproc.ChartOf(env.cp, env.binary).Render(ctx, values, "templates/write-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var policy admissionregistrationv1.ValidatingAdmissionPolicy
	var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
	for _, o := range objs {
		var into any = &policy
		if o.GetKind() == "ValidatingAdmissionPolicyBinding" {
			into = &binding
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
			t.Fatal(err)
		}
	}
	if policy.Name == "" || binding.Name == "" {
		t.Fatalf("the chart rendered no write policy and binding: %d objects", len(objs))
	}
	binding.Spec.MatchResources = &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "on"}},
	}
	ar := env.admin.AdmissionregistrationV1()
	if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, &policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API server refused the chart's write policy: %v", err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, &binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = ar.ValidatingAdmissionPolicyBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{})
		_ = ar.ValidatingAdmissionPolicies().Delete(ctx, policy.Name, metav1.DeleteOptions{})
	})
}

// TestWritePolicyKeepsPdguardToGuardedPods: with the chart's write policy in force,
// pdguard's own ServiceAccount, which RBAC lets delete any pod, is refused deleting a pod
// without the guard.selector labels, and still may delete a guarded one.
func TestWritePolicyKeepsPdguardToGuardedPods(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Only this test's namespace: the other tests show what pdguard does without it.
	installWritePolicy(t, nil, writePolicyLabel)

	ns := "write-policy"
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{writePolicyLabel: "on"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, labels map[string]string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/app:1"}}},
		}
		created, err := env.admin.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return created
	}
	unguarded := pod("unguarded", map[string]string{"app": "other"})
	guarded := pod("guarded", map[string]string{selectorLabel: selectorValue})

	cfg, err := clientcmd.BuildConfigFromFlags("", env.guard.Identity.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	asPdguard, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dryRun := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	var denial error
	eventually(t, ctx, "the write policy in force", func() (bool, string) {
		denial = asPdguard.CoreV1().Pods(ns).Delete(ctx, unguarded.Name, dryRun)
		return denial != nil, fmt.Sprintf("dry-run delete of the unguarded pod as %s: %v", env.guard.Identity.User, denial)
	})
	if !apierrors.IsForbidden(denial) || !strings.Contains(denial.Error(), "may only touch objects labelled "+selectorLabel+"="+selectorValue) {
		t.Fatalf("want the policy's denial naming the guarded labels, got: %v", denial)
	}
	err = asPdguard.CoreV1().Pods(ns).Delete(ctx, unguarded.Name, metav1.DeleteOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("deleting the unguarded pod as pdguard: want forbidden, got %v", err)
	}
	if _, err := env.admin.CoreV1().Pods(ns).Get(ctx, unguarded.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the unguarded pod is gone: %v", err)
	}
	if err := asPdguard.CoreV1().Pods(ns).Delete(ctx, guarded.Name, dryRun); err != nil {
		t.Errorf("pdguard may delete a guarded pod (it replaces a failed canary), got: %v", err)
	}
	t.Logf("write policy denial: %s", apiMessage(denial))
}
