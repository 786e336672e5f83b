package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/rollout"
)

type captured struct {
	mu                      sync.Mutex
	types, reasons, actions []string
	notes                   []string
}

func (c *captured) Eventf(_ runtime.Object, _ runtime.Object, eventtype, reason, action, note string, args ...interface{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types = append(c.types, eventtype)
	c.reasons = append(c.reasons, reason)
	c.actions = append(c.actions, action)
	c.notes = append(c.notes, fmt.Sprintf(note, args...))
}

func TestEventSinkWritesOneEventPerReportedRecord(t *testing.T) {
	sts := &appsv1.StatefulSet{}
	tests := map[string]struct {
		r          Record
		wantReason string
		wantType   string
	}{
		"a denial is a Warning RolloutBlocked":                          {r: Record{Webhook: "validate", Outcome: Denied, Rules: []string{"partition-gate"}, Reasons: []string{"not proven"}}, wantReason: ReasonRolloutBlocked, wantType: "Warning"},
		"a mutating refusal is a Warning RolloutBlocked":                {r: Record{Webhook: "mutate", Outcome: Denied, Reasons: []string{"OnDelete"}}, wantReason: ReasonRolloutBlocked, wantType: "Warning"},
		"an admitted override is GuardOverridden":                       {r: Record{Webhook: "validate", Outcome: Warned, Rules: []string{"bundled-config-and-version", "override"}}, wantReason: ReasonOverride, wantType: "Warning"},
		"warnings alone are RolloutWarned":                              {r: Record{Webhook: "validate", Outcome: Warned, Rules: []string{"unreadable-version"}}, wantReason: ReasonRolloutWarned, wantType: "Warning"},
		"an admitted request that opens a canary is CanaryStarted":      {r: Record{Webhook: "validate", Outcome: Allowed, Canary: &rollout.CanaryRecord{FromImage: "pd:9.0.0.1-latest", ToImage: "pd:9.1.0.0-latest", Partition: 1}}, wantReason: ReasonCanaryStarted, wantType: "Normal"},
		"an admitted promotion names the verdicts it rests on":          {r: Record{Webhook: "validate", Outcome: Allowed, Proof: []rollout.Proof{{Pod: "pd-1", ContainerID: "containerd://c1", Revision: "pd-7c8d"}}}, wantReason: ReasonPromoted, wantType: "Normal"},
		"warn mode opening a canary with a would-deny is RolloutWarned": {r: Record{Webhook: "validate", Outcome: Warned, Mode: "warn", Rules: []string{"bundled-config-and-version"}, Canary: &rollout.CanaryRecord{FromImage: "pd:9.0.0.1-latest", ToImage: "pd:9.1.0.0-latest", Partition: 1}}, wantReason: ReasonRolloutWarned, wantType: "Warning"},
		"a canary still coming up is a Normal verdict":                  {r: Record{Kind: KindVerdict, Verdict: rollout.VerdictInProgress, Message: "pod pd-1: replace-profile InProgress"}, wantReason: ReasonVerdict, wantType: "Normal"},
		"a failed canary is a Warning verdict":                          {r: Record{Kind: KindVerdict, Verdict: rollout.VerdictFailed, Message: "pod pd-1: replace-profile Failed"}, wantReason: ReasonVerdict, wantType: "Warning"},
		"the mutating webhook's patch alone writes no event":            {r: Record{Webhook: "mutate", Outcome: Patched, Rules: []string{"canary-partition"}}},
		"a dry-run denial writes no event":                              {r: Record{Webhook: "validate", Outcome: Denied, DryRun: true}},
		"an allowed request with nothing to say writes no event":        {r: Record{Webhook: "validate", Outcome: Allowed}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ev := &captured{}
			if tc.r.Kind == "" {
				tc.r.Kind = KindAdmission
			}
			tc.r.Object, tc.r.User = sts, "helm"
			if err := (EventSink{Admission: ev, Controller: ev}).Write(context.Background(), []Record{tc.r}); err != nil {
				t.Fatal(err)
			}
			if tc.wantReason == "" {
				if len(ev.reasons) != 0 {
					t.Fatalf("events = %v, want none", ev.reasons)
				}
				return
			}
			if len(ev.reasons) != 1 || ev.reasons[0] != tc.wantReason || ev.types[0] != tc.wantType {
				t.Fatalf("events = %v %v, want one %s %s", ev.types, ev.reasons, tc.wantType, tc.wantReason)
			}
			if tc.wantReason == ReasonCanaryStarted && !strings.Contains(ev.notes[0], "move from pd:9.0.0.1-latest to pd:9.1.0.0-latest") {
				t.Errorf("CanaryStarted note %q does not describe the canary", ev.notes[0])
			}
			if tc.wantReason == ReasonPromoted && !strings.Contains(ev.notes[0], "pd-1 (container containerd://c1, revision pd-7c8d") {
				t.Errorf("CanaryPromoted note %q does not name the verdict", ev.notes[0])
			}
		})
	}
}

func TestDifferentDenialsAreDifferentEventsAndRecords(t *testing.T) {
	base := Record{Kind: KindAdmission, Webhook: "validate", Namespace: "pd", Name: "pd", UID: "u1", Operation: "UPDATE", User: "helm",
		Outcome: Denied, Rules: []string{"partition-gate"}, Basis: "41", Object: &appsv1.StatefulSet{}}
	inProgress, failed, retried := base, base, base
	inProgress.Reasons = []string{"pod pd-1: replace-profile InProgress"}
	failed.Reasons = []string{"pod pd-1: replace-profile Failed"}
	retried.Reasons = inProgress.Reasons
	retried.Time = time.Now().Add(time.Minute)

	if inProgress.Key() != retried.Key() {
		t.Errorf("a retried identical request has key %s, the first %s", retried.Key(), inProgress.Key())
	}
	if inProgress.Key() == failed.Key() {
		t.Errorf("two different denials share key %s", failed.Key())
	}
	later := inProgress
	later.Basis = "57"
	if later.Key() == inProgress.Key() {
		t.Error("the same denial on a changed StatefulSet shares the earlier key")
	}
	a, _ := EventFor(&inProgress)
	b, _ := EventFor(&failed)
	c, _ := EventFor(&retried)
	if a.Action == b.Action {
		t.Errorf("two different denials have the same Event action %q, so the events API folds them into one series", a.Action)
	}
	if a.Action != c.Action {
		t.Errorf("a repeated denial has action %q, the first %q: it should join the first's series", c.Action, a.Action)
	}
}

func TestEventNoteFitsTheEventsAPI(t *testing.T) {
	if note := note1k("helm", []string{"bundled-config-and-version"}, strings.Repeat("x", 4000)); len(note) > 1024 {
		t.Fatalf("note is %d bytes, the events API takes 1024", len(note))
	}
}

// slowSink blocks every Write until release is closed.
type slowSink struct {
	release chan struct{}
	mu      sync.Mutex
	got     []Record
}

func (*slowSink) Name() string { return "slow" }

func (s *slowSink) Write(ctx context.Context, records []Record) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, records...)
	return nil
}

func denial(i int) Record {
	return Record{Kind: KindAdmission, Webhook: "validate", Namespace: "pd", Name: fmt.Sprintf("pd-%d", i), Outcome: Denied, Reasons: []string{"no"}, Object: &appsv1.StatefulSet{}}
}

func TestFullQueueDropsAndCountsWithoutBlocking(t *testing.T) {
	reg := prometheus.NewRegistry()
	sink := &slowSink{release: make(chan struct{})}
	p := New(Options{Log: logr.Discard(), Registerer: reg, Sinks: []Sink{sink}, QueueSize: 2, BatchSize: 1})
	p.Start()
	const sent = 50
	done := make(chan struct{})
	go func() {
		for i := range sent {
			p.Record(denial(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	dropped := testutil.ToFloat64(p.metrics.dropped.WithLabelValues("queue full"))
	// One record is held by the blocked sink, two wait in the queue.
	if dropped < sent-3 {
		t.Errorf("dropped = %v, want at least %d of %d", dropped, sent-3, sent)
	}
	if got := testutil.ToFloat64(p.metrics.decisions.WithLabelValues("validate", Denied, "")); got != sent {
		t.Errorf("decision metric = %v, want every one of %d records counted", got, sent)
	}
	close(sink.release)
	if left := p.Shutdown(5 * time.Second); left != 0 {
		t.Errorf("%d records left after drain", left)
	}
	if n := len(sink.got) + int(dropped); n != sent {
		t.Errorf("written %d + dropped %v != sent %d", len(sink.got), dropped, sent)
	}
	if written := testutil.ToFloat64(p.metrics.written); int(written) != len(sink.got) {
		t.Errorf("written metric = %v, want the %d records the sink got", written, len(sink.got))
	}
}

func TestShutdownWritesEveryQueuedRecordOrCountsItWithinTheTimeout(t *testing.T) {
	sink := &slowSink{release: make(chan struct{})}
	close(sink.release)
	p := New(Options{Log: logr.Discard(), Sinks: []Sink{sink}, QueueSize: 100})
	p.Start()
	for i := range 40 {
		p.Record(denial(i))
	}
	if left := p.Shutdown(5 * time.Second); left != 0 {
		t.Fatalf("%d records left", left)
	}
	if len(sink.got) != 40 {
		t.Errorf("sink got %d records, want 40", len(sink.got))
	}
	p.Record(denial(99))
	if got := testutil.ToFloat64(p.metrics.dropped.WithLabelValues("shutting down")); got != 1 {
		t.Errorf("a record after shutdown counted %v times as dropped, want 1", got)
	}

	stuck := &slowSink{release: make(chan struct{})}
	q := New(Options{Log: logr.Discard(), Sinks: []Sink{stuck}, QueueSize: 100, BatchSize: 1})
	q.Start()
	for i := range 5 {
		q.Record(denial(i))
	}
	if left := q.Shutdown(100 * time.Millisecond); left == 0 {
		t.Error("a sink that never returns drained within the timeout")
	}
}

func TestPlainAllowedRequestsTakeNoQueueSpace(t *testing.T) {
	sink := &slowSink{release: make(chan struct{})}
	close(sink.release)
	p := New(Options{Log: logr.Discard(), Sinks: []Sink{sink}, QueueSize: 10})
	p.Start()
	for range 100 {
		p.Record(Record{Kind: KindAdmission, Webhook: "mutate", Outcome: Patched, Object: &appsv1.StatefulSet{}})
		p.Record(Record{Kind: KindAdmission, Webhook: "validate", Outcome: Allowed, Object: &appsv1.StatefulSet{}})
	}
	p.Shutdown(time.Second)
	if len(sink.got) != 0 {
		t.Errorf("%d plain allowed records reached the slow sinks", len(sink.got))
	}
}

type refs struct{ regarding, related []runtime.Object }

func (r *refs) Eventf(regarding, related runtime.Object, _, _, _, _ string, _ ...interface{}) {
	r.regarding, r.related = append(r.regarding, regarding), append(r.related, related)
}

// client-go's recorder folds a repeated Event into one series only when both references
// are equal; the pod's resourceVersion moves with every status update, so the sink names
// the objects without it.
func TestEventSinkNamesObjectsWithoutTheirResourceVersion(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ping", Name: "pd", UID: "sts-uid", ResourceVersion: "10"}}
	pod := func(rv string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ping", Name: "pd-1", UID: "pod-uid", ResourceVersion: rv}}
	}
	rec := func(rv string) Record {
		return Record{Kind: KindVerdict, Verdict: rollout.VerdictInProgress, Message: "pod pd-1: replace-profile InProgress", Object: sts, RelatedPod: pod(rv)}
	}
	got := &refs{}
	for _, rv := range []string{"11", "12"} {
		if err := (EventSink{Controller: got}).Write(context.Background(), []Record{rec(rv)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got.regarding) != 2 {
		t.Fatalf("%d events, want 2", len(got.regarding))
	}
	want := []*corev1.ObjectReference{
		{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: "ping", Name: "pd", UID: "sts-uid"},
		{APIVersion: "v1", Kind: "Pod", Namespace: "ping", Name: "pd-1", UID: "pod-uid"},
	}
	for i := range got.regarding {
		for j, o := range []runtime.Object{got.regarding[i], got.related[i]} {
			ref, ok := o.(*corev1.ObjectReference)
			if !ok || *ref != *want[j] {
				t.Errorf("event %d names %#v, want %#v", i, o, want[j])
			}
		}
	}
}

// A request retried after the StatefulSet controller's status write moved the live
// object's resourceVersion is the same decision, one record; a spec change between the
// two (a new generation) makes it another.
func TestRecordKeyFollowsTheGenerationNotTheResourceVersion(t *testing.T) {
	live := func(rv string, generation int64) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ping", Name: "pd", UID: "sts-uid", ResourceVersion: rv, Generation: generation}}
	}
	key := func(old *appsv1.StatefulSet) string {
		r := Record{Kind: KindAdmission, Webhook: "validate", Operation: "UPDATE", Outcome: Denied, Reasons: []string{"refused"}}
		r.FromObjects(old, live("", old.Generation+1), "pingdirectory")
		return r.Key()
	}
	if a, b := key(live("10", 3)), key(live("11", 3)); a != b {
		t.Errorf("a retry after a status write has key %s, the first try %s: want one record", b, a)
	}
	if a, b := key(live("10", 3)), key(live("12", 4)); a == b {
		t.Errorf("a request against a newer spec has the same key %s: want another record", a)
	}
}

// A decision repeated within one batch is one Event; a different decision, the same one on
// another StatefulSet or pod, and the same one in a later batch are each recorded.
func TestEventSinkRecordsARepeatOncePerBatch(t *testing.T) {
	sts := func(name string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ping", Name: name, UID: types.UID(name + "-uid")}}
	}
	denial := func(object *appsv1.StatefulSet, reason string) Record {
		return Record{Kind: KindAdmission, Webhook: "validate", Outcome: Denied, User: "helm", Rules: []string{"partition-gate"}, Reasons: []string{reason}, Object: object}
	}
	verdict := func(pod string) Record {
		return Record{Kind: KindVerdict, Verdict: rollout.VerdictInProgress, Message: "replace-profile InProgress", Object: sts("pd"),
			RelatedPod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ping", Name: pod, UID: types.UID(pod)}}}
	}
	notProven := denial(sts("pd"), "pod pd-2: replace-profile InProgress")
	batch := []Record{
		notProven, notProven, notProven,
		denial(sts("pd"), "pod pd-2: replace-profile Failed"),
		denial(sts("other"), "pod pd-2: replace-profile InProgress"),
		verdict("pd-1"), verdict("pd-1"), verdict("pd-2"),
	}
	ev := &captured{}
	sink := EventSink{Admission: ev, Controller: ev}
	if err := sink.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if len(ev.notes) != 5 {
		t.Fatalf("%d Events for 3 distinct denials and 2 distinct verdicts in one batch, want 5:\n%s", len(ev.notes), strings.Join(ev.notes, "\n"))
	}
	if !strings.Contains(ev.notes[0], "pd-2: replace-profile InProgress") || !strings.Contains(ev.notes[1], "Failed") {
		t.Errorf("Events out of the records' order:\n%s", strings.Join(ev.notes, "\n"))
	}
	if err := sink.Write(context.Background(), []Record{notProven, notProven}); err != nil {
		t.Fatal(err)
	}
	if len(ev.notes) != 6 {
		t.Errorf("%d Events after a second batch repeating one denial, want 6: each batch records it once", len(ev.notes))
	}
}
