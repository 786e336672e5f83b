//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// With pdguard.io/auto-promote the evidence controller lowers the partition itself once
// the canary is proven, through the same validating gate as anyone else.
func TestAutoPromote(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "autopromote", func(s *appsv1.StatefulSet) { s.Annotations[rollout.AutoPromoteAnnotation] = "true" })
	// As on a real node, the canary's log is there from its first start; before the tag
	// change no rollout is active, so the old pod's log is never judged.
	g.serveLog(1, "success-migration.log")
	// Not openCanary: it waits to see the canary's state, one pod on each image, which the
	// controller may end within a poll interval of the test's.
	stored, _, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) })
	if err != nil {
		t.Fatalf("changing the tag: %v", err)
	}
	if p := partitionOf(stored); p != 1 {
		t.Fatalf("stored partition after the tag change = %d, want 1", p)
	}

	v, _, took := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	t.Logf("Succeeded verdict %s after the tag change (%s -> %s)", took.Round(time.Millisecond), v.From, v.To)
	took = g.eventually("the controller to lower the partition", func() (bool, string) {
		sts, err := env.admin.AppsV1().StatefulSets(g.ns).Get(g.ctx, g.name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return partitionOf(sts) == 0, fmt.Sprintf("partition %d", partitionOf(sts))
	})
	t.Logf("partition lowered by the controller %s after the verdict was seen (soak %s)", took.Round(time.Millisecond), serveSoak)
	g.waitEvent("CanaryPromoted", func(e eventsv1.Event) bool { return e.Type == corev1.EventTypeNormal })
	_, _, took = g.waitImages(newImage, newImage)
	t.Logf("%s on the new image %s after the promotion", podName(0), took.Round(time.Millisecond))
}

// While a canary is open the chart still sends partition 0 with every upgrade; a
// configuration fix without a version change must reach the canary only.
func TestConfigChangeDuringCanaryStaysOnTheCanary(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "repin")
	opened := g.openCanary()
	stable := g.pod(0)

	stored, warnings, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) {
		zero := int32(0)
		s.Spec.UpdateStrategy.RollingUpdate.Partition = &zero
		c := productContainer(&s.Spec.Template.Spec)
		c.Env = append(c.Env, corev1.EnvVar{Name: "MAX_HEAP_SIZE", Value: "4g"})
	})
	if err != nil {
		t.Fatalf("a configuration change during the canary was refused: %v", err)
	}
	if p := partitionOf(stored); p != 1 {
		t.Errorf("stored partition = %d, want the live 1", p)
	}
	if !anyMentions(warnings, "partition", envPath, podName(1)) {
		t.Errorf("the client was not told the partition was kept for %s; warnings: %q", podName(1), warnings)
	}
	sts, pods, took := g.waitImages(oldImage, newImage)
	t.Logf("%s recreated with the configuration change %s after it", podName(1), took.Round(time.Millisecond))
	if sts.Status.UpdateRevision == opened.Status.UpdateRevision {
		t.Errorf("update revision still %s after a template change", sts.Status.UpdateRevision)
	}
	canary := pods[1]
	if !slices.ContainsFunc(productContainer(&canary.Spec).Env, func(e corev1.EnvVar) bool { return e.Name == "MAX_HEAP_SIZE" }) {
		t.Errorf("%s runs without the new env var", podName(1))
	}
	if pods[0].UID != stable.UID {
		t.Errorf("%s was restarted by a configuration change made during the canary", podName(0))
	}
}

// Between an image change and the StatefulSet controller's next status write, status
// still names the old update revision, and the top pod may still carry the Succeeded
// verdict it earned as the previous upgrade's canary. A promotion sent in that window
// must not count that old verdict as proof for the new version.
//
// The window is normally milliseconds (longer while kube-controller-manager restarts or
// is busy); a ValidatingAdmissionPolicy holds it open for this namespace alone by
// refusing the controller's status writes and pod deletions.
func TestPromotionBeforeTheControllerPublishesTheRevision(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "window")
	g.openCanary()
	g.serveLog(1, "success-migration.log")
	g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	g.promote()
	settled, _, _ := g.waitImages(newImage, newImage)
	if v, err := rollout.ReadVerdict(ptr(g.pod(1))); err != nil || v == nil || v.Verdict != rollout.VerdictSucceeded {
		t.Fatalf("the previous canary lost its verdict: %+v %v", v, err)
	}

	g.freezeStatefulSetController()
	const nextTag = "9.2.0.0-latest"
	stored, _, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, nextTag) })
	if err != nil {
		t.Fatalf("changing the tag to %s: %v", nextTag, err)
	}
	if p := partitionOf(stored); p != 1 {
		t.Fatalf("stored partition = %d after the tag change, want 1", p)
	}
	live := g.get()
	if live.Status.ObservedGeneration >= live.Generation || live.Status.UpdateRevision != settled.Status.UpdateRevision {
		t.Fatalf("the window is not open: generation %d observed %d, update revision %s", live.Generation, live.Status.ObservedGeneration, live.Status.UpdateRevision)
	}

	stored, _, err = g.patch(adminConfig(), partitionPatch(0))
	if err == nil {
		t.Fatalf("promoting %s to every pod was allowed before the StatefulSet controller published its revision: "+
			"the gate took %s's Succeeded verdict for revision %s (the previous upgrade) as proof; stored partition %d",
			nextTag, podName(1), settled.Status.UpdateRevision, partitionOf(stored))
	}
	msg := mustDeny(t, err, "a promotion inside the window")
	t.Logf("apiserver said: %s", msg)
}

func ptr[T any](v T) *T { return &v }

// freezeStatefulSetController makes the apiserver refuse, in this namespace only, the
// StatefulSet controller's status writes and pod deletions, until the test ends.
func (g *guarded) freezeStatefulSetController() {
	g.t.Helper()
	name := "freeze-" + g.ns
	fail := admissionregistrationv1.Fail
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
				{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"statefulsets/status"}},
				}},
				{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				}},
			}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "frozen by the integration test"}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": g.ns},
			}},
		},
	}
	api := env.admin.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(g.ctx, policy, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(g.ctx, binding, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		api.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		api.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	})
	// Policies load asynchronously; a dry-run delete is refused once this one is in force.
	took := g.eventually("the freeze to be in force", func() (bool, string) {
		err := env.admin.CoreV1().Pods(g.ns).Delete(g.ctx, podName(0), metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && (apierrors.IsInvalid(err) || apierrors.IsForbidden(err)) && strings.Contains(err.Error(), "frozen"), "dry-run delete: " + errText(err)
	})
	g.t.Logf("StatefulSet controller frozen in %s after %s", g.ns, took.Round(time.Millisecond))
}

func errText(err error) string {
	if err == nil {
		return "allowed"
	}
	return err.Error()
}
