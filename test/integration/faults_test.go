//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// held prints the summary line the CI log is read for.
func held(t *testing.T, scenario string, took time.Duration) {
	t.Helper()
	logf("fault: %s held (%s)", scenario, took.Round(time.Millisecond))
}

// pdguard is killed with SIGKILL while the canary's log is being judged: after the
// restart the verdict is worked out again and written, the partition never went below
// the canary's, and the promotion rests on the verdict written after the restart. Not
// parallel: the shared pdguard is down for a moment.
func TestFaultKilledWhileJudging(t *testing.T) {
	g := newGuarded(t, "fault-kill")
	began := time.Now()
	g.serveLog(1, "success-migration.log")
	g.openCanary()
	if err := env.guard.Crash(g.ctx); err != nil {
		t.Fatalf("restarting pdguard after SIGKILL: %v", err)
	}
	if p := partitionOf(g.get()); p != 1 {
		t.Fatalf("partition %d after the crash, want 1", p)
	}
	v, _, _ := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded && v.Signature != "" })
	g.promote()
	d := g.waitDecision(env.guard, "the admitted promotion", func(d decision) bool {
		return d.Webhook == "validate" && d.Decision == "allowed" && len(d.Proof) > 0
	})
	if p := d.Proof[0]; p.Pod != podName(1) || p.ContainerID != v.ContainerID {
		t.Errorf("the promotion rests on %+v, want the verdict %+v", d.Proof, v)
	}
	held(t, "webhook serve SIGKILLed between reading a log and writing the verdict", time.Since(began))
}

// Ordinal 0 is deleted while the canary is open: the StatefulSet controller brings it
// back on the stable revision, pdguard never writes a verdict on it and still refuses
// the promotion on the canary's InProgress verdict.
func TestFaultStablePodDeletedDuringCanary(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "fault-ordinal0")
	began := time.Now()
	g.serveLog(1, "in-progress.log")
	g.openCanary()
	g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress })
	before := g.recreate(0)
	_, pods, _ := g.waitImages(oldImage, newImage)
	if pods[0].Labels[rollout.RevisionLabel] != before.Labels[rollout.RevisionLabel] {
		t.Errorf("ordinal 0 came back on revision %s, want the stable %s", pods[0].Labels[rollout.RevisionLabel], before.Labels[rollout.RevisionLabel])
	}
	_, _, err := g.patch(adminConfig(), partitionPatch(0))
	msg := mustDeny(t, err, "a promotion while the canary is InProgress")
	if m := missing(msg, "Pod "+podName(1)+":"); m != "" {
		t.Errorf("denial %s: %s", m, msg)
	}
	if v := g.pod(0).Annotations[rollout.ReplaceProfileAnnotation]; v != "" {
		t.Errorf("pdguard judged ordinal 0 as a canary: %s", v)
	}
	if p := partitionOf(g.get()); p != 1 {
		t.Errorf("partition %d, want 1", p)
	}
	held(t, "ordinal 0 deleted during an open canary", time.Since(began))
}

// Two StatefulSets in one namespace with the same pod labels and selector: each is
// judged only by its own pods. The twin's canary succeeds; ours stays InProgress and
// its promotion is refused naming only our canary.
func TestFaultOverlappingPodLabels(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "fault-twins")
	began := time.Now()
	tg := g.twin()
	g.serveLog(1, "in-progress.log")
	if err := env.cp.ServePodLogs(g.ctx, g.ns, "pd-twin-1", successLines(t), nil); err != nil {
		t.Fatal(err)
	}
	g.openCanary()
	if _, _, err := tg.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) }); err != nil {
		t.Fatal(err)
	}
	g.eventually("a Succeeded verdict on pd-twin-1", func() (bool, string) {
		p, err := env.admin.CoreV1().Pods(g.ns).Get(g.ctx, "pd-twin-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		v, _ := rollout.ReadVerdict(p)
		return v != nil && v.Verdict == rollout.VerdictSucceeded, p.Annotations[rollout.ReplaceProfileAnnotation]
	})
	g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress })
	_, _, err := g.patch(adminConfig(), partitionPatch(0))
	msg := mustDeny(t, err, "our promotion while the twin's canary is proven")
	if strings.Contains(msg, "pd-twin") {
		t.Errorf("our denial speaks of the twin's pods: %s", msg)
	}
	if m := missing(msg, "Pod "+podName(1)+":"); m != "" {
		t.Errorf("denial %s: %s", m, msg)
	}
	held(t, "two StatefulSets with overlapping pod labels", time.Since(began))
}

// recreate deletes the pod and waits until the StatefulSet controller has brought it
// back Ready; it returns the pod as it was.
func (g *guarded) recreate(ordinal int32) corev1.Pod {
	g.t.Helper()
	before := g.pod(ordinal)
	if err := env.admin.CoreV1().Pods(g.ns).Delete(g.ctx, before.Name, metav1.DeleteOptions{}); err != nil {
		g.t.Fatal(err)
	}
	g.eventually(before.Name+" to come back", func() (bool, string) {
		p, err := env.admin.CoreV1().Pods(g.ns).Get(g.ctx, before.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.UID != before.UID && runningAndReady(p), string(p.UID)
	})
	return before
}

func successLines(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(logscanTestdata, "success-migration.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

// twin creates a second StatefulSet, pd-twin, with the same labels and selector as g's,
// and waits for its pods: a selector lists both sets' pods.
func (g *guarded) twin() *guarded {
	g.t.Helper()
	twin := chartStatefulSet(g.ns)
	twin.Name = "pd-twin"
	if _, err := env.admin.AppsV1().StatefulSets(g.ns).Create(g.ctx, twin, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
	g.eventually("the twin's pods", func() (bool, string) {
		p, err := env.admin.CoreV1().Pods(g.ns).Get(g.ctx, "pd-twin-1", metav1.GetOptions{})
		return err == nil && runningAndReady(p), fmt.Sprint(err)
	})
	return &guarded{t: g.t, ctx: g.ctx, ns: g.ns, name: twin.Name}
}
