package openreports

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pdguard/pdguard/internal/audit"
)

// calls counts what a Sink asks of the API server.
type calls struct{ gets, creates, updates int }

func countingClient(t *testing.T, n *calls, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := appsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := reportsv1alpha1.Install(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			n.gets++
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			n.creates++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			n.updates++
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
}

// TestSinkSkipsRecordsItsReportHolds: a denial repeated in a loop is read from the API
// server once per writtenFor, not once per batch, while a new record is written at once
// and an old one again once the memo has expired.
func TestSinkSkipsRecordsItsReportHolds(t *testing.T) {
	var n calls
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "pd", Name: "pd", UID: "u1"}}
	now := t0
	s := &Sink{Client: countingClient(t, &n, sts), Log: logr.Discard(), MaxResults: 100, Now: func() time.Time { return now }}
	ctx := context.Background()
	denied := rec(0, nil)
	write := func(records ...audit.Record) {
		t.Helper()
		if err := s.Write(ctx, records); err != nil {
			t.Fatal(err)
		}
	}
	report := func() reportsv1alpha1.Report {
		t.Helper()
		var rep reportsv1alpha1.Report
		if err := s.Client.Get(ctx, types.NamespacedName{Namespace: "pd", Name: ReportName("pd")}, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}

	write(denied, denied)
	if n.creates != 1 || n.gets != 2 {
		t.Fatalf("first write: %+v, want the StatefulSet and the Report read and the Report created", n)
	}
	before := n
	for range 50 {
		now = now.Add(20 * time.Millisecond)
		write(denied)
	}
	if n != before {
		t.Errorf("50 batches of a denial the Report holds, within %s: %+v after %+v, want no call", writtenFor, n, before)
	}

	warned := rec(time.Second, func(r *audit.Record) { r.Outcome, r.Reasons, r.Warnings = audit.Warned, nil, []string{"one replica"} })
	write(denied, warned)
	if n.updates != 1 {
		t.Errorf("a new record beside a known one: %d updates, want 1", n.updates)
	}
	if got := len(report().Results); got != 2 {
		t.Errorf("the Report has %d results, want the denial and the warning", got)
	}

	// Once the memo is older than writtenFor the Report is read again: a deleted Report
	// gets the denial back.
	if err := s.Client.Delete(ctx, &reportsv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Namespace: "pd", Name: ReportName("pd")}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(writtenFor)
	creates := n.creates
	write(denied)
	if n.creates != creates+1 {
		t.Errorf("after %s, a deleted Report: %d creates, want one more than %d", writtenFor, n.creates, creates)
	}
	if got := report().Results; len(got) != 1 || got[0].Properties[KeyProperty] != denied.Key() {
		t.Errorf("the recreated Report holds %v, want the denial alone", got)
	}
}

// TestSinkForgetsStatefulSetsWithoutRecentRecords keeps the memo to the StatefulSets
// that had records within writtenFor.
func TestSinkForgetsStatefulSetsWithoutRecentRecords(t *testing.T) {
	var n calls
	var objs []client.Object
	for _, name := range []string{"a", "b"} {
		objs = append(objs, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "pd", Name: name, UID: types.UID(name)}})
	}
	now := t0
	s := &Sink{Client: countingClient(t, &n, objs...), Log: logr.Discard(), MaxResults: 100, Now: func() time.Time { return now }}
	for _, name := range []string{"a", "b"} {
		if err := s.Write(context.Background(), []audit.Record{rec(0, func(r *audit.Record) { r.Name, r.UID = name, types.UID(name) })}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.written) != 2 {
		t.Fatalf("memo holds %d Reports, want 2", len(s.written))
	}
	now = now.Add(writtenFor)
	if err := s.Write(context.Background(), []audit.Record{rec(time.Second, func(r *audit.Record) { r.Name, r.UID, r.User = "a", "a", "bob" })}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.written[types.NamespacedName{Namespace: "pd", Name: "b"}]; ok || len(s.written) != 1 {
		t.Errorf("memo holds %v, want only pd/a after %s without records for pd/b", s.written, writtenFor)
	}
}

// TestSinkRemembersARefusedCreate: a create refused in a loop has no StatefulSet to hold
// its Report; the sink looks for it once per writtenFor, and a record of another kind
// (the set created since) looks again at once and gets its Report.
func TestSinkRemembersARefusedCreate(t *testing.T) {
	var n calls
	now := t0
	s := &Sink{Client: countingClient(t, &n), Log: logr.Discard(), MaxResults: 100, Now: func() time.Time { return now }}
	ctx := context.Background()
	refused := rec(0, func(r *audit.Record) { r.Operation, r.UID = "CREATE", "" })
	for range 50 {
		if err := s.Write(ctx, []audit.Record{refused}); err != nil {
			t.Fatalf("a refused create is not a sink error: %v", err)
		}
		now = now.Add(20 * time.Millisecond)
	}
	if n.gets != 1 {
		t.Errorf("50 batches of a refused create: %d reads, want 1", n.gets)
	}
	now = now.Add(writtenFor)
	if err := s.Write(ctx, []audit.Record{refused}); err != nil {
		t.Fatal(err)
	}
	if n.gets != 2 {
		t.Errorf("after %s: %d reads, want 2", writtenFor, n.gets)
	}

	if err := s.Client.Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "pd", Name: "pd", UID: "u1"}}); err != nil {
		t.Fatal(err)
	}
	created := rec(time.Second, func(r *audit.Record) {
		r.Operation, r.Outcome, r.Reasons, r.Warnings = "CREATE", audit.Warned, nil, []string{"one replica"}
	})
	if err := s.Write(ctx, []audit.Record{refused, created}); err != nil {
		t.Fatal(err)
	}
	if n.creates != 2 { // the StatefulSet above, and its Report
		t.Errorf("the created set's record: %d creates, want its Report created", n.creates-1)
	}
}
