//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

// TestMaskedFailure: the canary's replace-profile fails behind a tee, so the pod is
// Ready as if all went well. The evidence controller reads the failure from the log,
// promotion stays refused for as long as that is the canary's verdict, and setting the
// tag back with helm returns the canary to the stable image without touching pod 0.
func TestMaskedFailure(t *testing.T) {
	eachHelm(t, func(t *testing.T, h scenario.Helm) {
		f := newFlow(t, h, "masked")
		installed := f.install()
		failed, err := env.Fixture(scenario.MaskedFailureLog)
		if err != nil {
			t.Fatal(err)
		}
		pods := f.canaryUp(installed, failed)

		canary := f.waitVerdict(1, rollout.VerdictFailed)
		mustContain(t, "verdict reason", canary.Verdict.Reason, "replace-profile failed")
		if !canary.Ready {
			t.Errorf("canary %s is not Ready; the fixture is meant to fail behind a Ready pod", canary.Name)
		}
		// Soaked, so the verdict is the one thing that holds promotion back.
		f.waitSoaked(1)
		f.waitEvent("ReplaceProfileVerdict", canary.Name, "Failed")

		generation := f.sts().Generation
		for range 2 {
			denial := f.mustDeny("image.tag=" + scenario.NewTag)
			mustContain(t, "denial", denial, "from 1 to 0", "Pod "+canary.Name+": verdict Failed",
				"pingdirectory.image.tag="+scenario.OldTag)
			f.nothingRolled(generation, pods)
		}
		f.waitEvent("RolloutBlocked", "[partition-gate]")

		res := f.mustUpgrade("image.tag=" + scenario.OldTag)
		if !anyContains(res.Warnings(), "closes the canary, because the image goes back to the stable "+scenario.Image(scenario.OldTag)) {
			t.Errorf("no revert warning: %q", res.Warnings())
		}
		back := f.waitTags(scenario.OldTag, scenario.OldTag)
		f.sameUID(installed[0], back[0])
		if back[1].UID == canary.UID {
			t.Errorf("canary %s was not recreated on the stable image", canary.Name)
		}
		sts := f.waitComplete()
		if _, ok := sts.Annotations[rollout.CanaryAnnotation]; ok {
			t.Errorf("the canary record is still on the StatefulSet after the revert")
		}
		// The revert keeps the live partition (1) instead of the chart's 0, so the pods
		// below it are not restarted; the next upgrade sends 0 again and, with no canary
		// open, it is simply applied.
		t.Logf("partition after the revert: %d", partitionOf(sts))

		// A different denial of the same StatefulSet is an Event of its own, with its own
		// note; the same denial twice (above) is one.
		f.mustDeny("image.tag="+scenario.NewTag, "env.MAX_HEAP_SIZE=4g")
		f.waitEvent("RolloutBlocked", "[bundled-config-and-version]")
		events, err := f.rel.Events(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var gate, bundle int
		for _, e := range events {
			if e.Reason != "RolloutBlocked" || e.Type != "Warning" {
				continue
			}
			switch {
			case strings.Contains(e.Note, "[partition-gate]"):
				gate++
			case strings.Contains(e.Note, "[bundled-config-and-version]"):
				bundle++
			}
		}
		if gate != 1 || bundle != 1 {
			t.Errorf("RolloutBlocked Events: %d for the partition-gate denial sent twice and %d for the bundled one, want 1 and 1", gate, bundle)
		}
	})
}

// TestCrashLoop: a canary that proved its migration and then starts crash-looping (the
// KWOK stage restarts it with exit code 1 and keeps it un-Ready) turns Failed, and
// promotion is refused again. Reverting the tag must bring it back to the stable image,
// as pdguard tells the user it will.
func TestCrashLoop(t *testing.T) {
	eachHelm(t, func(t *testing.T, h scenario.Helm) {
		f := newFlow(t, h, "crash")
		installed := f.install()
		success, err := env.Fixture(scenario.SuccessLog)
		if err != nil {
			t.Fatal(err)
		}
		pods := f.canaryUp(installed, success)
		f.waitVerdict(1, rollout.VerdictSucceeded)

		res := f.kubectl("label", "pod", pods[1].Name, controlplane.CrashLoopLabel+"=1")
		if !res.OK() {
			t.Fatalf("labelling the canary: %s", res.Output())
		}
		crashing := func(v *rollout.Verdict, pod scenario.Pod, sts *appsv1.StatefulSet) bool {
			return v != nil && v.Verdict == rollout.VerdictFailed && v.Revision == sts.Status.UpdateRevision &&
				(strings.Contains(v.Reason, "CrashLoopBackOff") || strings.Contains(v.Reason, "restarted"))
		}
		canary, err := f.rel.WaitVerdict(f.ctx, 1, "a Failed verdict for the restarts", crashing, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s after %d restarts: %s", canary.Name, canary.Verdict.Verdict, canary.Restarts, canary.Verdict.Reason)
		f.waitEvent("ReplaceProfileVerdict", canary.Name, "Failed", "exit code 1")

		generation, before := f.sts().Generation, f.pods()
		denial := f.mustDeny("image.tag=" + scenario.NewTag)
		mustContain(t, "denial", denial, "from 1 to 0", "Pod "+canary.Name+": not Ready")
		f.nothingRolled(generation, before)

		res = f.mustUpgrade("image.tag=" + scenario.OldTag)
		mustContain(t, "revert warning", strings.Join(res.Warnings(), "\n"), "pod "+canary.Name+" returns to the stable image")
		// A healthy canary is replaced within a second or two here (TestMaskedFailure);
		// half a minute is ample for this one.
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		defer cancel()
		back, err := f.rel.WaitTags(ctx, scenario.OldTag, scenario.OldTag)
		if err != nil {
			t.Fatalf("after the revert the crash-looping canary did not return to the stable image: %v", err)
		}
		f.sameUID(installed[0], back[0])
	})
}
