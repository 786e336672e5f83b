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
	// A promotion attempt during an open canary whose pods are in the cache: refused while
	// the canary has no verdict, admitted once it has a Succeeded one.
	live := openCanary()
	unproven := canaryPods(live, time.Hour, nil)
	proven := canaryPods(live, time.Hour, succeededFor(canaryRev, containerID(unproven[1])))
	for _, c := range []struct {
		name, phase string
		old, new    *appsv1.StatefulSet
		pods        []corev1.Pod
		allowed     bool
	}{
		{"mutate tag change", "mutate", req.Old, req.New, nil, true},
		// As the API server sends it: with the managedFields of a Helm 4 install.
		{"mutate tag change with managedFields", "mutate", fixture.WithManagedFields(req.Old.DeepCopy()), fixture.WithManagedFields(req.New.DeepCopy()), nil, true},
		{"validate mutated", "validate", patched.Old, patched.New, nil, true},
		{"validate unrelated update", "validate", fixture.Live(), touched, nil, true},
		{"validate promotion unproven canary", "validate", live, withPartition(openCanaryNoStatus(), 0), unproven, false},
		{"validate promotion proven canary", "validate", live, withPartition(openCanaryNoStatus(), 0), proven, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := reviewBody(b, c.old, c.new)
			h := &Handler{Phase: c.phase, Guard: g, Selector: sel, Pods: staticPods(c.pods)}
			serve := func() *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodPost, "/"+c.phase, bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("HTTP %d: %s", w.Code, w.Body)
				}
				return w
			}
			var answer admissionv1.AdmissionReview
			if err := json.Unmarshal(serve().Body.Bytes(), &answer); err != nil {
				b.Fatal(err)
			}
			if answer.Response == nil {
				b.Fatal("the answer carries no response")
			}
			if answer.Response.Allowed != c.allowed {
				b.Fatalf("allowed = %v, want %v: %+v", answer.Response.Allowed, c.allowed, answer.Response.Result)
			}
			b.ReportAllocs()
			for b.Loop() {
				serve()
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
