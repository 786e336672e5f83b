//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

// TestWarnModePinsTheCanary: with --enforcement=warn a plain upgrade still updates only
// the canary, since pinning refuses nothing, and a change enforce mode denies is let
// through with a warning. pdguard runs in warn mode for the whole test, which is why it
// is a test of its own.
func TestWarnModePinsTheCanary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := env.Guard.RestartWith(ctx, "--enforcement=warn"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := env.Guard.RestartWith(ctx); err != nil {
			t.Errorf("restarting pdguard in enforce mode: %v", err)
		}
	})
	eachHelm(t, func(t *testing.T, h scenario.Helm) {
		f := newFlow(t, h, "warn")
		ns, name := f.rel.Namespace, f.rel.StatefulSet()
		installed := f.install()
		res := f.mustUpgrade("image.tag=" + scenario.NewTag)
		if !anyContains(res.Warnings(), fmt.Sprintf("partition of %s/%s to 1 (the request had 0)", ns, name)) {
			t.Errorf("pdguard did not pin the canary in warn mode: %q", res.Warnings())
		}
		pods := f.waitTags(scenario.OldTag, scenario.NewTag)
		f.sameUID(installed[0], pods[0])
		if p := partitionOf(f.sts()); p != 1 {
			t.Errorf("partition = %d, want 1", p)
		}

		// Promoting the unproven canary is what enforce mode refuses: warn lets it
		// through and says what it would have denied.
		res = f.mustUpgrade("image.tag=" + scenario.NewTag)
		if !anyContains(res.Warnings(), "pdguard would deny: pdguard refused to lower the partition") {
			t.Errorf("no partition-gate warning for the unproven promotion: %q", res.Warnings())
		}
		f.waitTags(scenario.NewTag, scenario.NewTag)
	})
}
