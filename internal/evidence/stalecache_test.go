package evidence

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// staleCache serves reads from a snapshot of the objects that lags the writes, as the
// manager's informer cache does for the moment between a patch and its watch event.
type staleCache struct {
	client.Client // writes, and the truth
	reads         client.Client
	scheme        *runtime.Scheme
}

func (s *staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return s.reads.Get(ctx, key, obj, opts...)
}

func (s *staleCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return s.reads.List(ctx, list, opts...)
}

// catchUp makes the reads show every write so far.
func (s *staleCache) catchUp(t *testing.T) { s.refresh(t, s.Client) }

// catchUpPods makes the reads show every write to pods so far, and StatefulSets as they
// were: the pod informer has delivered the controller's verdict, the StatefulSet
// informer not yet its promotion step.
func (s *staleCache) catchUpPods(t *testing.T) { s.refresh(t, s.reads) }

func (s *staleCache) refresh(t *testing.T, setsFrom client.Client) {
	t.Helper()
	var objs []client.Object
	var pods corev1.PodList
	var sets appsv1.StatefulSetList
	if err := s.Client.List(context.Background(), &pods); err != nil {
		t.Fatal(err)
	}
	if err := setsFrom.List(context.Background(), &sets); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		objs = append(objs, &pods.Items[i])
	}
	for i := range sets.Items {
		objs = append(objs, &sets.Items[i])
	}
	s.reads = fake.NewClientBuilder().WithScheme(s.scheme).WithObjects(objs...).Build()
}

// setPod changes the canary pod in both the truth and the reads: a kubelet status update
// the informer has already delivered, while the verdict patch has not arrived yet.
func (s *staleCache) setPod(t *testing.T, name string, change func(*corev1.Pod)) {
	t.Helper()
	for _, c := range []client.Client{s.Client, s.reads} {
		var pod corev1.Pod
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: fixture.Namespace, Name: name}, &pod); err != nil {
			t.Fatal(err)
		}
		change(&pod)
		want := pod.Status
		// A client that serves pods' status as a subresource ignores it in Update.
		if err := c.Update(context.Background(), &pod); err != nil {
			t.Fatal(err)
		}
		pod.Status = want
		_ = c.Status().Update(context.Background(), &pod)
		var got corev1.Pod
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(&pod), &got); err != nil || got.Status.ContainerStatuses[0].ContainerID != want.ContainerStatuses[0].ContainerID || got.Status.ContainerStatuses[0].Ready != want.ContainerStatuses[0].Ready {
			t.Fatalf("the pod's status change did not take: %v", err)
		}
	}
}

// recordsOf keeps the controller's records of one kind.
type recordsOf struct {
	kind    string
	mu      sync.Mutex
	records []audit.Record
}

func (v *recordsOf) Record(r audit.Record) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.Kind == v.kind {
		v.records = append(v.records, r)
	}
}

// readingStale points r at a stale view of c, caught up once, and collects r's audit
// records of kind.
func readingStale(t *testing.T, r *Reconciler, c client.Client, kind string) (*staleCache, *recordsOf) {
	t.Helper()
	cache := &staleCache{Client: c, scheme: c.Scheme()}
	cache.catchUp(t)
	r.Client = cache
	rec := &recordsOf{kind: kind}
	r.Audit = rec
	return cache, rec
}

// A canary coming up is reconciled many times (every kubelet status update of the pod
// triggers one) while the controller's cache still lacks the verdict it just wrote. Each
// verdict change is one record and one Event, however often the same state is read again.
func TestOneRecordPerVerdictChangeDespiteAStaleCache(t *testing.T) {
	sts, objs := canarySet(false)
	canary := objs[2].(*corev1.Pod)
	// The canary's container has not started: the kubelet reports it waiting.
	canary.Status.ContainerStatuses[0].ContainerID = ""
	canary.Status.ContainerStatuses[0].Ready = false
	canary.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	for i := range canary.Status.Conditions {
		if canary.Status.Conditions[i].Type == corev1.PodReady || canary.Status.Conditions[i].Type == corev1.ContainersReady {
			canary.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	logs := fileLogs{canary.Name: "in-progress.log"}
	r, c, _ := newReconciler(t, objs, logs, false)
	cache, rec := readingStale(t, r, c, audit.KindVerdict)
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(sts)}
	reconcile := func(times int) {
		t.Helper()
		for range times {
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := func(verdicts ...string) {
		t.Helper()
		var got []string
		for _, r := range rec.records {
			got = append(got, r.Verdict)
		}
		if strings.Join(got, ",") != strings.Join(verdicts, ",") {
			t.Fatalf("verdict records = %v, want %v", got, verdicts)
		}
	}

	// Three reconciles before the cache shows the InProgress verdict: one record.
	reconcile(3)
	want(rollout.VerdictInProgress)
	if got := rec.records[0].Message; !strings.Contains(got, "container has not started yet") {
		t.Errorf("record = %q, want the not-started reason", got)
	}
	cache.catchUp(t)
	reconcile(2)
	want(rollout.VerdictInProgress)

	// The container starts and replace-profile runs: still InProgress, nothing new to
	// report, whether or not the cache has the newer verdict yet.
	started := func(pod *corev1.Pod) {
		pod.Status.ContainerStatuses[0].ContainerID = "containerd://started"
		pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-time.Hour))}}
	}
	cache.setPod(t, canary.Name, started)
	reconcile(3)
	cache.catchUp(t)
	reconcile(2)
	want(rollout.VerdictInProgress)

	// The migration finishes and the pod is Ready: one Succeeded record, read again and
	// again through a cache that shows the older InProgress verdict.
	logs[canary.Name] = "success-migration.log"
	cache.setPod(t, canary.Name, func(pod *corev1.Pod) {
		pod.Status.ContainerStatuses[0].Ready = true
		for i := range pod.Status.Conditions {
			if pod.Status.Conditions[i].Type == corev1.PodReady || pod.Status.Conditions[i].Type == corev1.ContainersReady {
				pod.Status.Conditions[i].Status = corev1.ConditionTrue
				pod.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now.Add(-time.Hour))
			}
		}
	})
	reconcile(4)
	want(rollout.VerdictInProgress, rollout.VerdictSucceeded)
	cache.catchUp(t)
	reconcile(2)
	want(rollout.VerdictInProgress, rollout.VerdictSucceeded)

	// The verdicts written are what the records say.
	var pod corev1.Pod
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), &pod); err != nil {
		t.Fatal(err)
	}
	if v, err := rollout.ReadVerdict(&pod); err != nil || v == nil || v.Verdict != rollout.VerdictSucceeded || v.ContainerID != "containerd://started" {
		t.Errorf("verdict on the pod = %+v (%v), want Succeeded for the started container", v, err)
	}

	// Each record is its own Event: distinct notes, and the Succeeded one is Normal.
	seen := map[string]bool{}
	for i := range rec.records {
		e, ok := audit.EventFor(&rec.records[i])
		if !ok || e.Type != corev1.EventTypeNormal {
			t.Errorf("record %d has Event %+v (ok %v), want a Normal one", i, e, ok)
		}
		if seen[e.Reason+e.Note] {
			t.Errorf("two Events %s %q", e.Reason, e.Note)
		}
		seen[e.Reason+e.Note] = true
	}
}

// A verdict removed by hand is written again at the next judgement: nothing but the pod
// itself says what was written.
func TestARemovedVerdictIsWrittenAgain(t *testing.T) {
	sts, objs := canarySet(false)
	canary := objs[2].(*corev1.Pod)
	r, c, _ := newReconciler(t, objs, fileLogs{canary.Name: "in-progress.log"}, false)
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(sts)}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), &pod); err != nil {
		t.Fatal(err)
	}
	delete(pod.Annotations, rollout.ReplaceProfileAnnotation)
	if err := c.Update(context.Background(), &pod); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_ = c.Get(context.Background(), client.ObjectKeyFromObject(canary), &pod)
	if _, ok := pod.Annotations[rollout.ReplaceProfileAnnotation]; !ok {
		t.Error("the removed verdict was not written again")
	}
}

// After a promotion step the pods' next events reconcile the StatefulSet again, its
// verdicts in the cache but not yet the lowered partition: the step is taken and reported once, not once per
// reconcile of the stale partition.
func TestOnePromotionPerStepDespiteAStaleCache(t *testing.T) {
	sts, objs := canarySet(true)
	r, c, _ := newReconciler(t, objs, fileLogs{"pd-upgrade-example-pingdirectory-1": "success-migration.log"}, false)
	cache, rec := readingStale(t, r, c, audit.KindPromotion)
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(sts)}
	for range 3 {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		cache.catchUpPods(t)
	}
	var got appsv1.StatefulSet
	if err := c.Get(context.Background(), req.NamespacedName, &got); err != nil {
		t.Fatal(err)
	}
	if p, _ := rollout.Partition(&got); p != 0 {
		t.Fatalf("partition = %d, want 0: the proven canary was not promoted", p)
	}
	if len(rec.records) != 1 {
		t.Fatalf("%d promotion records for one step (partition 1 -> 0) read three times from a stale cache, want 1", len(rec.records))
	}
	cache.catchUp(t)
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(rec.records) != 1 {
		t.Fatalf("%d promotion records after the cache caught up, want 1", len(rec.records))
	}
}
