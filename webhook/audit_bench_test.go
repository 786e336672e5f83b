package webhook

import (
	"context"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
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
// pipeline off (no pipeline) and on (the JSON log line, metrics and the queue to the
// Event sink, as serve runs it), for a mutate+validate tag change and a denied bundled
// change, which is queued. Off and on alternate within the one loop, the order swapped
// every iteration, so drift in the machine's load falls on both alike; it reports the
// p50 and p99 of each and on/off-p50, the ratio of the medians (make bench-audit takes
// the median of it over several -count runs).
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
		b.Run(name, func(b *testing.B) {
			g := newGuard(b, nil)
			p := audit.New(audit.Options{Log: jsonLog(), Sinks: []audit.Sink{audit.EventSink{Admission: discardEvents{}}}, QueueSize: 1024})
			p.Start()
			defer p.Shutdown(time.Second)
			ctx := context.Background()
			mreq, vreq := cases[name][0], cases[name][1]
			admit := func(pl *audit.Pipeline) time.Duration {
				mutate := &Handler{Phase: "mutate", Guard: g, Selector: sel, Pods: staticPods(nil), Audit: pl, Container: fixture.Container}
				validate := &Handler{Phase: "validate", Guard: g, Selector: sel, Pods: staticPods(nil), Audit: pl, Container: fixture.Container}
				start := time.Now()
				if name == "upgrade" {
					mutate.Handle(ctx, mreq)
				}
				if resp := validate.Handle(ctx, vreq); resp.Allowed == (name == "denied") {
					b.Fatalf("%s: allowed = %v", name, resp.Allowed)
				}
				return time.Since(start)
			}
			var off, on []time.Duration
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					off = append(off, admit(nil))
					on = append(on, admit(p))
				} else {
					on = append(on, admit(p))
					off = append(off, admit(nil))
				}
			}
			offP50, offP99 := percentiles(off)
			onP50, onP99 := percentiles(on)
			b.ReportMetric(offP50, "off-p50-ns")
			b.ReportMetric(offP99, "off-p99-ns")
			b.ReportMetric(onP50, "on-p50-ns")
			b.ReportMetric(onP99, "on-p99-ns")
			if offP50 > 0 {
				b.ReportMetric(onP50/offP50, "on/off-p50")
			}
		})
	}
}

// jsonLog is serve's log encoding (zap, JSON) writing nowhere: the line is built as in
// production, only the write to stderr is left out.
func jsonLog() logr.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	return zapr.NewLogger(zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(io.Discard), zap.InfoLevel)))
}

func percentiles(samples []time.Duration) (p50, p99 float64) {
	if len(samples) == 0 {
		return 0, 0
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	return float64(samples[len(samples)/2].Nanoseconds()), float64(samples[len(samples)*99/100].Nanoseconds())
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
