package webhook

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/golden"
	"github.com/pdguard/pdguard/policy"
)

// maxDenial is how long a denial may be: helm prints it on one line, helm 4 twice, so the
// detail a reader needs only to dig deeper goes to the finding's details instead.
const maxDenial = 600

// TestDenialTexts renders every rule's denial of a chart-shaped request into
// testdata/denials (go test -run TestDenialTexts ./webhook/ -update rewrites them), and
// checks that each stays short and names the chart values an operator has to change.
func TestDenialTexts(t *testing.T) {
	single := int32(1)
	tests := map[string]struct {
		opts     func(*policy.Config)
		validate bool // validated without the mutating webhook, as when it did not run
		req      func() *policy.Request
		rule     string
		values   []string
	}{
		"bundled-config-and-version": {
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000"), User: admin}
			},
			rule:   "bundled-config-and-version",
			values: []string{"checksum/config", "pingdirectory.envs", "global.envs", "helm rollback RELEASE", "same -f values files", "pingdirectory.image.tag"},
		},
		"missing-canary": {
			validate: true,
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), User: dev}
			},
			rule:   "missing-canary",
			values: []string{"pingdirectory.workload.statefulSet.partition=1", "same -f values files"},
		},
		"partition-gate-no-verdict": {
			req: func() *policy.Request {
				live := openCanary()
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: canaryPods(live, time.Hour, nil), User: dev}
			},
			rule:   "partition-gate",
			values: []string{"Pod pd-upgrade-example-pingdirectory-1: ", "pingdirectory.image.tag=9.0.0.1-latest", "same -f values files"},
		},
		"partition-gate-in-progress": {
			req: func() *policy.Request {
				live := openCanary()
				pods := canaryPods(live, 0, nil)
				v := &rollout.Verdict{Verdict: rollout.VerdictInProgress, Revision: canaryRev, ContainerID: containerID(pods[1]), ObservedAt: now,
					Reason: `replace-profile has not finished in this log; scan again after "Setting Server to Available". If the startup probe restarts the pod, raise pingdirectory.container.probes.startupProbe.failureThreshold.`}
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: canaryPods(live, 0, v), User: dev}
			},
			rule:   "partition-gate",
			values: []string{"pingdirectory.container.probes.startupProbe.failureThreshold", "pingdirectory.image.tag"},
		},
		"partition-gate-no-canary-pod": {
			req: func() *policy.Request {
				live := withPartition(openCanary(), 2)
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: canaryPods(live, time.Hour, nil), User: dev}
			},
			rule:   "partition-gate",
			values: []string{"pingdirectory.workload.statefulSet.partition=1", "same -f values files"},
		},
		"downgrade": {
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "8.3.0.5-latest"), User: dev}
			},
			rule:   "downgrade",
			values: []string{"pingdirectory.image.tag", "9.0.0.1-latest"},
		},
		"single-replica": {
			opts: func(o *policy.Config) { o.SingleReplica = "deny" },
			req: func() *policy.Request {
				old, nw := fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				old.Spec.Replicas, nw.Spec.Replicas = &single, &single
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: dev}
			},
			rule:   "single-replica",
			values: []string{"pingdirectory.container.replicaCount=2", "pingdirectory.image.tag", "same -f values files"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := newGuard(t, tc.opts)
			req := tc.req()
			var denials []policy.Finding
			if tc.validate {
				v, err := g.Validate(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				denials = v.Decision.Denials
			} else {
				m, err := g.Mutate(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				mutated, err := ApplyPatch(req.New, m.Patch)
				if err != nil {
					t.Fatal(err)
				}
				vreq := *req
				vreq.New = mutated
				v, err := g.Validate(context.Background(), &vreq)
				if err != nil {
					t.Fatal(err)
				}
				denials = v.Decision.Denials
			}
			if len(denials) != 1 || denials[0].Rule != tc.rule {
				t.Fatalf("denials = %+v, want one by %s", denials, tc.rule)
			}
			d := denials[0]
			t.Logf("%d characters", len(d.Message))
			if n := len(d.Message); n > maxDenial {
				t.Errorf("denial is %d characters, want at most %d:\n%s", n, maxDenial, d.Message)
			}
			for _, v := range tc.values {
				if !strings.Contains(d.Message, v) {
					t.Errorf("denial does not name %q:\n%s", v, d.Message)
				}
			}
			if !strings.HasPrefix(d.Message, "pdguard refused ") || !strings.Contains(d.Message, "Next: ") {
				t.Errorf("denial does not lead with what was refused and end with the next step:\n%s", d.Message)
			}
			got := d.Message + "\n"
			for _, line := range d.Details {
				got += "\ndetail: " + line
			}
			if len(d.Details) > 0 {
				got += "\n"
			}
			golden.Check(t, filepath.Join("testdata", "denials", name+".txt"), got)
		})
	}
}

// helm --atomic answers a refused promotion by rolling back to the revision that opened the
// canary, which sends the same object again: it is refused the same way, and the denial's
// details say so; rolling back one revision further, to the stable tag, is a revert.
func TestHelmRollbackAfterARefusedPromotion(t *testing.T) {
	g := newGuard(t, nil)
	live := openCanary()
	pods := canaryPods(live, time.Hour, nil)
	promotion := &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: pods, User: admin}
	refused, err := g.Check(context.Background(), promotion)
	if err != nil {
		t.Fatal(err)
	}
	rollback := *promotion
	rollback.New = withPartition(openCanaryNoStatus(), 0)
	v, err := g.Validate(context.Background(), &rollback)
	if err != nil {
		t.Fatal(err)
	}
	if refused.Allowed || v.Allowed || len(v.Decision.Denials) != 1 || v.Decision.Denials[0].Rule != "partition-gate" {
		t.Fatalf("promotion allowed = %v, rollback to the canary revision = %+v; want both refused by partition-gate", refused.Allowed, v.Decision)
	}
	details := strings.Join(v.Decision.Denials[0].Details, "\n")
	for _, want := range []string{"helm --atomic / --rollback-on-failure", "is refused too", "helm rollback RELEASE <revision before the canary>", "pingdirectory.image.tag=9.0.0.1-latest"} {
		if !strings.Contains(details, want) {
			t.Errorf("details do not say %q:\n%s", want, details)
		}
	}

	stable := *promotion
	stable.New = withPartition(fixture.WithTag(openCanaryNoStatus(), "9.0.0.1-latest"), 0)
	back, err := g.Check(context.Background(), &stable)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Allowed {
		t.Errorf("rolling back to the stable revision was refused: %v", back.Reasons)
	}
}
