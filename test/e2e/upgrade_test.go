//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

// TestVendorUpgrade is the vendor's canary procedure carried out by pdguard on plain
// `helm upgrade` runs that always send partition 0: the tag change reaches only the
// highest ordinal, an early promotion is refused with the reason, the canary's log
// proves the migration, and the same command then promotes the rest.
func TestVendorUpgrade(t *testing.T) {
	eachHelm(t, func(t *testing.T, h scenario.Helm) {
		f := newFlow(t, h, "vendor")
		ns, name := f.rel.Namespace, f.rel.StatefulSet()
		installed := f.install()

		// Only the tag changes; the chart renders partition: 0 as ping-devops does.
		res := f.mustUpgrade("image.tag=" + scenario.NewTag)
		want := fmt.Sprintf("pdguard sets spec.updateStrategy.rollingUpdate.partition of %s/%s to 1 (the request had 0)", ns, name)
		if !anyContains(res.Warnings(), want) {
			t.Errorf("helm showed no partition warning %q; warnings: %q", want, res.Warnings())
		}
		pods := f.waitTags(scenario.OldTag, scenario.NewTag)
		f.sameUID(installed[0], pods[0])
		if pods[1].UID == installed[1].UID {
			t.Errorf("canary %s was not recreated on the new image", pods[1].Name)
		}
		sts := f.sts()
		if p := partitionOf(sts); p != 1 {
			t.Errorf("partition = %d, want 1 injected by pdguard", p)
		}
		rec, err := rollout.ReadCanaryRecord(sts)
		if err != nil || rec == nil {
			t.Fatalf("no %s record on the StatefulSet: %v", rollout.CanaryAnnotation, err)
		}
		if rec.FromVersion != "9.0.0.1" || rec.ToVersion != "9.1.0.0" || rec.Partition != 1 {
			t.Errorf("canary record = %+v, want 9.0.0.1 -> 9.1.0.0 at partition 1", rec)
		}
		// The event is the lasting record of the canary (webhook report lists it), so it
		// says which change it holds back.
		started := f.waitEvent("CanaryStarted", "[canary-partition]")
		if !strings.Contains(started.Note, scenario.Image(scenario.NewTag)) {
			t.Errorf("the CanaryStarted event does not name the new image: %q", started.Note)
		}
		if h.Major == 4 {
			// The partition the mutating webhook set during helm's server-side apply is
			// recorded under helm's own field manager, so the promoting upgrade below
			// (partition 0 again) is no field conflict: it goes straight to the gate.
			if m := partitionManagers(sts); len(m) != 1 || m[0] != "helm/Apply" {
				t.Errorf("the partition is managed by %v, want helm's apply alone", m)
			}
		}

		// Re-running the same upgrade before the canary has a verdict would promote it
		// unproven: refused, with what to do next.
		generation := sts.Generation
		denial := f.mustDeny("image.tag=" + scenario.NewTag)
		mustContain(t, "denial", denial,
			fmt.Sprintf("pdguard refused to lower the partition of %s/%s from 1 to 0: the canary is not proven.", ns, name),
			"Pod "+pods[1].Name+": ", "Next: once Succeeded, re-run the same helm upgrade (same -f values files)")
		f.nothingRolled(generation, pods)
		f.waitEvent("RolloutBlocked", "[partition-gate]")
		// helm records the refused upgrade as a failed revision; the next upgrade runs
		// from it without any repair.
		if rev := lastRevision(t, f); rev.Status != "failed" {
			t.Errorf("after the denial helm's last revision is %+v, want status failed", rev)
		}

		// The canary's log shows replace-profile migrating 9.0.0.1 to 9.1.0.0.
		f.serve(1, scenario.SuccessLog)
		canary := f.waitVerdict(1, rollout.VerdictSucceeded)
		if v := canary.Verdict; v.From != "9.0.0.1" || v.To != "9.1.0.0" {
			t.Errorf("verdict from %q to %q, want 9.0.0.1 to 9.1.0.0", v.From, v.To)
		}
		f.waitEvent("ReplaceProfileVerdict", canary.Name, "Succeeded")
		f.waitSoaked(1)

		f.mustUpgrade("image.tag=" + scenario.NewTag)
		pods = f.waitTags(scenario.NewTag, scenario.NewTag)
		f.sameUID(canary, pods[1])
		sts = f.waitComplete()
		if p := partitionOf(sts); p != 0 {
			t.Errorf("partition after promotion = %d, want 0", p)
		}
		if rev := lastRevision(t, f); rev.Status != "deployed" {
			t.Errorf("helm's last revision is %+v, want deployed", rev)
		}
		// The evidence controller promises a verdict for every migrated pod, the ones
		// promoted after the canary included, so the report is a record of the upgrade.
		// Pod 0's log (the same migration) is served only now that the StatefulSet
		// reports the rollout complete: with the log there all along, whether pod 0 is
		// judged depends on the controller reading it before the StatefulSet status
		// turns complete, a race it loses in about half the runs here. The controller
		// rereads an unjudged pod every second, so 30s is plenty.
		f.serve(0, scenario.SuccessLog)
		verdictCtx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		defer cancel()
		if _, err := f.rel.WaitVerdict(verdictCtx, 0, "verdict Succeeded", scenario.CurrentVerdict(rollout.VerdictSucceeded), true); err != nil {
			t.Errorf("promoted pod %s has no verdict of its own for its running container: %v", pods[0].Name, err)
		}

		// Going back now would run 9.0.0.1 on data replace-profile migrated to 9.1.0.0.
		generation = f.sts().Generation
		denial = f.mustDeny("image.tag=" + scenario.OldTag)
		mustContain(t, "downgrade denial", denial, "to the lower version 9.0.0.1", "cannot be done in place")
		f.nothingRolled(generation, pods)

		report := env.Report(f.ctx, "-n", ns)
		if !report.OK() {
			t.Fatalf("webhook report: %s", report.Output())
		}
		t.Logf("webhook report:\n%s", report.Stdout)
		mustContain(t, "webhook report", report.Stdout, ns+"/"+name, pods[1].Name, "verdict=Succeeded", "CanaryStarted", "RolloutBlocked")
		if strings.Contains(report.Stdout, "open (stable") {
			t.Errorf("webhook report still shows an open canary after promotion")
		}
	})
}

// partitionManagers lists the field managers (manager/operation) that own the
// StatefulSet's partition.
func partitionManagers(sts *appsv1.StatefulSet) []string {
	var out []string
	for _, m := range sts.ManagedFields {
		if m.FieldsV1 != nil && strings.Contains(string(m.FieldsV1.Raw), `"f:partition"`) {
			out = append(out, m.Manager+"/"+string(m.Operation))
		}
	}
	return out
}
