//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

// TestBundledConfigAndVersion: an upgrade that changes the env and the tag at once is
// refused and nothing rolls; then the guard's own advice (config alone, then the tag
// alone) goes through.
//
// What helm leaves behind after the refusal, with either version: helm applies the
// release's objects one by one, and the ConfigMap comes before the StatefulSet, so the
// env ConfigMap already holds the new value when the StatefulSet is refused. helm marks
// the revision failed and stops there; it does not roll the ConfigMap back (no
// --rollback-on-failure/--atomic). The StatefulSet keeps its image and its old
// checksum/config, so no pod restarts, but every pod reads the ConfigMap at start: the
// next pod to restart for any reason (node drain, crash, the next canary) picks up the
// new configuration unannounced. To recover, either `helm rollback` to the last deployed
// revision, or do what pdguard says: roll the configuration out alone with the current
// tag, then change only the tag.
func TestBundledConfigAndVersion(t *testing.T) {
	eachHelm(t, func(t *testing.T, h scenario.Helm) {
		f := newFlow(t, h, "bundle")
		ns, name := f.rel.Namespace, f.rel.StatefulSet()
		installed := f.install()
		before := f.sts()
		checksum := before.Spec.Template.Annotations["checksum/config"]

		denial := f.mustDeny("image.tag="+scenario.NewTag, "env.MAX_HEAP_SIZE=4g")
		mustContain(t, "denial", denial,
			fmt.Sprintf("pdguard refused StatefulSet %s/%s: a version change goes alone, without config changes. The image tag goes from %s to %s with spec.template.metadata.annotations[checksum/config]",
				ns, name, scenario.OldTag, scenario.NewTag),
			"checksum/config hashes the env ConfigMaps (pingdirectory.envs, global.envs)", "helm rollback RELEASE <last deployed revision>",
			"the same helm upgrade (same -f values files) with pingdirectory.image.tag at "+scenario.OldTag)
		f.nothingRolled(before.Generation, installed)
		f.waitEvent("RolloutBlocked", "[bundled-config-and-version]")
		after := f.sts()
		if p := partitionOf(after); p != 0 {
			t.Errorf("partition = %d after the refused change, want 0 as before", p)
		}
		if got := after.Spec.Template.Annotations["checksum/config"]; got != checksum {
			t.Errorf("checksum/config changed %s -> %s although the StatefulSet was refused", checksum, got)
		}

		// No canary was opened: the mutating webhook pinned one in a request that the
		// validating webhook then refused, and nothing of it was stored.
		events, err := f.rel.Events(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Reason == "CanaryStarted" {
				t.Errorf("a CanaryStarted event was recorded for a change that was refused, so events and `webhook report` show a canary that never existed: %.300s", e.Note)
			}
		}

		// What helm left behind.
		hist, err := f.rel.History(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(hist); n != 2 || hist[0].Status != "deployed" || hist[1].Status != "failed" {
			t.Errorf("helm history = %+v, want the install deployed and the refused upgrade failed", hist)
		}
		data, err := f.rel.ConfigMapData(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if data["MAX_HEAP_SIZE"] != "4g" {
			t.Errorf("env ConfigMap = %v; want helm to have applied MAX_HEAP_SIZE=4g before the StatefulSet was refused", data)
		}

		// Recovery as the denial says: the configuration alone with the current tag
		// rolls every pod (no version change, so no canary is needed)...
		f.mustUpgrade("image.tag="+scenario.OldTag, "env.MAX_HEAP_SIZE=4g")
		pods := f.waitTags(scenario.OldTag, scenario.OldTag)
		for i := range pods {
			if pods[i].UID == installed[i].UID {
				t.Errorf("pod %s did not restart for the configuration change", pods[i].Name)
			}
		}
		if rev := lastRevision(t, f); rev.Status != "deployed" {
			t.Errorf("helm's last revision is %+v, want deployed", rev)
		}
		// ...then the tag alone opens a canary as usual.
		res := f.mustUpgrade("image.tag="+scenario.NewTag, "env.MAX_HEAP_SIZE=4g")
		if !anyContains(res.Warnings(), "to 1 (the request had 0)") {
			t.Errorf("no canary partition warning: %q", res.Warnings())
		}
		canary := f.waitTags(scenario.OldTag, scenario.NewTag)
		f.sameUID(pods[0], canary[0])
		if p := partitionOf(f.sts()); p != 1 {
			t.Errorf("partition = %d, want 1", p)
		}
	})
}
