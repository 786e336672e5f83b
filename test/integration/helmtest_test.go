//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// TestHelmTestHook renders the chart's `helm test` hook, applies its objects as helm would
// (all but the Pod, which KWOK would not run), and runs the Pod's command, the pdguard
// binary with the Pod's args, as the hook's ServiceAccount: it passes against a serving
// pdguard, and fails with a reason when pdguard does not answer or no webhook is called.
func TestHelmTestHook(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, err := client.New(env.cp.RESTConfig(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chart := pdguardproc.ChartOf(env.cp, env.binary)

	// The release namespace is never sent to the webhooks: the chart must refuse it.
	if _, err := chart.Render(ctx, []string{"helmTest.namespace=" + pdguardproc.Namespace}, "templates/tests/selftest.yaml"); err == nil || !strings.Contains(err.Error(), "is not sent to the webhooks") {
		t.Errorf("helmTest.namespace=%s (the release namespace): want the chart to refuse it, got %v", pdguardproc.Namespace, err)
	}

	for _, tc := range []struct {
		name, ns string
		// values beside helmTest.namespace; a lane label in guard.selector routes the
		// StatefulSet away from the shared pdguard.
		values []string
		// extra flags after the Pod's args
		extra []string
		// down registers webhooks at a closed port for the lane once the objects exist,
		// as when pdguard stops serving after the install.
		down     bool
		wantPass bool
		want     []string
	}{
		{
			name: "serving", ns: "helm-test",
			// The harness registers the shared pdguard's validating webhook under its own name.
			extra:    []string{"--validating-webhook=validate.pdguard.pdguard.io"},
			wantPass: true,
			want:     []string{"selftest passed", `admission webhook "validate.pdguard.pdguard.io" denied the request: pdguard: [bundled-config-and-version] pdguard refused StatefulSet helm-test/pdguard-selftest`, "with spec.replicas"},
		},
		{
			name: "not serving", ns: "helm-test-down",
			values: []string{`guard.selector.pdguard\.test/lane=helmtest-down`},
			extra:  []string{"--validating-webhook=validate.pdguard-helmtest-down.pdguard.io", "--timeout=3s"},
			down:   true,
			want:   []string{"selftest failed: the API server could not call pdguard", `failed calling webhook "validate.pdguard-helmtest-down.pdguard.io"`, "Check that the pdguard pods are Ready"},
		},
		{
			name: "no webhook", ns: "helm-test-none",
			values: []string{`guard.selector.pdguard\.test/lane=helmtest-none`},
			extra:  []string{"--timeout=3s"},
			want:   []string{"selftest failed: the API server admitted the dry-run update of StatefulSet helm-test-none/pdguard-selftest", "without pdguard refusing it"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tc.ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			objs, err := chart.Render(ctx, append([]string{"helmTest.namespace=" + tc.ns}, tc.values...), "templates/tests/selftest.yaml")
			if err != nil {
				t.Fatal(err)
			}
			var pod *unstructured.Unstructured
			var rest []*unstructured.Unstructured
			for _, o := range objs {
				ann := o.GetAnnotations()
				if ann["helm.sh/hook"] != "test" || !strings.Contains(ann["helm.sh/hook-delete-policy"], "hook-succeeded") {
					t.Errorf("%s %s is not a test hook deleted once it passes: annotations %v", o.GetKind(), o.GetName(), ann)
				}
				if o.GetKind() == "Pod" {
					pod = o
				} else {
					rest = append(rest, o)
				}
			}
			if pod == nil {
				t.Fatalf("the chart's test hook renders no Pod: %d objects", len(objs))
			}
			// The StatefulSet must never start a pod.
			for _, o := range rest {
				if r, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas"); o.GetKind() == "StatefulSet" && r != 0 {
					t.Errorf("the test's StatefulSet has %d replicas, want 0", r)
				}
			}
			if err := pdguardproc.Apply(ctx, c, rest, false); err != nil {
				t.Fatal(err)
			}
			if tc.down {
				// A port that was free a moment ago and is closed now: pdguard is not serving.
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				down := "https://" + l.Addr().String()
				l.Close()
				if err := env.cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{
					Name: "pdguard-helmtest-down", URL: down, CABundle: env.guard.CAPEM,
					Selector:                map[string]string{selectorLabel: selectorValue, laneLabel: "helmtest-down"},
					MutatingFailurePolicy:   admissionregistrationv1.Ignore,
					ValidatingFailurePolicy: admissionregistrationv1.Fail,
				}); err != nil {
					t.Fatal(err)
				}
				// The API server takes the new configurations up asynchronously.
				eventually(t, ctx, "the closed port in force", func() (bool, string) {
					_, err := env.admin.AppsV1().StatefulSets(tc.ns).Patch(ctx, "pdguard-selftest", types.MergePatchType, []byte(`{"metadata":{"labels":{"probe":"x"}}}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
					return err != nil && strings.Contains(err.Error(), "failed calling webhook"), fmt.Sprint(err)
				})
			}
			sa, _, _ := unstructured.NestedString(pod.Object, "spec", "serviceAccountName")
			kubeconfig, err := pdguardproc.TokenKubeconfig(ctx, env.cp, pod.GetNamespace(), sa)
			if err != nil {
				t.Fatal(err)
			}
			containers, _, _ := unstructured.NestedSlice(pod.Object, "spec", "containers")
			if len(containers) != 1 {
				t.Fatalf("the test Pod has %d containers, want 1", len(containers))
			}
			args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
			if len(args) == 0 || args[0] != "selftest" {
				t.Fatalf("the test Pod's args %q do not run selftest", args)
			}
			args = append(append(args, "--kubeconfig="+kubeconfig), tc.extra...)
			began := time.Now()
			cmd := exec.CommandContext(ctx, env.binary, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err = cmd.Run()
			took := time.Since(began).Round(time.Millisecond)
			t.Logf("webhook %s as %s/%s (%s): %v\n%s", strings.Join(args, " "), pod.GetNamespace(), sa, took, err, out.String())
			if passed := err == nil; passed != tc.wantPass {
				t.Errorf("selftest passed=%v, want %v", passed, tc.wantPass)
			}
			if w := missing(out.String(), tc.want...); w != "" {
				t.Errorf("selftest output lacks %q", w)
			}
		})
	}
	// The hook's ServiceAccount may do nothing else: not even read another StatefulSet.
	kubeconfig, err := pdguardproc.TokenKubeconfig(context.WithoutCancel(ctx), env.cp, pdguardproc.Namespace, "pdguard-selftest")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, env.cp.BinDir()+"/kubectl", "--kubeconfig="+kubeconfig, "auth", "can-i", "--list", "-n", "helm-test").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl auth can-i --list: %v\n%s", err, out)
	}
	t.Logf("the hook's ServiceAccount may, in helm-test:\n%s", out)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "statefulsets.apps") && !strings.Contains(line, "[pdguard-selftest]") {
			t.Errorf("the hook's ServiceAccount has rights on StatefulSets beyond its own: %q", line)
		}
	}
}
