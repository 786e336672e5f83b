package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const (
	stableRev = "pd-upgrade-example-pingdirectory-6d4cf56db6"
	canaryRev = "pd-upgrade-example-pingdirectory-7f9c8b5d4c"
)

type fileLogs map[string]string // pod name -> fixture file

func (f fileLogs) ReadLog(_ context.Context, _, pod, _ string, _ int64) (io.ReadCloser, error) {
	name, ok := f[pod]
	if !ok {
		return nil, fmt.Errorf("no log for %s", pod)
	}
	return os.Open("logscan/testdata/" + name)
}

type events struct {
	mu    sync.Mutex
	notes []string
}

// Record keeps the Event each audit record is reported as.
func (e *events) Record(r audit.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev, ok := audit.EventFor(&r); ok {
		e.notes = append(e.notes, ev.Type+" "+ev.Reason+" "+ev.Note)
	}
}

func canarySet(autoPromote bool) (*appsv1.StatefulSet, []client.Object) {
	sts := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
	one := int32(1)
	sts.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &one}
	sts.Status.CurrentRevision, sts.Status.UpdateRevision = stableRev, canaryRev
	sts.Status.ObservedGeneration = sts.Generation
	if autoPromote {
		sts.Annotations = map[string]string{rollout.AutoPromoteAnnotation: "true"}
	}
	stable := fixture.WithTag(fixture.Live(), "9.0.0.1-latest")
	p0 := fixture.Pod(stable, 0, stableRev)
	p1 := fixture.Pod(sts, 1, canaryRev)
	for _, p := range []*corev1.Pod{p0, p1} {
		p.OwnerReferences[0].UID = sts.UID
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now.Add(-time.Hour))
			}
		}
	}
	return sts, []client.Object{sts, p0, p1}
}

func newReconciler(t *testing.T, objs []client.Object, logs fileLogs, autoPromote bool) (*Reconciler, client.Client, *events) {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&appsv1.StatefulSet{}).Build()
	ev := &events{}
	sel, _ := labels.Parse("app.kubernetes.io/name=pingdirectory")
	r := &Reconciler{
		Client: c, Logs: logs, Audit: ev, Now: func() time.Time { return now },
		Opts: Options{Selector: sel, Container: "pingdirectory", LogLimitBytes: 1 << 20, Recheck: 10 * time.Second, Soak: 30 * time.Second, AutoPromote: autoPromote},
	}
	return r, c, ev
}

func TestReconcileWritesVerdicts(t *testing.T) {
	tests := map[string]struct {
		log         string
		wantVerdict string
		wantEvent   string
		wantRequeue bool
	}{
		"a canary whose log shows the migration gets a Succeeded verdict and a Normal event": {
			log: "success-migration.log", wantVerdict: rollout.VerdictSucceeded, wantEvent: "Normal ReplaceProfileVerdict",
		},
		"a canary whose migration failed behind tee gets a Failed verdict and a Warning event": {
			log: "failed-masked-step-error.log", wantVerdict: rollout.VerdictFailed, wantEvent: "Warning ReplaceProfileVerdict",
		},
		"a canary still migrating is read again later": {
			log: "in-progress.log", wantVerdict: rollout.VerdictInProgress, wantEvent: "Normal ReplaceProfileVerdict", wantRequeue: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, objs := canarySet(false)
			r, c, ev := newReconciler(t, objs, fileLogs{"pd-upgrade-example-pingdirectory-1": tc.log}, false)
			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: sts.Namespace, Name: sts.Name}})
			if err != nil {
				t.Fatal(err)
			}
			if (res.RequeueAfter > 0) != tc.wantRequeue {
				t.Errorf("requeue after = %s, want requeue %v", res.RequeueAfter, tc.wantRequeue)
			}
			v, pod := canaryVerdict(t, c, sts.Namespace)
			cs, _ := rollout.Container(&pod, "pingdirectory")
			if v.Verdict != tc.wantVerdict || v.Revision != canaryRev || v.ContainerID != cs.ID {
				t.Errorf("verdict = %+v, want %s for revision %s and container %s", v, tc.wantVerdict, canaryRev, cs.ID)
			}
			var stablePod corev1.Pod
			_ = c.Get(context.Background(), types.NamespacedName{Namespace: sts.Namespace, Name: "pd-upgrade-example-pingdirectory-0"}, &stablePod)
			if _, ok := stablePod.Annotations[rollout.ReplaceProfileAnnotation]; ok {
				t.Error("the pod on the stable revision was judged")
			}
			if len(ev.notes) != 1 || !strings.HasPrefix(ev.notes[0], tc.wantEvent) {
				t.Errorf("events = %q, want one starting %q", ev.notes, tc.wantEvent)
			}
			// A second pass with nothing new writes nothing and records no event.
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: sts.Namespace, Name: sts.Name}}); err != nil {
				t.Fatal(err)
			}
			if len(ev.notes) != 1 {
				t.Errorf("second pass recorded events %q", ev.notes[1:])
			}
		})
	}
}

func TestAutoPromotion(t *testing.T) {
	tests := map[string]struct {
		log           string
		wantPartition int32
		wantEvent     string
	}{
		"a proven canary is promoted one ordinal":                  {log: "success-migration.log", wantPartition: 0, wantEvent: "Normal CanaryPromoted"},
		"a failed canary is not promoted and the halt is reported": {log: "failed-banner.log", wantPartition: 1, wantEvent: "Warning PromotionHalted"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, objs := canarySet(true)
			r, c, ev := newReconciler(t, objs, fileLogs{"pd-upgrade-example-pingdirectory-1": tc.log}, false)
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: sts.Namespace, Name: sts.Name}}); err != nil {
				t.Fatal(err)
			}
			var got appsv1.StatefulSet
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(sts), &got); err != nil {
				t.Fatal(err)
			}
			if p, _ := rollout.Partition(&got); p != tc.wantPartition {
				t.Errorf("partition = %d, want %d", p, tc.wantPartition)
			}
			found := false
			for _, n := range ev.notes {
				found = found || strings.HasPrefix(n, tc.wantEvent)
			}
			if !found {
				t.Errorf("events = %q, want one starting %q", ev.notes, tc.wantEvent)
			}
		})
	}
}

func TestNoCanaryNothingIsRead(t *testing.T) {
	sts := fixture.Live()
	r, _, ev := newReconciler(t, []client.Object{sts}, fileLogs{}, false)
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: sts.Namespace, Name: sts.Name}}); err != nil {
		t.Fatal(err)
	}
	if len(ev.notes) != 0 {
		t.Errorf("events on a StatefulSet with no rollout: %q", ev.notes)
	}
}

func TestRevertedCrashLoopingCanaryIsReplaced(t *testing.T) {
	tests := map[string]struct {
		crashLoop   bool
		wantDeleted bool
	}{
		"a crash-looping canary left on the reverted revision is deleted":         {crashLoop: true, wantDeleted: true},
		"a running canary off the revision is left to the StatefulSet controller": {crashLoop: false, wantDeleted: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, objs := canarySet(false)
			// The tag was reverted: the template and both revisions are back on the stable one.
			sts := fixture.WithTag(fixture.Live(), "9.0.0.1-latest")
			one := int32(1)
			sts.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &one}
			sts.Status.CurrentRevision, sts.Status.UpdateRevision = stableRev, stableRev
			sts.Status.ObservedGeneration = sts.Generation
			canary := objs[2].(*corev1.Pod)
			canary.OwnerReferences[0].UID = sts.UID
			if tc.crashLoop {
				canary.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
				canary.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
				canary.Status.ContainerStatuses[0].RestartCount = 4
			}
			r, c, ev := newReconciler(t, []client.Object{sts, objs[1], canary}, fileLogs{}, false)
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(sts)}); err != nil {
				t.Fatal(err)
			}
			var got corev1.Pod
			err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), &got)
			deleted := err != nil
			if deleted != tc.wantDeleted {
				t.Fatalf("canary deleted = %v, want %v (events %q)", deleted, tc.wantDeleted, ev.notes)
			}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(objs[1]), &got); err != nil {
				t.Errorf("the stable pod is gone: %v", err)
			}
			if tc.wantDeleted && (len(ev.notes) == 0 || !strings.Contains(ev.notes[0], "BrokenPodReplaced")) {
				t.Errorf("events = %q, want BrokenPodReplaced", ev.notes)
			}
		})
	}
}

func TestAForgedVerdictIsReplacedAndReported(t *testing.T) {
	sts, objs := canarySet(true)
	canary := objs[2].(*corev1.Pod)
	cs, _ := rollout.Container(canary, "pingdirectory")
	forged := rollout.Verdict{Verdict: rollout.VerdictSucceeded, Revision: canaryRev, ContainerID: cs.ID, From: "9.0.0.1", To: "9.1.0.0", ObservedAt: now.Add(-time.Hour)}
	raw, _ := json.Marshal(forged)
	canary.Annotations = map[string]string{rollout.ReplaceProfileAnnotation: string(raw)}
	r, c, ev := newReconciler(t, objs, fileLogs{canary.Name: "in-progress.log"}, true)
	r.Key = rollout.VerdictKey("0123456789abcdef0123456789abcdef")

	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: sts.Namespace, Name: sts.Name}})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter == 0 {
		t.Error("a canary still migrating is not read again")
	}
	var pod corev1.Pod
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(canary), &pod); err != nil {
		t.Fatal(err)
	}
	v, err := rollout.ReadVerdict(&pod)
	if err != nil || v == nil || v.Verdict != rollout.VerdictInProgress {
		t.Fatalf("verdict after reconcile = %+v (%v), want pdguard's own InProgress", v, err)
	}
	if err := r.Key.Trust(&pod, v); err != nil {
		t.Errorf("pdguard's verdict is not signed: %v", err)
	}
	var live appsv1.StatefulSet
	_ = c.Get(context.Background(), client.ObjectKeyFromObject(sts), &live)
	if p, _ := rollout.Partition(&live); p != 1 {
		t.Errorf("partition = %d: the forged verdict got the canary promoted", p)
	}
	notes := strings.Join(ev.notes, "\n")
	if !strings.Contains(notes, "Warning ForgedVerdict") || !strings.Contains(notes, "written by ") || !strings.Contains(notes, "no pdguard signature") {
		t.Errorf("events = %s, want a ForgedVerdict warning naming the writer and why", notes)
	}
}

// A canary whose log cannot be read gets a verdict that says so, is read again later,
// and becomes Succeeded once its log can be read.
func TestReconcileUnreadableLog(t *testing.T) {
	sts, objs := canarySet(false)
	r, c, _ := newReconciler(t, objs, fileLogs{}, false)
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: sts.Namespace, Name: sts.Name}}
	verdict := func() *rollout.Verdict {
		t.Helper()
		v, _ := canaryVerdict(t, c, sts.Namespace)
		return v
	}
	res, err := r.Reconcile(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter == 0 {
		t.Error("a canary whose log could not be read is not read again")
	}
	if v := verdict(); v.Verdict != rollout.VerdictInProgress || !strings.Contains(v.Reason, "could not be read") || !strings.Contains(v.Reason, "no log for") {
		t.Errorf("verdict = %+v, want InProgress saying the log could not be read and why", v)
	}
	r.Logs = fileLogs{"pd-upgrade-example-pingdirectory-1": "success-migration.log"}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if v := verdict(); v.Verdict != rollout.VerdictSucceeded {
		t.Errorf("verdict once the log can be read = %+v, want Succeeded", v)
	}
}

// After an API server restart the cache can still show the canary without the Succeeded
// verdict the API server has already: the write conditioned on the cached pod's
// resourceVersion is refused, so the verdict is neither rewritten nor reported again.
func TestReconcileDoesNotRewriteAVerdictTheCacheHasNotSeen(t *testing.T) {
	sts, objs := canarySet(false)
	logs := fileLogs{"pd-upgrade-example-pingdirectory-1": "success-migration.log"}
	r, live, _ := newReconciler(t, objs, logs, false)
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: sts.Namespace, Name: sts.Name}}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: sts.Namespace, Name: "pd-upgrade-example-pingdirectory-1"}
	var written corev1.Pod
	if err := live.Get(context.Background(), key, &written); err != nil {
		t.Fatal(err)
	}

	// A second reconciler whose cache still has the pod as it was before that write.
	_, stale := canarySet(false)
	again, cache, ev := newReconciler(t, stale, logs, false)
	// Reads come from the stale cache, writes go to the API server.
	again.Client = &staleCache{Client: live, reads: cache}
	again.Now = func() time.Time { return now.Add(5 * time.Second) }
	if _, err := again.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var after corev1.Pod
	_ = live.Get(context.Background(), key, &after)
	if after.Annotations[rollout.ReplaceProfileAnnotation] != written.Annotations[rollout.ReplaceProfileAnnotation] {
		t.Errorf("verdict rewritten from %s to %s", written.Annotations[rollout.ReplaceProfileAnnotation], after.Annotations[rollout.ReplaceProfileAnnotation])
	}
	if len(ev.notes) != 0 {
		t.Errorf("the verdict was reported again: %q", ev.notes)
	}
}

// canaryVerdict reads the verdict on the canary pod, ordinal 1, failing without one.
func canaryVerdict(t *testing.T, c client.Client, ns string) (*rollout.Verdict, corev1.Pod) {
	t.Helper()
	var pod corev1.Pod
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "pd-upgrade-example-pingdirectory-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	v, err := rollout.ReadVerdict(&pod)
	if err != nil || v == nil {
		t.Fatalf("no verdict on the canary pod: %v", err)
	}
	return v, pod
}

// A verdict judged from a pod that changed since it was read (a cache behind the
// controller's own write) is not written over the fresh pod, nor reported again.
func TestAStalePodIsNotWritten(t *testing.T) {
	sts, objs := canarySet(false)
	r, c, ev := newReconciler(t, objs, fileLogs{}, false)
	ctx := context.Background()
	key := types.NamespacedName{Namespace: sts.Namespace, Name: "pd-upgrade-example-pingdirectory-1"}
	var stale corev1.Pod
	if err := c.Get(ctx, key, &stale); err != nil {
		t.Fatal(err)
	}
	fresh := stale.DeepCopy()
	fresh.Annotations = map[string]string{rollout.ReplaceProfileAnnotation: `{"verdict":"Succeeded"}`}
	if err := c.Update(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	err := r.writeVerdict(ctx, &stale, rollout.Verdict{Verdict: rollout.VerdictSucceeded, Reason: "again"})
	if !errors.Is(err, errStalePod) {
		t.Fatalf("writing over a changed pod: got %v, want errStalePod", err)
	}
	var got corev1.Pod
	if err := c.Get(ctx, key, &got); err != nil {
		t.Fatal(err)
	}
	if a := got.Annotations[rollout.ReplaceProfileAnnotation]; a != `{"verdict":"Succeeded"}` {
		t.Errorf("the fresh pod's verdict was overwritten: %s", a)
	}
	if len(ev.notes) != 0 {
		t.Errorf("reported: %q", ev.notes)
	}
}
