//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// directUser signs the reviews a test posts straight to pdguard, so its decision lines
// are told apart from the ones the API server caused.
const directUser = "fault-test-direct"

// kube-apiserver is stopped and started again (same port, etcd and certificates) while a
// canary is open. While it is down nothing calls the webhook, and a review posted to
// pdguard directly is answered from its cache; once it is back the evidence controller
// resumes, writes the canary's Succeeded verdict once, and the promotion rests on it.
// Not parallel: every test's API server is down for a moment.
func TestFaultAPIServerRestartDuringCanary(t *testing.T) {
	g := newGuarded(t, "fault-apiserver")
	began := time.Now()
	g.serveLog(1, "in-progress.log")
	g.openCanary()
	g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress })

	live := g.get()
	promotion := live.DeepCopy()
	zero := int32(0)
	promotion.Spec.UpdateStrategy.RollingUpdate.Partition = &zero
	review := adminReview(t, admissionv1.Update, live, promotion, func(r *admissionv1.AdmissionRequest) { r.UserInfo.Username = directUser })
	called := func() int { return len(g.apiserverDecisions()) }
	before := called()

	down := time.Now()
	if err := env.cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	up := false
	t.Cleanup(func() {
		if !up {
			if _, err := env.cp.StartAPIServer(context.Background()); err != nil {
				t.Errorf("starting kube-apiserver again: %v", err)
			}
		}
	})
	ans := postReview(t, guardClient(t), badInput{path: "/validate", body: review})
	if ans.status != 200 || ans.resp.Allowed {
		t.Errorf("with the API server down, the promotion review got HTTP %d allowed=%v: %s", ans.status, ans.resp.Allowed, ans.raw)
	}
	if m := missing(ans.message(), "Pod "+podName(1)+":", rollout.VerdictInProgress); m != "" {
		t.Errorf("the answer from the cache %s: %s", m, ans.message())
	}
	// The canary finishes its migration while the API server is down.
	if err := env.cp.ReplacePodLog(g.ns, podName(1), successLines(t)); err != nil {
		t.Fatal(err)
	}
	if n := called(); n != before {
		t.Errorf("the webhook was called %d times through the API server while it was down", n-before)
	}
	restartTook, err := env.cp.StartAPIServer(g.ctx)
	up = err == nil
	noteRestart(down, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	outage := time.Since(down)
	logf("kube-apiserver down for %s (start-up %s)", outage.Round(time.Millisecond), restartTook.Round(time.Millisecond))

	v, written, took := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded && v.Signature != "" })
	t.Logf("Succeeded verdict %s after the API server was back", took.Round(time.Millisecond))
	g.promote()
	d := g.waitDecision(env.guard, "the admitted promotion", func(d decision) bool {
		return d.Webhook == "validate" && d.Decision == "allowed" && d.User != directUser && len(d.Proof) > 0
	})
	if p := d.Proof[0]; p.Pod != podName(1) || p.ContainerID != v.ContainerID || !p.IssuedAt.Equal(v.ObservedAt) {
		t.Errorf("the promotion rests on %+v, want the verdict %+v", d.Proof, v)
	}
	// Written once: the annotation still holds the first Succeeded verdict, and the
	// controller reported one Succeeded verdict for the pod.
	time.Sleep(3 * time.Second)
	if first, now := written.Annotations[rollout.ReplaceProfileAnnotation], g.pod(1).Annotations[rollout.ReplaceProfileAnnotation]; now != first {
		t.Errorf("the verdict was rewritten: first %s, now %s", first, now)
	}
	if n := len(g.controllerRecords("verdict", podName(1), rollout.VerdictSucceeded)); n != 1 {
		t.Errorf("%d Succeeded verdict records for %s, want 1:\n%s", n, podName(1), strings.Join(g.controllerRecords("verdict", podName(1), ""), "\n"))
	}
	held(t, fmt.Sprintf("kube-apiserver restarted during an open canary (down %s)", outage.Round(time.Millisecond)), time.Since(began))
}

// apiserverDecisions are the shared pdguard's decisions about g's namespace that the
// API server asked for.
func (g *guarded) apiserverDecisions() []decision {
	return slices.DeleteFunc(decisions(env.guard, g.ns), func(d decision) bool { return d.User == directUser })
}

// controllerRecords are the shared pdguard's "evidence controller" log lines of one
// kind about pod in g's namespace, with the verdict ("" for any).
func (g *guarded) controllerRecords(kind, pod, verdict string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(env.guard.Logs()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			Msg, Namespace, Decision, Pod, Verdict, Reason string
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "evidence controller" || l.Namespace != g.ns || l.Decision != kind {
			continue
		}
		if (pod == "" || l.Pod == pod) && (verdict == "" || l.Verdict == verdict) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// With auto-promotion, pdguard is killed with SIGKILL right after the controller lowered
// the partition the first time (2 -> 1) and before the second step. After the restart
// the partition goes 1 -> 0 once the new canary is proven: no pod is promoted twice or
// skipped, and a watch of the StatefulSet never sees the partition below what the
// verdicts on the pods above it prove. Not parallel: the shared pdguard is down for a
// moment.
func TestFaultKilledDuringAutoPromotion(t *testing.T) {
	const replicas = 3
	g := newGuarded(t, "fault-autopromote", func(s *appsv1.StatefulSet) {
		s.Spec.Replicas = ptr(int32(replicas))
		s.Annotations[rollout.AutoPromoteAnnotation] = "true"
	})
	began := time.Now()
	for i := range int32(replicas) {
		g.serveLog(i, "success-migration.log")
	}
	w := g.watchPartition(g.get().ResourceVersion)
	stored, _, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) })
	if err != nil {
		t.Fatalf("changing the tag: %v", err)
	}
	if p := partitionOf(stored); p != replicas-1 {
		t.Fatalf("stored partition after the tag change = %d, want %d", p, replicas-1)
	}

	select {
	case <-w.reached(replicas - 2):
	case <-g.ctx.Done():
		t.Fatalf("the controller never lowered the partition to %d; partitions seen %v", replicas-2, w.seen())
	}
	if err := env.guard.Crash(g.ctx); err != nil {
		t.Fatalf("restarting pdguard after SIGKILL: %v", err)
	}
	t.Logf("pdguard killed and ready again %s after the first promotion step", time.Since(w.at(replicas-2)).Round(time.Millisecond))

	g.waitImages(newImage, newImage, newImage)
	for i := range int32(replicas) {
		g.waitVerdict(i, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	}
	// The partition must not move again once the rollout is done.
	time.Sleep(2 * time.Second)
	seen, violations := w.stop()
	if want := []int32{2, 1, 0}; !slices.Equal(seen, want) {
		t.Errorf("partitions seen %v, want %v: each step lowers it by one, once", seen, want)
	}
	for _, v := range violations {
		t.Error(v)
	}
	for step, want := range map[string]int{"partition lowered 2 -> 1": 1, "partition lowered 1 -> 0": 1} {
		n := 0
		for _, r := range g.controllerRecords("promotion", "", "") {
			if strings.Contains(r, step) {
				n++
			}
		}
		// The kill may come before the first step's record is logged, never after a second.
		if n > want || (step == "partition lowered 1 -> 0" && n != want) {
			t.Errorf("%d promotion records %q, want %d", n, step, want)
		}
	}
	held(t, "webhook serve SIGKILLed between two auto-promotion steps", time.Since(began))
}

// partitionWatch follows a StatefulSet's partition through a watch and checks each
// lowering against the pods' verdicts: partition q needs a Succeeded verdict pdguard
// signed for the running container on the update revision on every pod above q.
type partitionWatch struct {
	g      *guarded
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	values     []int32
	times      map[int32]time.Time
	waiting    map[int32]chan struct{}
	violations []string
}

func (g *guarded) watchPartition(fromRV string) *partitionWatch {
	g.t.Helper()
	ctx, cancel := context.WithCancel(g.ctx)
	wi, err := env.admin.AppsV1().StatefulSets(g.ns).Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + g.name, ResourceVersion: fromRV,
	})
	if err != nil {
		cancel()
		g.t.Fatal(err)
	}
	w := &partitionWatch{g: g, cancel: cancel, done: make(chan struct{}), times: map[int32]time.Time{}, waiting: map[int32]chan struct{}{}}
	go func() {
		defer close(w.done)
		defer wi.Stop()
		for ev := range wi.ResultChan() {
			if ev.Type != watch.Modified && ev.Type != watch.Added {
				continue
			}
			if sts, ok := ev.Object.(*appsv1.StatefulSet); ok {
				w.observe(ctx, sts)
			}
		}
	}()
	g.t.Cleanup(func() { w.stop() })
	return w
}

func (w *partitionWatch) observe(ctx context.Context, sts *appsv1.StatefulSet) {
	p := partitionOf(sts)
	w.mu.Lock()
	last := int32(-1)
	if len(w.values) > 0 {
		last = w.values[len(w.values)-1]
	}
	lowered := len(w.values) > 0 && p < last
	if p != last && (p != 0 || len(w.values) > 0) {
		w.values = append(w.values, p)
		w.times[p] = time.Now()
		if ch, ok := w.waiting[p]; ok {
			close(ch)
			delete(w.waiting, p)
		}
	}
	w.mu.Unlock()
	if !lowered {
		return
	}
	// The proof of the pods above q outlives the lowering, so reading them now is fair.
	pods, err := w.g.pods()
	if err != nil {
		if ctx.Err() == nil {
			w.violate(fmt.Sprintf("listing pods after the partition went to %d: %v", p, err))
		}
		return
	}
	for i := p + 1; i < rollout.Replicas(sts); i++ {
		pod, ok := pods[i]
		if !ok {
			w.violate(fmt.Sprintf("partition %d with no pod %d above it", p, i))
			continue
		}
		v, err := rollout.ReadVerdict(&pod)
		cs, _ := rollout.Container(&pod, fixture.Container)
		if err != nil || v == nil || v.Verdict != rollout.VerdictSucceeded || v.Signature == "" || v.ContainerID != cs.ID ||
			v.Revision != pod.Labels[rollout.RevisionLabel] || pod.Labels[rollout.RevisionLabel] != sts.Status.UpdateRevision {
			w.violate(fmt.Sprintf("partition %d below what the proof covers: pod %s (revision %s, update revision %s, container %s) has verdict %+v (%v)",
				p, pod.Name, pod.Labels[rollout.RevisionLabel], sts.Status.UpdateRevision, cs.ID, v, err))
		}
	}
}

func (w *partitionWatch) violate(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violations = append(w.violations, msg)
}

// reached is closed once the partition has been p (after the first value seen).
func (w *partitionWatch) reached(p int32) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan struct{})
	if slices.Contains(w.values, p) {
		close(ch)
		return ch
	}
	w.waiting[p] = ch
	return ch
}

func (w *partitionWatch) at(p int32) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.times[p]
}

func (w *partitionWatch) seen() []int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.values)
}

// stop ends the watch and returns the partitions seen, in order, and the violations.
func (w *partitionWatch) stop() ([]int32, []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.values), slices.Clone(w.violations)
}

// The canary's log cannot be read (KWOK's log endpoint answers with an error, as a
// kubelet whose log file is gone): the verdict stays InProgress and says why, never
// Succeeded; the promotion is refused and status shows the reason. Once the log can be
// read again the canary is proven.
func TestFaultPodLogsUnavailable(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "fault-nolog")
	began := time.Now()
	if err := env.cp.FailPodLogs(g.ctx, g.ns, podName(1)); err != nil {
		t.Fatal(err)
	}
	g.openCanary()
	const unread = "could not be read"
	v, _, _ := g.waitVerdict(1, "not-proven", func(v rollout.Verdict) bool { return strings.Contains(v.Reason, unread) })
	if v.Verdict != rollout.VerdictInProgress {
		t.Errorf("verdict with an unreadable log = %+v, want InProgress", v)
	}
	// Rechecks keep finding the log unreadable and never make it Succeeded.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got, _ := rollout.ReadVerdict(ptr(g.pod(1))); got == nil || got.Verdict != rollout.VerdictInProgress {
			t.Fatalf("verdict while the log is unreadable = %+v, want InProgress", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, _, err := g.patch(adminConfig(), partitionPatch(0))
	msg := mustDeny(t, err, "a promotion while the canary's log cannot be read")
	if m := missing(msg, "Pod "+podName(1)+":", rollout.VerdictInProgress, unread); m != "" {
		t.Errorf("denial %s: %s", m, msg)
	}
	s := g.status()
	if !slices.ContainsFunc(s.Blockers, func(b string) bool { return strings.Contains(b, podName(1)) && strings.Contains(b, unread) }) {
		t.Errorf("status blockers %q do not say %s's log %s", s.Blockers, podName(1), unread)
	}
	text, stderr, code := run(t, g.ctx, env.binary, "status", g.name, "--kubeconfig", env.cp.KubeconfigPath(), "-n", g.ns,
		"--soak="+serveSoak, "--verdict-key-secret", verdictKeySecret(), "-o", "wide")
	if code != 0 || !strings.Contains(text, unread) {
		t.Errorf("status -o wide (exit %d, %s) does not say the log %s:\n%s", code, stderr, unread, text)
	}
	if p := partitionOf(g.get()); p != 1 {
		t.Errorf("partition %d, want 1", p)
	}

	g.serveLog(1, "success-migration.log")
	g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	g.promote()
	held(t, "pod logs unavailable during an open canary", time.Since(began))
}

// The canary's log grows past --log-limit-bytes and then loses its first lines to
// rotation: the Succeeded verdict already recorded stands. The canary pod is then
// recreated with a log whose start is gone: its fresh judgement says pdguard cannot see
// the start of the attempt, never Succeeded, and the promotion is refused.
func TestFaultCanaryLogCutOrRotated(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "fault-rotate")
	began := time.Now()
	g.serveLog(1, "success-migration.log")
	g.openCanary()
	_, proven, _ := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	recorded := proven.Annotations[rollout.ReplaceProfileAnnotation]

	lines := successLines(t)
	// The shared pdguard reads at most the default --log-limit-bytes, 4 MiB.
	const limit = 4 << 20
	grown := slices.Clone(lines)
	for size := 0; size <= limit; {
		l := fmt.Sprintf(`[25/Nov/2025:15:40:%02d.000 +0000] category=CORE severity=NOTICE msgID=%d msg="server work %s"`, size%60, size, strings.Repeat("x", 120))
		grown = append(grown, l)
		size += len(l) + 40
	}
	cut := slices.Index(lines, "Merging changes from new server profile...")
	if cut < 0 {
		t.Fatal("no replace-profile start in the fixture")
	}
	rotated := grown[cut+1:]
	for _, step := range []struct {
		name, label string
		lines       []string
	}{{"grown past --log-limit-bytes", "grown", grown}, {"rotated past its first lines", "rotated", rotated}} {
		if err := env.cp.ServePodLogs(g.ctx, g.ns, podName(1), step.lines, nil); err != nil {
			t.Fatal(err)
		}
		// A pod event makes the controller look at the canary again.
		if _, err := env.admin.CoreV1().Pods(g.ns).Patch(g.ctx, podName(1), "application/merge-patch+json",
			[]byte(fmt.Sprintf(`{"metadata":{"labels":{"pdguard.test/log":%q}}}`, step.label)), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if now := g.pod(1).Annotations[rollout.ReplaceProfileAnnotation]; now != recorded {
			t.Errorf("log %s: the recorded verdict changed from %s to %s", step.name, recorded, now)
		}
	}

	// The canary comes back as a new pod (a node drain, say) whose log no longer shows
	// where its replace-profile attempt began.
	g.recreate(1)
	const blind = "cannot see the start of the attempt"
	v, _, _ := g.waitVerdict(1, "fresh", func(v rollout.Verdict) bool { return v.Verdict != rollout.VerdictInProgress })
	if v.Verdict != rollout.VerdictUnknown || !strings.Contains(v.Reason, blind) {
		t.Errorf("fresh verdict on a log without its start = %+v, want Unknown saying pdguard %s", v, blind)
	}
	_, _, err := g.patch(adminConfig(), partitionPatch(0))
	msg := mustDeny(t, err, "a promotion resting on a log without its start")
	if m := missing(msg, "Pod "+podName(1)+":", blind); m != "" {
		t.Errorf("denial %s: %s", m, msg)
	}
	held(t, "canary log past --log-limit-bytes and rotated", time.Since(began))
}
