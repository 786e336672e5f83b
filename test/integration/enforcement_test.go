//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// pdguard.io/enforcement on the live object can only make a server's mode stricter
// (README): it must not loosen the shared enforcing server, and it must tighten the
// dryrun one to warn, where the bundled change goes through with the warning.
func TestEnforcementAnnotation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// dryrun sends the StatefulSet to the pdguard started with --enforcement=dryrun.
		dryrun      bool
		annotation  string
		wantDenied  bool
		wantWarning bool
	}{
		{name: "on an enforcing server, warn cannot loosen anything: a bundled change is denied", annotation: "warn", wantDenied: true},
		{name: "a dryrun server lets a bundled change through without a word", dryrun: true},
		{name: "on a dryrun server, warn tightens the mode: a bundled change goes through with a warning naming its rule", dryrun: true, annotation: "warn", wantWarning: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := env.guard
			g := newGuarded(t, "enforcement", func(s *appsv1.StatefulSet) {
				if tc.dryrun {
					s.Labels[laneLabel] = dryrunLane
				}
				if tc.annotation != "" {
					s.Annotations[rollout.EnforcementAnnotation] = tc.annotation
				}
			})
			if tc.dryrun {
				srv = env.dryrun
			}

			stored, warnings, err := g.change(adminConfig(), bundle)
			if tc.wantDenied {
				msg := mustDeny(t, err, "a bundled change")
				if !strings.Contains(msg, envPath) {
					t.Errorf("denial does not list %s: %s", envPath, msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("bundled change refused: %v", err)
			}
			// Warn mode pins the canary as enforce mode does; dryrun changes nothing.
			wantPartition := int32(0)
			if tc.wantWarning {
				wantPartition = 1
			}
			if p := partitionOf(stored); p != wantPartition {
				t.Errorf("stored partition = %d, want %d", p, wantPartition)
			}
			d := g.waitDecision(srv, "the validation", func(d decision) bool { return d.Webhook == "validate" && d.Operation == "UPDATE" })
			t.Logf("%s logged: decision %s, mode %s, rules %q", srvName(srv), d.Decision, d.Mode, d.Rules)
			if !tc.wantWarning {
				if len(warnings) > 0 {
					t.Errorf("dryrun showed the client warnings: %q", warnings)
				}
				if d.Mode != "dryrun" {
					t.Errorf("mode = %q, want dryrun", d.Mode)
				}
				return
			}
			if d.Mode != "warn" {
				t.Errorf("mode = %q, want warn", d.Mode)
			}
			if !anyMentions(warnings, "would deny", envPath) {
				t.Errorf("no warning says pdguard would deny the bundled change of %s; warnings: %q", envPath, warnings)
			}
			// Warn mode shows what enforce mode would have done, once: the same finding
			// twice reads as two problems.
			partitionFinding := fmt.Sprintf("rollingUpdate.partition of %s/%s to 1", g.ns, g.name)
			if n := countMentions(warnings, partitionFinding); n != 1 {
				t.Errorf("%d warnings say pdguard would have set the partition to 1, want 1: %q", n, warnings)
			}
			// README: rule ids are used in responses.
			if !anyMentions(warnings, "bundled-config-and-version") {
				t.Errorf("no warning names the rule bundled-config-and-version; warnings: %q", warnings)
			}
			g.waitEvent("RolloutWarned", func(e eventsv1.Event) bool {
				return e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "bundled-config-and-version")
			})
		})
	}
}

func srvName(srv *pdguardproc.Server) string {
	if srv == env.dryrun {
		return "the dryrun pdguard"
	}
	return "the shared pdguard"
}
