//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

const lowerPartition = `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`

func overridePatch(reason string) string {
	return fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`,
		rollout.OverrideReasonAnnotation, reason)
}

// TestPartitionPatchAndBreakGlass: the gate holds for kubectl as it does for helm; the
// override annotation lifts it only for members of system:masters, with a warning and an
// Event; and what the next helm upgrade makes of a partition kubectl has touched.
//
// helm 4 applies server-side as field manager "helm", so a field another manager set to
// a different value is a conflict. The partition pdguard's mutating webhook sets during
// helm's own apply is recorded under helm (TestVendorUpgrade checks it), so helm's
// upgrades never conflict with pdguard. But after `kubectl patch` moved the partition
// (manager kubectl-patch) away from what the chart renders, the next helm 4 upgrade fails
// with a conflict before any admission webhook sees it, until it is re-run with
// --force-conflicts. Forcing only settles field ownership: the request then goes through
// pdguard like any other, and the canary partition is pinned again. helm 3 computes a
// three-way merge patch on the client and overwrites the partition without a word. When
// kubectl set the value the chart renders (the break-glass patch to 0), helm 4 just
// becomes a co-owner and there is no conflict.
func TestPartitionPatchAndBreakGlass(t *testing.T) {
	eachHelm(t, func(t *testing.T, h scenario.Helm) {
		f := newFlow(t, h, "glass")
		ns, name := f.rel.Namespace, f.rel.StatefulSet()
		installed := f.install()
		inProgress, err := env.Fixture(scenario.InProgressLog)
		if err != nil {
			t.Fatal(err)
		}
		pods := f.canaryUp(installed, inProgress)
		f.waitVerdict(1, rollout.VerdictInProgress)
		generation := f.sts().Generation

		res := f.kubectl("patch", "statefulset", name, "-p", lowerPartition)
		denial := f.denied(res)
		mustContain(t, "kubectl denial", denial, "from 1 to 0", "verdict InProgress", "pingdirectory.image.tag=")
		f.nothingRolled(generation, pods)

		// A user allowed to edit the namespace, but not in the override groups.
		dev := f.editorKubeconfig("dev")
		res = f.kubectlAs(dev, "patch", "statefulset", name, "-p", overridePatch("INC-42: vendor confirmed"))
		denial = f.denied(res)
		mustContain(t, "denial for dev", denial, "The pdguard.io/override-reason annotation was ignored because user dev is not in groups [system:masters]")
		f.nothingRolled(generation, pods)

		alice, err := env.CP.KubeconfigFor("alice", "system:masters")
		if err != nil {
			t.Fatal(err)
		}
		// Alice does what the denial says: annotate, then retry the refused change.
		res = f.kubectlAs(alice, "annotate", "--overwrite", "statefulset", name, rollout.OverrideReasonAnnotation+"=INC-42: vendor confirmed")
		if !res.OK() {
			t.Fatalf("annotating as alice: %s", res.Output())
		}
		res = f.kubectlAs(alice, "patch", "statefulset", name, "-p", lowerPartition)
		if !res.OK() {
			t.Fatalf("the break-glass procedure the denial describes (annotate, then retry) did not let alice's retry through:\n%s", res.Output())
		}
		warnings := strings.Join(res.Warnings(), "\n")
		mustContain(t, "break-glass warnings", warnings,
			"overridden by alice (reason: INC-42: vendor confirmed",
			"alice may override through system:masters")
		f.waitEvent("GuardOverridden", "[", "override", "by alice")
		promoted := f.waitTags(scenario.NewTag, scenario.NewTag)
		f.sameUID(pods[1], promoted[1])

		// The override is spent by the change it let through: pdguard moved its reason
		// to pdguard.io/override-used, so the next upgrade is guarded again, and so is the
		// version change below.
		annotations := f.sts().Annotations
		if _, ok := annotations[rollout.OverrideReasonAnnotation]; ok {
			t.Errorf("the override reason is still on the StatefulSet after it was used")
		}
		if !strings.Contains(annotations[rollout.OverrideUsedAnnotation], "INC-42: vendor confirmed") {
			t.Errorf("pdguard.io/override-used = %q, want the spent reason", annotations[rollout.OverrideUsedAnnotation])
		}
		res = f.mustUpgrade("image.tag=" + scenario.NewTag)
		if anyContains(res.Warnings(), "overridden by") {
			t.Errorf("the override applied again to a later change: %q", res.Warnings())
		}

		// Someone pins the partition by hand before the next upgrade, as the vendor's
		// manual procedure does; helm's chart still renders 0.
		res = f.kubectl("patch", "statefulset", name, "-p", `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}`)
		if !res.OK() {
			t.Fatalf("raising the partition: %s", res.Output())
		}
		generation = f.sts().Generation
		res = f.upgrade("image.tag=" + scenario.NextTag)
		if h.Major == 4 {
			if res.OK() {
				t.Fatalf("helm 4 applied over kubectl's partition without a conflict")
			}
			mustContain(t, "helm 4 error", res.ErrorLine(), "conflict", `"kubectl-patch"`, ".spec.updateStrategy.rollingUpdate.partition")
			if res.Denial() != "" {
				t.Errorf("the conflict reached pdguard: %s", res.Denial())
			}
			f.nothingRolled(generation, promoted)
			res = f.rel.UpgradeWith(f.ctx, []string{"--force-conflicts"}, "image.tag="+scenario.NextTag)
			f.logResult(res)
		}
		if !res.OK() {
			t.Fatalf("upgrade to %s: %s", scenario.NextTag, res.Output())
		}
		if !anyContains(res.Warnings(), fmt.Sprintf("partition of %s/%s to 1 (the request had 0)", ns, name)) {
			t.Errorf("pdguard did not pin the canary for the upgrade to %s: %q", scenario.NextTag, res.Warnings())
		}
		next := f.waitTags(scenario.NewTag, scenario.NextTag)
		f.sameUID(promoted[0], next[0])
		if p := partitionOf(f.sts()); p != 1 {
			t.Errorf("partition = %d, want 1", p)
		}
	})
}
