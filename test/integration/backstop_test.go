//go:build integration

package integration

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// The chart installs the mutating webhook with failurePolicy Ignore, so an unreachable
// pdguard lets a tag change through unmutated. The validating webhook must then refuse
// it, and its message must say exactly what to send instead.
func TestMissingCanaryBackstop(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "backstop", func(s *appsv1.StatefulSet) { s.Labels[mutatingLabel] = unreachable })
	before := g.get()
	failedOpen := failOpenCount(g.ctx)

	_, _, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) })
	msg := mustDeny(t, err, "a tag change that skipped the mutating webhook")
	t.Logf("apiserver said: %s", msg)
	if n := failOpenCount(g.ctx); n <= failedOpen {
		t.Errorf("apiserver fail-open count for %s went %v -> %v: the mutating webhook was not tried and skipped", unreachableHook, failedOpen, n)
	}
	if m := missing(msg, "without a canary partition", "at least 1 needed", "pingdirectory.workload.statefulSet.partition=1"); m != "" {
		t.Errorf("denial does not mention %q: %s", m, msg)
	}
	d := g.waitDecision(env.guard, "the denial", func(d decision) bool { return d.Webhook == "validate" && d.Decision == "denied" })
	if !slices.Equal(d.Rules, []string{"missing-canary"}) {
		t.Errorf("denied by rules %q, want only missing-canary", d.Rules)
	}
	if after := g.get(); after.Generation != before.Generation {
		t.Errorf("generation %d -> %d after a denied change", before.Generation, after.Generation)
	}

	// Follow the advice to the letter: the patch the message prints, as kubectl patch
	// sends it (strategic merge), must be admitted and start a canary of pod 1 only.
	// The short message names the chart value; the kubectl patch is in the record's details.
	m := regexp.MustCompile(`-p '(\{.*?\})'`).FindStringSubmatch(strings.Join(d.Details, "\n"))
	if m == nil {
		t.Fatalf("the denial's details print no kubectl patch -p '...': %q", d.Details)
	}
	stored, _, err := g.patchAs(adminConfig(), types.StrategicMergePatchType, m[1])
	if err != nil {
		t.Fatalf("the patch the denial suggests (%s) was refused: %v", m[1], err)
	}
	if p := partitionOf(stored); p != 1 {
		t.Errorf("partition after the suggested patch = %d, want 1", p)
	}
	if image, _ := rollout.ContainerImage(&stored.Spec.Template.Spec, fixture.Container); image != newImage {
		t.Errorf("image after the suggested patch = %q, want %q", image, newImage)
	}
	if !strings.Contains(m[1], newImage) {
		t.Errorf("the suggested patch does not carry the requested image %s: %s", newImage, m[1])
	}
	g.waitImages(oldImage, newImage)
}
