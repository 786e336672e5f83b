package webhook

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// discardEvents stands in for the API server's Event writes, which the pipeline does on
// its own goroutine.
type discardEvents struct{}

func (discardEvents) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...interface{}) {
}

// BenchmarkAdmissionAudit is one admission answer through the handler with the audit
// pipeline off (no record at all) and on (log line, metrics and the queue to the Event
// sink), for a mutate+validate tag change and a denied bundled change, which is queued.
// It reports p50 and p99 of each answer.
func BenchmarkAdmissionAudit(b *testing.B) {
	sel, _ := labels.Parse("app.kubernetes.io/name=pingdirectory")
	live := fixture.Live()
	upgrade := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
	bundled := withEnv(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "MAX_HEAP_SIZE", "4g")
	_, patched := decisionRequests(b, newGuard(b, nil))
	// mutate sees the request as sent, validate the object the API server patched.
	cases := map[string][]admission.Request{
		"upgrade": {admissionRequest(b, live, upgrade), admissionRequest(b, live, patched.New)},
		"denied":  {admissionRequest(b, live, bundled), admissionRequest(b, live, bundled)},
	}
	for _, name := range []string{"upgrade", "denied"} {
		for _, mode := range []string{"off", "on"} {
			b.Run(name+"/audit-"+mode, func(b *testing.B) {
				g := newGuard(b, nil)
				var p *audit.Pipeline
				if mode == "on" {
					p = audit.New(audit.Options{Log: logr.Discard(), Sinks: []audit.Sink{audit.EventSink{Admission: discardEvents{}}}, QueueSize: 1024})
					p.Start()
					defer p.Shutdown(time.Second)
				}
				mutate := &Handler{Phase: "mutate", Guard: g, Selector: sel, Pods: staticPods(nil), Audit: p, Container: fixture.Container}
				validate := &Handler{Phase: "validate", Guard: g, Selector: sel, Pods: staticPods(nil), Audit: p, Container: fixture.Container}
				ctx := context.Background()
				mreq, vreq := cases[name][0], cases[name][1]
				samples := make([]time.Duration, 0, 4096)
				b.ReportAllocs()
				for b.Loop() {
					start := time.Now()
					if name == "upgrade" {
						mutate.Handle(ctx, mreq)
					}
					if resp := validate.Handle(ctx, vreq); resp.Allowed == (name == "denied") {
						b.Fatalf("%s: allowed = %v", name, resp.Allowed)
					}
					samples = append(samples, time.Since(start))
				}
				sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
				if n := len(samples); n > 0 {
					b.ReportMetric(float64(samples[n/2].Nanoseconds()), "p50-ns")
					b.ReportMetric(float64(samples[n*99/100].Nanoseconds()), "p99-ns")
				}
			})
		}
	}
}

func admissionRequest(b *testing.B, old, nw runtime.Object) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "4f0c8f3e-1d2b-4c3a-9e8f-000000000002",
		Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
		Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
		Name:      "pd-upgrade-example-pingdirectory",
		Namespace: "ping",
		Operation: admissionv1.Update,
		UserInfo:  authenticationv1.UserInfo{Username: "helm-user", Groups: []string{"system:authenticated"}},
		Object:    runtime.RawExtension{Raw: mustJSON(b, nw)},
		OldObject: runtime.RawExtension{Raw: mustJSON(b, old)},
	}}
}
