package webhook

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/policy"
)

var (
	now   = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	admin = authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:masters", "system:authenticated"}}
	dev   = authenticationv1.UserInfo{Username: "dev", Groups: []string{"system:authenticated"}}
)

const (
	stableRev = "pd-upgrade-example-pingdirectory-6d4cf56db6"
	canaryRev = "pd-upgrade-example-pingdirectory-7f9c8b5d4c"
)

func newGuard(t testing.TB, mod func(*policy.Config)) *Guard {
	t.Helper()
	// Every decision of the webhook tests also proves the policy's fast path right.
	_, bench := t.(*testing.B)
	engine, err := policy.New(policy.Options{CrossCheck: !bench})
	if err != nil {
		t.Fatalf("policy.New: %v", err)
	}
	opts := policy.DefaultConfig()
	if mod != nil {
		mod(&opts)
	}
	return NewGuard(engine, opts).WithClock(func() time.Time { return now })
}

// openCanary is the live object after pdguard pinned a 9.0.0.1 -> 9.1.0.0 canary on
// ordinal 1 and the StatefulSet controller published the new revision.
func openCanary() *appsv1.StatefulSet {
	sts := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
	one := int32(1)
	sts.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &one}
	sts.Generation++
	sts.Status.ObservedGeneration = sts.Generation
	sts.Status.CurrentRevision = stableRev
	sts.Status.UpdateRevision = canaryRev
	rec, _ := json.Marshal(rollout.CanaryRecord{
		FromImage: "pingidentity/pingdirectory:9.0.0.1-latest", ToImage: "pingidentity/pingdirectory:9.1.0.0-latest",
		FromVersion: "9.0.0.1", ToVersion: "9.1.0.0", Partition: 1, Started: now.Add(-10 * time.Minute), RequestedBy: "kubernetes-admin",
	})
	if sts.Annotations == nil {
		sts.Annotations = map[string]string{}
	}
	sts.Annotations[rollout.CanaryAnnotation] = string(rec)
	return sts
}

// canaryPods are the pods of openCanary: ordinal 0 on the stable revision and image,
// ordinal 1 on the canary revision, Ready for readyFor, with the given verdict.
func canaryPods(live *appsv1.StatefulSet, readyFor time.Duration, verdict *rollout.Verdict) []corev1.Pod {
	stable := fixture.WithTag(live.DeepCopy(), "9.0.0.1-latest")
	p0 := fixture.Pod(stable, 0, stableRev)
	p1 := fixture.Pod(live, 1, canaryRev)
	for _, p := range []*corev1.Pod{p0, p1} {
		p.OwnerReferences[0].UID = live.UID
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now.Add(-readyFor))
			}
		}
	}
	if verdict != nil {
		raw, _ := json.Marshal(verdict)
		if p1.Annotations == nil {
			p1.Annotations = map[string]string{}
		}
		p1.Annotations[rollout.ReplaceProfileAnnotation] = string(raw)
	}
	return []corev1.Pod{*p0, *p1}
}

func containerID(p corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "pingdirectory" {
			return cs.ContainerID
		}
	}
	return ""
}

func succeededFor(revision, id string) *rollout.Verdict {
	return &rollout.Verdict{Verdict: rollout.VerdictSucceeded, Revision: revision, ContainerID: id, From: "9.0.0.1", To: "9.1.0.0", ObservedAt: now.Add(-time.Minute)}
}

func withPartition(sts *appsv1.StatefulSet, p int32) *appsv1.StatefulSet {
	sts.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &p}
	return sts
}

func withEnv(sts *appsv1.StatefulSet, name, value string) *appsv1.StatefulSet {
	c := &sts.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
	return sts
}

func withAnnotation(sts *appsv1.StatefulSet, k, v string) *appsv1.StatefulSet {
	if sts.Annotations == nil {
		sts.Annotations = map[string]string{}
	}
	sts.Annotations[k] = v
	return sts
}

func withChecksum(sts *appsv1.StatefulSet, sum string) *appsv1.StatefulSet {
	sts.Spec.Template.Annotations["checksum/config"] = sum
	return sts
}

func TestCheck(t *testing.T) {
	defaultContainerID := containerID(canaryPods(openCanary(), time.Hour, nil)[1])
	type want struct {
		allowed       bool
		rules         []string // each must be among the rules that fired
		noRules       []string // none of these may fire
		partition     *int32   // partition after mutation; nil: no partition op
		reasons       []string // substrings of the denial
		warnings      []string // substrings of some warning
		noPatch       bool
		closesCanary  bool
		recordsCanary bool
		movesOverride bool // the reason is taken off and recorded as used
	}
	one := int32(1)
	tests := map[string]struct {
		opts func(*policy.Config)
		req  func() *policy.Request
		want want
	}{
		"a new tag on a two-replica set pins the canary to ordinal 1 and records it": {
			req: func() *policy.Request {
				old := fixture.Live()
				return &policy.Request{Operation: "UPDATE", Old: old, New: fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), User: admin}
			},
			want: want{allowed: true, rules: []string{"canary-partition"}, partition: &one, recordsCanary: true, warnings: []string{"pd-upgrade-example-pingdirectory-1"}},
		},
		"a new tag on three replicas with two canary replicas keeps ordinal 0 as the seed": {
			opts: func(o *policy.Config) { o.CanaryReplicas = 2 },
			req: func() *policy.Request {
				three := int32(3)
				old := fixture.Live()
				old.Spec.Replicas = &three
				nw := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				nw.Spec.Replicas = &three
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: admin}
			},
			want: want{allowed: true, rules: []string{"canary-partition"}, partition: &one},
		},
		"a canary count as large as the set still never updates ordinal 0": {
			opts: func(o *policy.Config) { o.CanaryReplicas = 5 },
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), User: admin}
			},
			want: want{allowed: true, rules: []string{"canary-partition"}, partition: &one},
		},
		"a larger partition asked for by the user is kept": {
			req: func() *policy.Request {
				three := int32(3)
				old := fixture.Live()
				old.Spec.Replicas = &three
				nw := withPartition(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), 3)
				nw.Spec.Replicas = &three
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: admin}
			},
			want: want{allowed: true, noPatch: false, recordsCanary: true},
		},
		"a new tag bundled with a config checksum change is denied and names the path": {
			req: func() *policy.Request {
				nw := withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000")
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: admin}
			},
			want: want{allowed: false, rules: []string{"bundled-config-and-version"}, reasons: []string{"checksum/config", "9.0.0.1-latest"}},
		},
		"a new tag bundled with an env var and a replica change lists both paths": {
			req: func() *policy.Request {
				three := int32(3)
				nw := withEnv(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "MAX_HEAP_SIZE", "4g")
				nw.Spec.Replicas = &three
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: admin}
			},
			want: want{allowed: false, rules: []string{"bundled-config-and-version"}, reasons: []string{"spec.replicas", "containers[pingdirectory].env"}},
		},
		"a chart label bump with a new tag is not a config change": {
			req: func() *policy.Request {
				nw := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				nw.Spec.Template.Labels["helm.sh/chart"] = "ping-devops-0.12.1"
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: admin}
			},
			want: want{allowed: true, rules: []string{"canary-partition"}, noRules: []string{"bundled-config-and-version"}, partition: &one},
		},
		"a config change with no version change and no canary passes untouched": {
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: withChecksum(fixture.Live(), "1111"), User: admin}
			},
			want: want{allowed: true, noPatch: true, noRules: []string{"canary-partition", "bundled-config-and-version"}},
		},
		"promotion before the canary has any verdict is denied and names the pod": {
			req: func() *policy.Request {
				live := openCanary()
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: canaryPods(live, time.Hour, nil), User: admin}
			},
			want: want{allowed: false, rules: []string{"partition-gate"}, reasons: []string{"pd-upgrade-example-pingdirectory-1"}},
		},
		"promotion after a Succeeded verdict on the current container and soak is allowed": {
			req: func() *policy.Request {
				live := openCanary()
				pods := canaryPods(live, time.Hour, nil)
				pods = canaryPods(live, time.Hour, succeededFor(canaryRev, containerID(pods[1])))
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: pods, User: admin}
			},
			want: want{allowed: true, noRules: []string{"partition-gate"}, noPatch: true},
		},
		"promotion on a verdict about an earlier container is denied as stale": {
			req: func() *policy.Request {
				live := openCanary()
				pods := canaryPods(live, time.Hour, succeededFor(canaryRev, "containerd://an-earlier-container"))
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: pods, User: admin}
			},
			want: want{allowed: false, rules: []string{"partition-gate"}, reasons: []string{"pd-upgrade-example-pingdirectory-1"}},
		},
		"promotion sent before the controller observed the last change is denied even with an earlier Succeeded verdict": {
			req: func() *policy.Request {
				live := openCanary()
				pods := canaryPods(live, time.Hour, succeededFor(canaryRev, defaultContainerID))
				live.Generation++
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: pods, User: admin}
			},
			want: want{allowed: false, rules: []string{"partition-gate"}, reasons: []string{"has not observed the latest change"}},
		},
		"promotion on a Succeeded verdict for another revision is denied": {
			req: func() *policy.Request {
				live := openCanary()
				pods := canaryPods(live, time.Hour, succeededFor("some-older-revision", defaultContainerID))
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: pods, User: admin}
			},
			want: want{allowed: false, rules: []string{"partition-gate"}},
		},
		"promotion before the soak time has passed is denied": {
			req: func() *policy.Request {
				live := openCanary()
				pods := canaryPods(live, 5*time.Second, succeededFor(canaryRev, defaultContainerID))
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: pods, User: admin}
			},
			want: want{allowed: false, rules: []string{"partition-gate"}},
		},
		"promotion after a Failed verdict is denied and says how to roll back": {
			req: func() *policy.Request {
				live := openCanary()
				v := &rollout.Verdict{Verdict: rollout.VerdictFailed, Revision: canaryRev, ContainerID: defaultContainerID, Reason: "Running the update tool ..... Error", ObservedAt: now}
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: canaryPods(live, time.Hour, v), User: admin}
			},
			want: want{allowed: false, rules: []string{"partition-gate"}, reasons: []string{"Failed", "9.0.0.1-latest"}},
		},
		"a profile fix during an open canary keeps the live partition": {
			req: func() *policy.Request {
				live := openCanary()
				return &policy.Request{Operation: "UPDATE", Old: live, New: withChecksum(withPartition(openCanaryNoStatus(), 0), "fix"), Pods: canaryPods(live, time.Hour, nil), User: admin}
			},
			want: want{allowed: true, rules: []string{"canary-repin"}, noRules: []string{"partition-gate"}, partition: &one},
		},
		"reverting the canary to the stable tag is allowed and closes the canary": {
			req: func() *policy.Request {
				live := openCanary()
				nw := withPartition(fixture.WithTag(openCanaryNoStatus(), "9.0.0.1-latest"), 0)
				return &policy.Request{Operation: "UPDATE", Old: live, New: nw, Pods: canaryPods(live, time.Hour, nil), User: admin}
			},
			want: want{allowed: true, noRules: []string{"downgrade", "missing-canary", "partition-gate", "bundled-config-and-version"}, partition: &one, closesCanary: true},
		},
		"a lower version than the set runs is denied as a downgrade": {
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "8.3.0.5-latest"), User: admin}
			},
			want: want{allowed: false, rules: []string{"downgrade"}, reasons: []string{"8.3.0.5"}},
		},
		"a tag with no readable version warns that the downgrade check cannot apply": {
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "edge"), User: admin}
			},
			want: want{allowed: true, rules: []string{"canary-partition"}, partition: &one, warnings: []string{"edge"}},
		},
		"a version change on a single replica is allowed with a warning by default": {
			req: func() *policy.Request {
				single := int32(1)
				old, nw := fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				old.Spec.Replicas, nw.Spec.Replicas = &single, &single
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: admin}
			},
			want: want{allowed: true, rules: []string{"single-replica"}, noRules: []string{"missing-canary"}, noPatch: true},
		},
		"a version change on a single replica is denied with --single-replica=deny": {
			opts: func(o *policy.Config) { o.SingleReplica = "deny" },
			req: func() *policy.Request {
				single := int32(1)
				old, nw := fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				old.Spec.Replicas, nw.Spec.Replicas = &single, &single
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: admin}
			},
			want: want{allowed: false, rules: []string{"single-replica"}},
		},
		"an override by a system:masters user lets a bundled change through with a warning": {
			req: func() *policy.Request {
				nw := withAnnotation(withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000"), rollout.OverrideReasonAnnotation, "INC-42 emergency fix")
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: admin}
			},
			want: want{allowed: true, rules: []string{"bundled-config-and-version", "override"}, warnings: []string{"INC-42"}, movesOverride: true},
		},
		"an override used by an earlier change does not count again": {
			req: func() *policy.Request {
				used := `{"reason":"INC-42 emergency fix","user":"kubernetes-admin","at":"2026-11-25T11:00:00Z"}`
				old := withAnnotation(fixture.Live(), rollout.OverrideUsedAnnotation, used)
				nw := withAnnotation(withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000"), rollout.OverrideUsedAnnotation, used)
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: admin}
			},
			want: want{allowed: false, rules: []string{"bundled-config-and-version"}},
		},
		"an override reason that no rule needs stays on the object for the change that does": {
			req: func() *policy.Request {
				nw := withAnnotation(withChecksum(fixture.Live(), "1111"), rollout.OverrideReasonAnnotation, "INC-42 emergency fix")
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: admin}
			},
			want: want{allowed: true, noPatch: true},
		},
		"an override by a user outside the override groups is ignored and the denial says so": {
			req: func() *policy.Request {
				nw := withAnnotation(withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000"), rollout.OverrideReasonAnnotation, "please")
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: dev}
			},
			want: want{allowed: false, rules: []string{"bundled-config-and-version"}, reasons: []string{"dev"}},
		},
		"warn mode allows a bundled change with a warning and still pins the canary": {
			opts: func(o *policy.Config) { o.Enforcement = "warn" },
			req: func() *policy.Request {
				nw := withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000")
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: admin}
			},
			want: want{allowed: true, rules: []string{"bundled-config-and-version", "canary-partition"}, warnings: []string{"pdguard would deny: ", "checksum/config"}, partition: &one, recordsCanary: true},
		},
		"warn mode pins the canary of a plain upgrade as enforce mode does": {
			opts: func(o *policy.Config) { o.Enforcement = "warn" },
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), User: dev}
			},
			want: want{allowed: true, rules: []string{"canary-partition"}, noRules: []string{"missing-canary"}, partition: &one, recordsCanary: true},
		},
		"dryrun mode changes nothing, not even the partition": {
			opts: func(o *policy.Config) { o.Enforcement = "dryrun" },
			req: func() *policy.Request {
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), User: dev}
			},
			want: want{allowed: true, noPatch: true},
		},
		"a StatefulSet annotated enforce is enforced even when the server runs in warn mode": {
			opts: func(o *policy.Config) { o.Enforcement = "warn" },
			req: func() *policy.Request {
				old := withAnnotation(fixture.Live(), rollout.EnforcementAnnotation, "enforce")
				nw := withAnnotation(withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000"), rollout.EnforcementAnnotation, "enforce")
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: admin}
			},
			want: want{allowed: false, rules: []string{"bundled-config-and-version"}},
		},
		"a dryrun annotation sent with the change cannot loosen enforcement in that change": {
			req: func() *policy.Request {
				nw := withAnnotation(withChecksum(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), "0000"), rollout.EnforcementAnnotation, "dryrun")
				return &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: nw, User: dev}
			},
			want: want{allowed: false, rules: []string{"bundled-config-and-version"}},
		},
		"creating a guarded StatefulSet is allowed untouched": {
			req: func() *policy.Request {
				return &policy.Request{Operation: "CREATE", New: fixture.Live(), User: admin}
			},
			want: want{allowed: true, noPatch: true},
		},
		"a StatefulSet without the product container is allowed with a warning that it is not guarded": {
			req: func() *policy.Request {
				old, nw := fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				old.Spec.Template.Spec.Containers[0].Name = "pd"
				nw.Spec.Template.Spec.Containers[0].Name = "pd"
				return &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: admin}
			},
			want: want{allowed: true, noPatch: true, warnings: []string{"no container named"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			g := newGuard(t, tc.opts)
			res, err := g.Check(context.Background(), tc.req())
			if err != nil {
				t.Fatalf("Check() error = %v", err)
			}
			dump, _ := json.MarshalIndent(res, "", "  ")
			if res.Allowed != tc.want.allowed {
				t.Errorf("allowed = %v, want %v\n%s", res.Allowed, tc.want.allowed, dump)
			}
			for _, r := range tc.want.rules {
				if !slices.Contains(res.Rules, r) {
					t.Errorf("rule %q did not fire\n%s", r, dump)
				}
			}
			for _, r := range tc.want.noRules {
				if slices.Contains(res.Rules, r) {
					t.Errorf("rule %q fired, want not\n%s", r, dump)
				}
			}
			for _, s := range tc.want.reasons {
				if !strings.Contains(strings.Join(res.Reasons, "\n"), s) {
					t.Errorf("no denial reason mentions %q\n%s", s, dump)
				}
			}
			for _, s := range tc.want.warnings {
				if !strings.Contains(strings.Join(res.Warnings, "\n"), s) {
					t.Errorf("no warning mentions %q\n%s", s, dump)
				}
			}
			if !tc.want.allowed && len(res.Reasons) == 0 {
				t.Errorf("denied with no reason\n%s", dump)
			}
			if tc.want.noPatch && len(res.Patch) > 0 {
				t.Errorf("patch = %v, want none", res.Patch)
			}
			var gotPartition *int32
			var recorded, closed bool
			for _, op := range res.Patch {
				switch {
				case strings.HasSuffix(op.Path, "/partition"):
					p := int32(op.Value.(int32))
					gotPartition = &p
				case strings.HasSuffix(op.Path, "pdguard.io~1canary") && op.Operation == "remove":
					closed = true
				case strings.HasSuffix(op.Path, "pdguard.io~1canary") || op.Path == "/metadata/annotations":
					recorded = true
				}
			}
			if tc.want.partition != nil {
				if gotPartition == nil || *gotPartition != *tc.want.partition {
					// The re-pin and revert cases keep a partition the request already
					// lowered; either an op restores it or the request kept it.
					t.Errorf("partition op = %v, want %d\n%s", gotPartition, *tc.want.partition, dump)
				}
			}
			var removedReason, addedUsed bool
			for _, op := range res.Patch {
				removedReason = removedReason || (op.Operation == "remove" && op.Path == "/metadata/annotations/pdguard.io~1override-reason")
				addedUsed = addedUsed || (op.Operation == "add" && op.Path == "/metadata/annotations/pdguard.io~1override-used")
			}
			if tc.want.movesOverride != (removedReason && addedUsed) {
				t.Errorf("override moved to override-used = %v, want %v\n%s", removedReason && addedUsed, tc.want.movesOverride, dump)
			}
			if tc.want.recordsCanary && !recorded {
				t.Errorf("canary was not recorded\n%s", dump)
			}
			if tc.want.closesCanary && !closed {
				t.Errorf("canary annotation was not removed\n%s", dump)
			}
		})
	}
}

// openCanaryNoStatus is what helm sends during an open canary: the chart's object with
// the canary's tag, partition 0, and the canary annotation the API server merged in.
func openCanaryNoStatus() *appsv1.StatefulSet {
	sts := openCanary()
	sts.Status = appsv1.StatefulSetStatus{}
	return sts
}

// The fix command of missing-canary patches the product container the server guards,
// named by --container, not the chart's default.
func TestMissingCanaryNamesTheConfiguredContainer(t *testing.T) {
	rename := func(sts *appsv1.StatefulSet) *appsv1.StatefulSet {
		for i := range sts.Spec.Template.Spec.Containers {
			if c := &sts.Spec.Template.Spec.Containers[i]; c.Name == fixture.Container {
				c.Name = "directory"
			}
		}
		return sts
	}
	g := newGuard(t, func(c *policy.Config) { c.Diff.Container = "directory" })
	old := rename(fixture.Live())
	nw := rename(fixture.WithTag(fixture.Live(), "9.1.0.0-latest"))
	// Validated as if the mutating webhook had not run: no canary partition.
	v, err := g.Validate(context.Background(), &policy.Request{Operation: "UPDATE", Old: old, New: nw, User: dev})
	if err != nil {
		t.Fatal(err)
	}
	if v.Allowed || len(v.Reasons) != 1 || !strings.HasPrefix(v.Reasons[0], "[missing-canary] ") {
		t.Fatalf("want a missing-canary denial, got %+v", v)
	}
	details := strings.Join(v.Decision.Denials[0].Details, "\n")
	if want := `"containers":[{"name":"directory","image":"`; !strings.Contains(details, want) {
		t.Errorf("the fix command does not patch the configured container:\n%s\nwant it to contain %s", details, want)
	}
}

func TestOutcomesAreClassifiedByTheGuard(t *testing.T) {
	op := []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/spec/updateStrategy/rollingUpdate/partition", 1)}
	for name, tc := range map[string]struct {
		got, want string
	}{
		"a patch":                        {(&MutateResult{Patch: op}).Outcome(), audit.Patched},
		"a mutation with warnings only":  {(&MutateResult{Warnings: []string{"w"}}).Outcome(), audit.Warned},
		"nothing to change":              {(&MutateResult{}).Outcome(), audit.Allowed},
		"a denial":                       {(&ValidateResult{Allowed: false, Warnings: []string{"w"}}).Outcome(), audit.Denied},
		"allowed with a rule reported":   {(&ValidateResult{Allowed: true, Rules: []string{"override"}}).Outcome(), audit.Warned},
		"allowed with nothing to report": {(&ValidateResult{Allowed: true}).Outcome(), audit.Allowed},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: outcome %q, want %q", name, tc.got, tc.want)
		}
	}
}

func TestValidateNamesTheCanaryARequestOpens(t *testing.T) {
	g := newGuard(t, nil)
	ctx := context.Background()
	req := &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "9.1.0.0-latest")}
	m, err := g.Mutate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	mutated, err := ApplyPatch(req.New, m.Patch)
	if err != nil {
		t.Fatal(err)
	}
	v, err := g.Validate(ctx, &policy.Request{Operation: "UPDATE", Old: req.Old, New: mutated})
	if err != nil {
		t.Fatal(err)
	}
	if v.Canary == nil || v.Canary.Partition != 1 || !strings.HasSuffix(v.Canary.ToImage, ":9.1.0.0-latest") {
		t.Errorf("canary opened = %+v, want the record pinned at partition 1 for 9.1.0.0-latest", v.Canary)
	}
	again, err := g.Validate(ctx, &policy.Request{Operation: "UPDATE", Old: mutated, New: mutated})
	if err != nil {
		t.Fatal(err)
	}
	if again.Canary != nil {
		t.Errorf("a request that keeps the record opens canary %+v", again.Canary)
	}
}
