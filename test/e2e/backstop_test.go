//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

// TestMutatingWebhookUnreachable: the mutating webhook fails open (failurePolicy
// Ignore, as the chart installs it), so with every pdguard pod down a tag change would
// reach the apiserver without the canary partition. The validating webhook's
// missing-canary rule is the backstop. The mutating configuration is pointed at a
// closed port for the whole test, which is why no other test runs alongside it.
func TestMutatingWebhookUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if policy, err := env.MutatingFailurePolicy(ctx); err != nil || policy != "Ignore" {
		t.Fatalf("mutating webhook failure policy = %q (%v), want Ignore as the chart installs it", policy, err)
	}

	// Releases that went through a whole guarded upgrade while pdguard was up, for
	// the second part below.
	var mu sync.Mutex
	upgraded := map[string]*flow{}
	t.Run("upgrade while pdguard is up", func(t *testing.T) {
		eachHelm(t, func(t *testing.T, h scenario.Helm) {
			f := newFlow(t, h, "later")
			installed := f.install()
			success, err := env.Fixture(scenario.SuccessLog)
			if err != nil {
				t.Fatal(err)
			}
			f.canaryUp(installed, success)
			f.waitVerdict(1, rollout.VerdictSucceeded)
			f.waitSoaked(1)
			f.mustUpgrade("image.tag=" + scenario.NewTag)
			f.waitTags(scenario.NewTag, scenario.NewTag)
			mu.Lock()
			upgraded[h.Name] = f
			mu.Unlock()
		})
	})
	if t.Failed() {
		t.FailNow()
	}

	began := time.Now()
	if err := env.SetMutatingReachable(ctx, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("mutating webhook unreachable (in force after %s)", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := env.SetMutatingReachable(ctx, true); err != nil {
			t.Errorf("pointing the mutating webhook back at pdguard: %v", err)
		}
	})

	t.Run("backstop", func(t *testing.T) {
		eachHelm(t, func(t *testing.T, h scenario.Helm) {
			f := newFlow(t, h, "backstop")
			ns, name := f.rel.Namespace, f.rel.StatefulSet()
			installed := f.install()
			generation := f.sts().Generation

			denial := f.mustDeny("image.tag=" + scenario.NewTag)
			mustContain(t, "denial", denial,
				fmt.Sprintf("pdguard refused StatefulSet %s/%s: an image change without a canary partition. It changes the image from %s to %s on 2 replicas with partition 0 (at least 1 needed)",
					ns, name, scenario.Image(scenario.OldTag), scenario.Image(scenario.NewTag)), "pdguard's mutating webhook probably did not run",
				"the same helm upgrade you ran (same -f values files) with pingdirectory.workload.statefulSet.partition=1")
			f.nothingRolled(generation, installed)
			f.waitEvent("RolloutBlocked", "[missing-canary]")

			// The user does what the denial says, with this chart's value name.
			success, err := env.Fixture(scenario.SuccessLog)
			if err != nil {
				t.Fatal(err)
			}
			f.serveLines(1, success)
			res := f.mustUpgrade("image.tag="+scenario.NewTag, "partition=1")
			if anyContains(res.Warnings(), "pdguard sets") {
				t.Errorf("a pdguard mutation warning although the mutating webhook is unreachable: %q", res.Warnings())
			}
			pods := f.waitTags(scenario.OldTag, scenario.NewTag)
			f.sameUID(installed[0], pods[0])

			// The evidence controller and the gate need nothing from the mutating
			// webhook: the canary is judged and promoted as usual.
			canary := f.waitVerdict(1, rollout.VerdictSucceeded)
			if v := canary.Verdict; v.From != "9.0.0.1" || v.To != "9.1.0.0" {
				t.Errorf("verdict from %q to %q, want 9.0.0.1 to 9.1.0.0", v.From, v.To)
			}
			f.waitSoaked(1)
			f.mustUpgrade("image.tag=" + scenario.NewTag)
			f.waitTags(scenario.NewTag, scenario.NewTag)
		})
	})

	// The same backstop on a StatefulSet that already went through one guarded upgrade
	// (9.0.0.1 -> 9.1.0.0, promoted), which is how most clusters meet an outage of
	// pdguard: the next canary (9.1.0.0 -> 9.2.0.0) is pinned by hand and must be judged
	// and guarded against what its stable pods run now, 9.1.0.0.
	t.Run("backstop after a completed upgrade", func(t *testing.T) {
		eachHelm(t, func(t *testing.T, h scenario.Helm) {
			f := upgraded[h.Name]
			if f == nil {
				t.Fatal("no upgraded release from the first part")
			}
			// The flow's context ended with the subtest that made it.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			t.Cleanup(cancel)
			f.t, f.ctx, f.rel.Logf = t, ctx, t.Logf
			before := f.pods()
			generation := f.sts().Generation

			denial := f.mustDeny("image.tag=" + scenario.NextTag)
			mustContain(t, "denial", denial, "without a canary partition", "partition=1")
			f.nothingRolled(generation, before)

			migration, err := env.MigrationLog("9.1.0.0", "9.2.0.0")
			if err != nil {
				t.Fatal(err)
			}
			f.serveLines(1, migration)
			f.mustUpgrade("image.tag="+scenario.NextTag, "partition=1")
			pods := f.waitTags(scenario.NewTag, scenario.NextTag)
			f.sameUID(before[0], pods[0])
			if rec, err := rollout.ReadCanaryRecord(f.sts()); err == nil && rec != nil {
				t.Logf("%s on the StatefulSet: %+v", rollout.CanaryAnnotation, *rec)
			}

			canary, err := f.rel.WaitVerdict(f.ctx, 1, "verdict Succeeded", scenario.CurrentVerdict(rollout.VerdictSucceeded), true)
			if err != nil {
				t.Errorf("the 9.1.0.0 -> 9.2.0.0 canary, whose log shows exactly that migration, is not judged Succeeded: %v", err)
			} else if v := canary.Verdict; v.From != "9.1.0.0" || v.To != "9.2.0.0" {
				t.Errorf("verdict from %q to %q, want 9.1.0.0 to 9.2.0.0", v.From, v.To)
			}

			// Going below the version the stable pods run is a downgrade of the canary's
			// migrated data, never a revert.
			generation = f.sts().Generation
			res := f.upgrade("image.tag="+scenario.OldTag, "partition=1")
			if res.OK() {
				after, _ := f.rel.Pods(f.ctx)
				t.Errorf("helm upgrade to %s (below the stable %s) was allowed; pods now: %s", scenario.OldTag, scenario.NewTag, scenario.DescribePods(after))
				return
			}
			d := f.denied(res)
			mustContain(t, "downgrade denial", d, "cannot be done in place")
			f.nothingRolled(generation, pods)
		})
	})
}
