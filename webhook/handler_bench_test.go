package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// BenchmarkHandler is one AdmissionReview through the HTTP handler the server registers,
// without TLS: decoding the review and both objects, the decision, and the encoded answer.
func BenchmarkHandler(b *testing.B) {
	g := newGuard(b, nil)
	req, patched := decisionRequests(b, g)
	touched := fixture.Live()
	touched.Annotations["example.com/ticket"] = "OPS-1234"
	sel := labels.SelectorFromSet(labels.Set{"app.kubernetes.io/name": "pingdirectory"})
	// A promotion attempt during an open canary whose pods are in the cache.
	live := openCanary()
	pods := canaryPods(live, time.Hour, nil)
	pods = canaryPods(live, time.Hour, succeededFor(canaryRev, containerID(pods[1])))
	for _, c := range []struct {
		name, phase string
		old, new    *appsv1.StatefulSet
		pods        []corev1.Pod
	}{
		{"mutate tag change", "mutate", req.Old, req.New, nil},
		{"validate mutated", "validate", patched.Old, patched.New, nil},
		{"validate unrelated update", "validate", fixture.Live(), touched, nil},
		{"validate promotion open canary", "validate", live, withPartition(openCanaryNoStatus(), 0), pods},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := reviewBody(b, c.old, c.new)
			h := &Handler{Phase: c.phase, Guard: g, Selector: sel, Pods: staticPods(c.pods)}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodPost, "/"+c.phase, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("HTTP %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

func reviewBody(b *testing.B, old, nw *appsv1.StatefulSet) []byte {
	oldRaw, err := json.Marshal(old)
	if err != nil {
		b.Fatal(err)
	}
	newRaw, err := json.Marshal(nw)
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "00000000-0000-4000-8000-000000000001",
			Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
			Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
			Name:      nw.Name,
			Namespace: nw.Namespace,
			Operation: admissionv1.Update,
			UserInfo:  admin,
			Object:    runtime.RawExtension{Raw: newRaw},
			OldObject: runtime.RawExtension{Raw: oldRaw},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecodeReview is the review's own decoding, the objects left as bytes.
func BenchmarkDecodeReview(b *testing.B) {
	body := reviewBody(b, fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeReview(body); err != nil {
			b.Fatal(err)
		}
	}
}
