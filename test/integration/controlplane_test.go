//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pdguard/pdguard/certs"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
)

const (
	testImage = "pingidentity/pingdirectory:9.0.0.1-latest"
	appLabel  = "app.kubernetes.io/name"
	denyLabel = "pdguard.test/deny"
)

// TestControlPlane checks what the end-to-end tests and the demo build on: a real
// apiserver that runs StatefulSets to Ready pods on a KWOK node, serves their logs,
// crash-loops pods on request, and calls admission webhooks over TLS.
func TestControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Not t.TempDir: the component logs must outlive a failed run to be read.
	workDir, err := os.MkdirTemp("", "pdguard-integration-")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{
		WorkDir:     workDir,
		Controllers: true,
		KWOK:        true,
		Logf:        t.Logf,
	})
	if err != nil {
		t.Fatalf("starting control plane (work dir %s): %v", workDir, err)
	}
	t.Logf("control plane with controllers and KWOK started in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		began := time.Now()
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping control plane: %v", err)
		}
		t.Logf("control plane stopped in %s", time.Since(began).Round(time.Millisecond))
		if t.Failed() {
			t.Logf("component logs kept in %s", cp.LogDir())
			return
		}
		os.RemoveAll(workDir)
	})

	cs, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := "controlplane-it"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("node is ready", func(t *testing.T) {
		node, err := cs.CoreV1().Nodes().Get(ctx, controlplane.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !nodeReady(node) {
			t.Fatalf("node %s not Ready: %+v", node.Name, node.Status.Conditions)
		}
		if len(node.Spec.Taints) != 0 {
			t.Fatalf("node %s still tainted: %v", node.Name, node.Spec.Taints)
		}
	})

	t.Run("statefulset pods become ready", func(t *testing.T) {
		began := time.Now()
		if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, statefulSet("pingdirectory", 2), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var pods []corev1.Pod
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: appLabel + "=pingdirectory"})
			if err != nil {
				return false, err
			}
			pods = list.Items
			if len(pods) != 2 {
				return false, nil
			}
			for _, p := range pods {
				if !runningAndReady(&p) {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("waiting for 2 Running+Ready pods: %v; pods: %s", err, describePods(pods))
		}
		t.Logf("2 StatefulSet pods Running and Ready %s after create", time.Since(began).Round(time.Millisecond))
		for _, p := range pods {
			ready := podCondition(&p, corev1.PodReady)
			if ready == nil || ready.LastTransitionTime.IsZero() {
				t.Errorf("pod %s: Ready condition without lastTransitionTime: %+v", p.Name, ready)
			}
			if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].ContainerID == "" {
				t.Errorf("pod %s: want one container status with a containerID, got %+v", p.Name, p.Status.ContainerStatuses)
			}
			if p.Spec.NodeName != controlplane.NodeName {
				t.Errorf("pod %s: scheduled to %q, want %q", p.Name, p.Spec.NodeName, controlplane.NodeName)
			}
			claim := "out-dir-" + p.Name
			pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
			if err != nil {
				t.Errorf("pod %s: claim %s: %v", p.Name, claim, err)
			} else if pvc.Status.Phase != corev1.ClaimBound {
				t.Errorf("claim %s is %s, want Bound", claim, pvc.Status.Phase)
			}
		}
	})

	t.Run("pod logs are served through the apiserver", func(t *testing.T) {
		current := []string{"Starting PingDirectory", "Replication is ready", "Server started"}
		previous := []string{"Starting PingDirectory", "ERROR: the server could not be started"}
		began := time.Now()
		if err := cp.ServePodLogs(ctx, ns, "pingdirectory-1", current, previous); err != nil {
			t.Fatal(err)
		}
		t.Logf("KWOK served the logs %s after ServePodLogs was called", time.Since(began).Round(time.Millisecond))
		for _, tc := range []struct {
			previous bool
			want     []string
		}{{false, current}, {true, previous}} {
			raw, err := cs.CoreV1().Pods(ns).GetLogs("pingdirectory-1", &corev1.PodLogOptions{
				Container: controlplane.DefaultContainer,
				Previous:  tc.previous,
			}).DoRaw(ctx)
			if err != nil {
				t.Fatalf("GetLogs(previous=%v): %v", tc.previous, err)
			}
			if got := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("GetLogs(previous=%v) = %q, want %q", tc.previous, got, tc.want)
			}
		}

		// Serving again replaces the log, as a restarted container would.
		replaced := []string{"Server restarted"}
		if err := cp.ServePodLogs(ctx, ns, "pingdirectory-1", replaced, nil); err != nil {
			t.Fatal(err)
		}
		raw, err := cs.CoreV1().Pods(ns).GetLogs("pingdirectory-1", &corev1.PodLogOptions{Container: controlplane.DefaultContainer}).DoRaw(ctx)
		if err != nil {
			t.Fatalf("GetLogs after replacing: %v", err)
		}
		if got := strings.TrimSpace(string(raw)); got != replaced[0] {
			t.Errorf("GetLogs after replacing = %q, want %q", got, replaced[0])
		}
	})

	t.Run("crash loop label", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name:   "crasher",
				Labels: map[string]string{controlplane.CrashLoopLabel: "3"},
			},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: controlplane.DefaultContainer, Image: testImage}}},
		}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var got *corev1.Pod
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got = p
			if len(p.Status.ContainerStatuses) != 1 {
				return false, nil
			}
			s := p.Status.ContainerStatuses[0]
			return s.RestartCount >= 2 && s.LastTerminationState.Terminated != nil, nil
		})
		if err != nil {
			t.Fatalf("waiting for restartCount >= 2: %v; pod: %s", err, describePods([]corev1.Pod{*got}))
		}
		s := got.Status.ContainerStatuses[0]
		if code := s.LastTerminationState.Terminated.ExitCode; code != 3 {
			t.Errorf("lastState.terminated.exitCode = %d, want 3", code)
		}
		if got.Status.Phase != corev1.PodRunning {
			t.Errorf("phase = %s, want Running", got.Status.Phase)
		}
		if ready := podCondition(got, corev1.PodReady); ready == nil || ready.Status != corev1.ConditionFalse {
			t.Errorf("Ready condition = %+v, want False", ready)
		}
		t.Logf("crash-looping container: restartCount %d, lastState.terminated %+v, state %+v",
			s.RestartCount, *s.LastTerminationState.Terminated, s.State)

		// Without the label the pod recovers and keeps its history.
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, controlplane.CrashLoopLabel)
		if _, err := cs.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got = p
			return runningAndReady(p), nil
		})
		if err != nil {
			t.Fatalf("waiting for the pod to recover: %v; pod: %s", err, describePods([]corev1.Pod{*got}))
		}
		if s := got.Status.ContainerStatuses[0]; s.RestartCount < 2 || s.LastTerminationState.Terminated == nil {
			t.Errorf("recovered container lost its history: %+v", s)
		}
	})

	t.Run("apiserver calls admission webhooks over TLS", func(t *testing.T) {
		hook := startWebhook(t)
		if err := cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{URL: hook.url, CABundle: hook.ca}); err != nil {
			t.Fatal(err)
		}
		// The apiserver loads webhook configurations asynchronously: keep trying the
		// update the webhook denies until it is denied.
		began := time.Now()
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, denyLabel)
		var lastErr error
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, lastErr = cs.AppsV1().StatefulSets(ns).Patch(ctx, "pingdirectory", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			if lastErr == nil {
				// Accepted before the webhook was in force; undo and retry.
				undo := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, denyLabel)
				_, err := cs.AppsV1().StatefulSets(ns).Patch(ctx, "pingdirectory", types.MergePatchType, []byte(undo), metav1.PatchOptions{})
				return false, err
			}
			return strings.Contains(lastErr.Error(), "denied by the test webhook"), nil
		})
		if err != nil {
			t.Fatalf("waiting for the webhook to deny a labelled update: %v (last error: %v)", err, lastErr)
		}
		t.Logf("webhooks in force %s after registration; apiserver said: %v", time.Since(began).Round(time.Millisecond), lastErr)
		if hook.mutateCalls.Load() == 0 {
			t.Error("the mutating webhook was never called")
		}
		if !hook.sawTLS.Load() {
			t.Error("the webhook saw no TLS connection")
		}
		// An unlabelled update still goes through both webhooks and is allowed.
		if _, err := cs.AppsV1().StatefulSets(ns).Patch(ctx, "pingdirectory", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"pdguard.test/touched":"yes"}}}`), metav1.PatchOptions{}); err != nil {
			t.Errorf("unlabelled update: %v", err)
		}
	})
}

type testWebhook struct {
	url         string
	ca          []byte
	mutateCalls atomic.Int64
	sawTLS      atomic.Bool
}

// startWebhook serves /mutate (allow everything) and /validate (deny updates that add
// denyLabel) over TLS on 127.0.0.1 with a certificate for that IP.
func startWebhook(t *testing.T) *testWebhook {
	t.Helper()
	bundle, err := certs.Issue(certs.Request{IPAddresses: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(bundle.CertPEM, bundle.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hook := &testWebhook{url: "https://" + l.Addr().String(), ca: bundle.CAPEM}
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		hook.mutateCalls.Add(1)
		review(w, r, hook, func(*admissionv1.AdmissionRequest) *metav1.Status { return nil })
	})
	mux.HandleFunc("/validate", func(w http.ResponseWriter, r *http.Request) {
		review(w, r, hook, func(req *admissionv1.AdmissionRequest) *metav1.Status {
			var sts appsv1.StatefulSet
			if err := json.Unmarshal(req.Object.Raw, &sts); err != nil {
				return &metav1.Status{Message: "test webhook: decoding StatefulSet: " + err.Error()}
			}
			if req.Operation == admissionv1.Update && sts.Labels[denyLabel] == "true" {
				return &metav1.Status{Code: http.StatusForbidden, Message: "denied by the test webhook: " + denyLabel + " is set"}
			}
			return nil
		})
	})
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}, ReadHeaderTimeout: 10 * time.Second}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return hook
}

func review(w http.ResponseWriter, r *http.Request, hook *testWebhook, decide func(*admissionv1.AdmissionRequest) *metav1.Status) {
	if r.TLS != nil {
		hook.sawTLS.Store(true)
	}
	var in admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Request == nil {
		http.Error(w, "test webhook: not an AdmissionReview", http.StatusBadRequest)
		return
	}
	denied := decide(in.Request)
	out := admissionv1.AdmissionReview{
		TypeMeta: in.TypeMeta,
		Response: &admissionv1.AdmissionResponse{UID: in.Request.UID, Allowed: denied == nil, Result: denied},
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func statefulSet(name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{appLabel: "pingdirectory"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: name + "-cluster",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:         controlplane.DefaultContainer,
					Image:        testImage,
					VolumeMounts: []corev1.VolumeMount{{Name: "out-dir", MountPath: "/opt/out"}},
				}}},
			},
			// As in the PingDirectory chart: the pods only schedule once the control
			// plane has bound a volume to each claim.
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "out-dir"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("8Gi")},
					},
				},
			}},
		},
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func runningAndReady(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodReady)
	return p.Status.Phase == corev1.PodRunning && c != nil && c.Status == corev1.ConditionTrue
}

func describePods(pods []corev1.Pod) string {
	var b strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&b, "\n  %s phase=%s node=%q", p.Name, p.Status.Phase, p.Spec.NodeName)
		for _, c := range p.Status.Conditions {
			fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
		}
		for _, s := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, " [%s ready=%v restarts=%d state=%+v last=%+v]", s.Name, s.Ready, s.RestartCount, s.State, s.LastTerminationState)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
