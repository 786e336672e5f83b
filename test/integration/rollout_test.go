//go:build integration

package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// A chart upgrade that only changes the tag still sends partition 0; pdguard must turn it
// into a canary of the highest ordinal, and the real StatefulSet controller must then
// replace that pod alone.
func TestTagChangeBecomesACanary(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "mutation")
	before, err := g.pods()
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	stored, warnings, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) {
		fixture.WithTag(s, newTag)
		if p := partitionOf(s); p != 0 {
			t.Fatalf("the request must carry the chart's partition 0, has %d", p)
		}
	})
	if err != nil {
		t.Fatalf("changing the tag: %v", err)
	}
	t.Logf("tag change admitted in %s", time.Since(began).Round(time.Millisecond))
	if p := partitionOf(stored); p != 1 {
		t.Errorf("stored partition = %d, want 1 (replicas - canary replicas)", p)
	}
	if image, _ := rollout.ContainerImage(&stored.Spec.Template.Spec, fixture.Container); image != newImage {
		t.Errorf("stored image = %q, want %q", image, newImage)
	}
	rec, err := rollout.ReadCanaryRecord(stored)
	switch {
	case err != nil:
		t.Errorf("canary record: %v", err)
	case rec == nil:
		t.Errorf("no %s annotation on the stored object; annotations %q", rollout.CanaryAnnotation, stored.Annotations)
	default:
		want := rollout.CanaryRecord{FromImage: oldImage, ToImage: newImage, FromVersion: oldVersion, ToVersion: newVersion, Partition: 1, RequestedBy: adminUser}
		got := *rec
		got.Started = time.Time{}
		if got != want {
			t.Errorf("canary record = %+v, want %+v", got, want)
		}
		if rec.Started.IsZero() || rec.Started.After(time.Now()) {
			t.Errorf("canary record started at %v", rec.Started)
		}
	}
	if !anyMentions(warnings, "spec.updateStrategy.rollingUpdate.partition", "to 1", podName(1)) {
		t.Errorf("the client was not warned that the partition was set to 1 for %s; warnings: %q", podName(1), warnings)
	}

	_, after, took := g.waitImages(oldImage, newImage)
	t.Logf("StatefulSet controller replaced %s only, Ready %s after the update", podName(1), took.Round(time.Millisecond))
	if after[0].UID != before[0].UID {
		t.Errorf("%s was recreated (uid %s -> %s); only the canary may be", podName(0), before[0].UID, after[0].UID)
	}
	if after[1].UID == before[1].UID {
		t.Errorf("%s still is the pod from before the update", podName(1))
	}
	g.waitEvent("CanaryStarted", func(e eventsv1.Event) bool {
		return e.Type == corev1.EventTypeNormal && strings.Contains(e.Note, "canary-partition")
	})
}

// Configuration and version together is the one change that can never be attributed when
// replace-profile fails; it must be refused whole, with the way out.
func TestBundledChangeIsDenied(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "bundled")
	before := g.get()

	_, _, err := g.change(adminConfig(), bundle)
	msg := mustDeny(t, err, "a tag change bundled with an env change")
	t.Logf("apiserver said: %s", msg)
	if m := missing(msg, envPath, oldTag, newTag, "a version change goes alone", "pingdirectory.image.tag at "+oldTag); m != "" {
		t.Errorf("denial does not mention %q: %s", m, msg)
	}
	// README: every rule id is used in responses, so a user can find the rule, its
	// metrics and its Events from what the client printed.
	if !strings.Contains(msg, "bundled-config-and-version") {
		t.Errorf("denial does not name its rule bundled-config-and-version: %s", msg)
	}

	after := g.get()
	if !equality.Semantic.DeepEqual(after.Spec, before.Spec) {
		t.Errorf("the denied change reached the stored spec: image %q", productContainer(&after.Spec.Template.Spec).Image)
	}
	if after.Generation != before.Generation {
		t.Errorf("generation %d -> %d after a denied change", before.Generation, after.Generation)
	}
	if _, ok := after.Annotations[rollout.CanaryAnnotation]; ok {
		t.Errorf("a denied change left a canary record: %s", after.Annotations[rollout.CanaryAnnotation])
	}

	d := g.waitDecision(env.guard, "the denial", func(d decision) bool { return d.Webhook == "validate" && d.Decision == "denied" })
	if d.Name != g.name || d.Operation != "UPDATE" || d.User != adminUser || d.Mode != "enforce" ||
		!slices.Contains(d.Rules, "bundled-config-and-version") || !strings.Contains(d.Reason, envPath) || d.Latency == "" {
		t.Errorf("decision log line = %+v, want name, UPDATE, user %s, mode enforce, the rule, the reason and a latency", d, adminUser)
	}

	g.waitEvent("RolloutBlocked", func(e eventsv1.Event) bool {
		return e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "bundled-config-and-version")
	})
	// The mutating webhook saw the same request first and would have opened a canary;
	// the request never got stored, so no canary started.
	events, err := g.events()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Reason == "CanaryStarted" {
			t.Errorf("a CanaryStarted Event was written for a request the validating webhook denied: %s", e.Note)
		}
	}
}

// Lowering the partition is the promotion; it must wait for the evidence controller to
// prove the canary from its log, and then go through.
func TestPromotionWaitsForTheVerdict(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "gate")
	sts := g.openCanary()
	canary := g.pod(1)
	readyAt, _ := rollout.ReadySince(&canary)
	readySeen := time.Now()

	_, _, err := g.patch(adminConfig(), partitionPatch(0))
	msg := mustDeny(t, err, "lowering the partition before a verdict")
	if m := missing(msg, "Pod "+podName(1)+": ", "not proven"); m != "" {
		t.Errorf("denial does not mention %q: %s", m, msg)
	}
	if p := partitionOf(g.get()); p != 1 {
		t.Errorf("partition after the denied promotion = %d, want 1", p)
	}

	g.serveLog(1, "success-migration.log")
	v, pod, took := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	t.Logf("Succeeded verdict on %s %s after its log was served, %s after the test saw it Ready (Ready since %s, verdict observedAt %s)",
		pod.Name, took.Round(time.Millisecond), time.Since(readySeen).Round(time.Millisecond), readyAt.Format(time.RFC3339), v.ObservedAt.Format(time.RFC3339))
	cs, _ := rollout.Container(&pod, fixture.Container)
	if v.Revision != pod.Labels[rollout.RevisionLabel] || v.Revision != sts.Status.UpdateRevision {
		t.Errorf("verdict revision %q, pod revision %q, update revision %q: all three must agree", v.Revision, pod.Labels[rollout.RevisionLabel], sts.Status.UpdateRevision)
	}
	if v.ContainerID == "" || v.ContainerID != cs.ID {
		t.Errorf("verdict containerID %q, running container %q", v.ContainerID, cs.ID)
	}
	if v.From != oldVersion || v.To != newVersion {
		t.Errorf("verdict from %q to %q, want %s to %s", v.From, v.To, oldVersion, newVersion)
	}
	g.waitEvent("ReplaceProfileVerdict", func(e eventsv1.Event) bool {
		return e.Type == corev1.EventTypeNormal && strings.Contains(e.Note, "Succeeded") && strings.Contains(e.Note, pod.Name)
	})

	g.promote()
	if p := partitionOf(g.get()); p != 0 {
		t.Errorf("partition after the promotion = %d, want 0", p)
	}
	_, _, took = g.waitImages(newImage, newImage)
	t.Logf("%s runs the new image %s after the promotion", podName(0), took.Round(time.Millisecond))
}

// A canary whose log shows replace-profile failing must block promotion, and setting the
// tag back must be let through and bring the canary back to the stable image.
func TestFailedCanaryIsRolledBack(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "failed")
	g.openCanary()
	stable := g.pod(0)

	g.serveLog(1, "failed-masked-step-error.log")
	v, _, took := g.waitVerdict(1, "Failed", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictFailed })
	t.Logf("Failed verdict %s after the log was served: %s", took.Round(time.Millisecond), v.Reason)
	if v.Reason == "" {
		t.Error("a Failed verdict without a reason")
	}
	g.waitEvent("ReplaceProfileVerdict", func(e eventsv1.Event) bool {
		return e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "Failed")
	})

	// The verdict must be in admission's cache before the denial can name it.
	var msg string
	g.eventually("a denial that names the Failed verdict", func() (bool, string) {
		_, _, err := g.patch(adminConfig(), partitionPatch(0))
		if err == nil {
			t.Fatal("promotion of a Failed canary was allowed")
		}
		msg = mustDeny(t, err, "promoting a Failed canary")
		return strings.Contains(msg, "Failed"), msg
	})
	if m := missing(msg, podName(1), oldTag); m != "" {
		t.Errorf("denial does not mention %q: %s", m, msg)
	}

	stored, warnings, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, oldTag) })
	if err != nil {
		t.Fatalf("setting the tag back to %s was refused: %v", oldTag, err)
	}
	if _, ok := stored.Annotations[rollout.CanaryAnnotation]; ok {
		t.Errorf("the revert left the canary record: %s", stored.Annotations[rollout.CanaryAnnotation])
	}
	if p := partitionOf(stored); p != 1 {
		t.Errorf("partition after the revert = %d, want the live 1 (a lower one would restart stable pods)", p)
	}
	if !anyMentions(warnings, "closes the canary") {
		t.Errorf("the client was not told the canary was closed; warnings: %q", warnings)
	}
	_, pods, took := g.waitImages(oldImage, oldImage)
	t.Logf("%s back on %s %s after the revert", podName(1), oldImage, took.Round(time.Millisecond))
	if pods[0].UID != stable.UID {
		t.Errorf("%s was restarted by the revert", podName(0))
	}
}

// A canary that crash-loops never writes the log lines a verdict could be read from; its
// restarts alone must make it Failed.
func TestCrashLoopingCanaryFails(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "crashloop")
	g.openCanary()

	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"1"}}}`, controlplane.CrashLoopLabel)
	if _, err := env.admin.CoreV1().Pods(g.ns).Patch(g.ctx, podName(1), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	v, pod, took := g.waitVerdict(1, "Failed", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictFailed })
	cs, _ := rollout.Container(&pod, fixture.Container)
	t.Logf("Failed verdict %s after the canary started crashing (restarts %d, waiting %q): %s", took.Round(time.Millisecond), cs.Restarts, cs.Waiting, v.Reason)
	if !strings.Contains(v.Reason, "CrashLoopBackOff") && !strings.Contains(v.Reason, "restarted") {
		t.Errorf("verdict reason does not say the container crash-loops: %q", v.Reason)
	}
	if !strings.Contains(v.Reason, "exit code 1") {
		t.Errorf("verdict reason does not give the exit code: %q", v.Reason)
	}

	g.eventually("a denial that names the Failed verdict", func() (bool, string) {
		_, _, err := g.patch(adminConfig(), partitionPatch(0))
		msg := mustDeny(t, err, "promoting a crash-looping canary")
		return strings.Contains(msg, "Failed"), msg
	})
}

// Break-glass: only members of --override-groups may lift the rules, and doing so must be
// visible to the user and in Events; anyone else is told the annotation did not count.
func TestOverrideReason(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "override")
	g.openCanary()
	g.grantStatefulSetEdit("dev")
	dev, err := env.cp.ConfigFor("dev", "developers")
	if err != nil {
		t.Fatal(err)
	}
	breakglass, err := env.cp.ConfigFor("breakglass", overrideGroup)
	if err != nil {
		t.Fatal(err)
	}
	const reason = "INC-4711 restore writes"
	body := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`, rollout.OverrideReasonAnnotation, reason)

	// In this order: once break-glass has promoted, there is nothing left to deny.
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a user outside the override groups is denied and told the override was ignored", func(t *testing.T) {
			g := g.on(t)
			_, _, err := g.patch(dev, body)
			msg := mustDeny(t, err, "an override by dev")
			if m := missing(msg, "override-reason annotation was ignored", "dev", overrideGroup); m != "" {
				t.Errorf("denial does not mention %q: %s", m, msg)
			}
			if p := partitionOf(g.get()); p != 1 {
				t.Errorf("partition = %d after dev's denied override, want 1", p)
			}
		}},
		{"a system:masters user lowers the partition without evidence, warned, with a GuardOverridden Event", func(t *testing.T) {
			g := g.on(t)
			stored, warnings, err := g.patch(breakglass, body)
			if err != nil {
				t.Fatalf("break-glass override refused: %v", err)
			}
			if p := partitionOf(stored); p != 0 {
				t.Errorf("stored partition = %d, want 0", p)
			}
			if !anyMentions(warnings, "overridden by breakglass", reason) {
				t.Errorf("the client was not warned of the override; warnings: %q", warnings)
			}
			g.waitEvent("GuardOverridden", func(e eventsv1.Event) bool {
				return e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "breakglass") && strings.Contains(e.Note, reason)
			})
			_, _, took := g.waitImages(newImage, newImage)
			t.Logf("%s on the new image %s after the override", podName(0), took.Round(time.Millisecond))
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return
		}
	}
}
