//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// namespacesName is the selector label value of this test's StatefulSets, so that only
// its pdguard guards them (see ownName).
const namespacesName = "pingdirectory-ns"

// TestNamespacesMode runs `webhook serve` with the chart's flags and rights for
// rbac.namespaces [a, b] and self-managed certificates, as the chart's ServiceAccount with
// only the rendered Roles: it fills its Secret and caBundle, takes its lease, answers the
// webhooks and judges a canary in a, and the API server refuses it nothing (no "is
// forbidden:" in its log). With the chart's write policy in force, that ServiceAccount may
// not delete an unguarded pod in either namespace, and RBAC keeps it out of any other.
func TestNamespacesMode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const name = "pdguard-ns"
	const policyLabel = "pdguard.test/nsmode-policy"
	nsA, nsB, other := "nsmode-a", "nsmode-b", "nsmode-other"
	for _, ns := range []string{nsA, nsB, other} {
		if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{policyLabel: "on"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	values := []string{"certManager.enabled=false", "fullnameOverride=" + name, "rbac.namespaces={" + nsA + "," + nsB + "}",
		`guard.selector.app\.kubernetes\.io/name=` + namespacesName}
	srv, id := startSelfManaged(t, name, values, nil,
		"--leader-election-namespace="+pdguardproc.Namespace, "--soak="+serveSoak, "--evidence-recheck="+serveRecheck)
	if !strings.Contains(strings.Join(srv.Args(), " "), "--watch-namespaces="+nsA+","+nsB) {
		t.Fatalf("the chart's args do not scope pdguard to the namespaces: %q", srv.Args())
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop()
		}
	}()
	if err := env.cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{
		Name: name, URL: srv.URL, CABundle: env.guard.CAPEM,
		Selector:                map[string]string{selectorLabel: namespacesName},
		MutatingFailurePolicy:   admissionregistrationv1.Ignore,
		ValidatingFailurePolicy: admissionregistrationv1.Fail,
	}); err != nil {
		t.Fatal(err)
	}
	secret, err := env.admin.CoreV1().Secrets(pdguardproc.Namespace).Get(ctx, name+"-tls", metav1.GetOptions{})
	if err != nil || len(secret.Data["ca.crt"]) == 0 {
		t.Fatalf("pdguard is ready but its Secret holds no CA: %v", err)
	}
	eventually(t, ctx, "pdguard's CA in the validating webhook configuration", func() (bool, string) {
		v, err := env.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		return err == nil && bytes.Equal(v.Webhooks[0].ClientConfig.CABundle, secret.Data["ca.crt"]), fmt.Sprint(err)
	})

	// A canary in a, judged by the evidence controller, which watches a and b only.
	g := &guarded{t: t, ctx: ctx, ns: nsA, name: fixture.Name}
	g.eventually("the default service account", func() (bool, string) {
		_, err := env.admin.CoreV1().ServiceAccounts(nsA).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	sts := chartStatefulSet(nsA)
	ownName(namespacesName)(sts)
	if _, err := env.admin.AppsV1().StatefulSets(nsA).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.waitImages(oldImage, oldImage)
	g.openCanary()
	g.serveLog(1, "success-migration.log")
	g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	g.waitEvent("ReplaceProfileVerdict", func(e eventsv1.Event) bool { return strings.Contains(e.Note, "replace-profile Succeeded") })

	// The chart's write policy for this release, bound to these namespaces only.
	installWritePolicy(t, values, policyLabel)
	cfg, err := clientcmd.BuildConfigFromFlags("", id.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	asPdguard, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dryRun := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	for _, ns := range []string{nsA, nsB, other} {
		unguarded := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "unguarded", Namespace: ns, Labels: map[string]string{"app": "other"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/app:1"}}},
		}
		eventually(t, ctx, "the default service account in "+ns, func() (bool, string) {
			_, err := env.admin.CoreV1().Pods(ns).Create(ctx, unguarded, metav1.CreateOptions{})
			return err == nil, fmt.Sprint(err)
		})
		var denial error
		eventually(t, ctx, "a refusal in "+ns, func() (bool, string) {
			denial = asPdguard.CoreV1().Pods(ns).Delete(ctx, unguarded.Name, dryRun)
			return denial != nil, fmt.Sprintf("dry-run delete of %s/unguarded as %s: %v", ns, id.User, denial)
		})
		msg := apiMessage(denial)
		switch {
		case !apierrors.IsForbidden(denial):
			t.Errorf("%s: want forbidden, got %v", ns, denial)
		case ns == other && !strings.Contains(msg, "cannot delete resource \"pods\""):
			t.Errorf("%s is not in rbac.namespaces: want RBAC's refusal, got %s", ns, msg)
		case ns != other && !strings.Contains(msg, "may only touch objects labelled "+selectorLabel+"="+namespacesName):
			t.Errorf("%s: want the write policy's denial naming the guarded labels, got %s", ns, msg)
		}
		t.Logf("%s: deleting an unguarded pod as %s: %s", ns, id.User, msg)
	}
	if err := asPdguard.CoreV1().Pods(nsA).Delete(ctx, podName(1), dryRun); err != nil {
		t.Errorf("pdguard may delete a guarded pod in %s (it replaces a failed canary), got: %v", nsA, err)
	}

	srv.Stop()
	stopped = true
	logs := srv.Logs()
	for _, want := range []string{`"msg":"Successfully acquired lease","lock":"` + pdguardproc.Namespace + "/" + name + `-evidence"`, "stop signal received"} {
		if !strings.Contains(logs, want) {
			t.Errorf("pdguard's log lacks %q (%s)", want, srv.LogPath)
		}
	}
	if lines := srv.Forbidden(); len(lines) > 0 {
		t.Errorf("the API server refused pdguard (as %s, rbac.namespaces) %d calls:\n%s", id.User, len(lines), strings.Join(lines, "\n"))
	}
}
