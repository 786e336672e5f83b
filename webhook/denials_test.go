package webhook

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/golden"
	"github.com/pdguard/pdguard/policy"
)

// maxDenial is how long a denial may be: helm prints it on one line, helm 4 twice, so the
// detail a reader needs only to dig deeper goes to the finding's details instead.
const maxDenial = 600

// maxFirstSentence is how long the sentence that says what was refused and why may be: it
// is what a reader of helm's one-line error takes in first.
const maxFirstSentence = 120

// firstSentence is a denial up to the first full stop that ends a sentence; the dots in
// versions, images and value paths are not followed by a space.
func firstSentence(msg string) string {
	if i := strings.Index(msg, ". "); i >= 0 {
		return msg[:i+1]
	}
	return msg
}

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
		// Six replicas with --canary-replicas 3: three canary pods, two of them InProgress
		// with the same reason and one without a verdict.
		"partition-gate-6-replicas": {
			opts: func(o *policy.Config) { o.CanaryReplicas = 3 },
			req: func() *policy.Request {
				live := scaledCanary(6, 3)
				pods := scaledPods(live, func(ordinal int32, pod *corev1.Pod) *rollout.Verdict {
					if ordinal == 5 {
						return nil
					}
					return inProgress(pod)
				})
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(noStatus(live), 0), Pods: pods, User: dev}
			},
			rule:   "partition-gate",
			values: []string{"Pods pd-upgrade-example-pingdirectory-3, -4: verdict InProgress", "Pod pd-upgrade-example-pingdirectory-5: no pdguard.io/replace-profile verdict yet", "pingdirectory.container.probes.startupProbe.failureThreshold", "pingdirectory.image.tag=9.0.0.1-latest"},
		},
		// Ten replicas whose partition was lowered step by step to 4: pod 9 is proven,
		// pods 4 to 6 restarted and are not Ready, 7 and 8 are InProgress.
		"partition-gate-10-replicas": {
			req: func() *policy.Request {
				live := scaledCanary(10, 4)
				pods := scaledPods(live, func(ordinal int32, pod *corev1.Pod) *rollout.Verdict {
					switch {
					case ordinal == 9:
						return succeededFor(canaryRev, containerID(*pod))
					case ordinal >= 7:
						return inProgress(pod)
					}
					notReady(pod)
					return nil
				})
				return &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(noStatus(live), 0), Pods: pods, User: dev}
			},
			rule:   "partition-gate",
			values: []string{"Pods pd-upgrade-example-pingdirectory-4, -5, -6: not Ready", ". 2 more pods: see kubectl pdguard status pd-upgrade-example-pingdirectory -n ping. Next: ", "pingdirectory.image.tag=9.0.0.1-latest"},
		},
		"missing-canary-10-replicas": {
			validate: true,
			req: func() *policy.Request {
				old := scaledLive(10)
				return &policy.Request{Operation: "UPDATE", Old: old, New: fixture.WithTag(noStatus(old), "9.1.0.0-latest"), User: dev}
			},
			rule:   "missing-canary",
			values: []string{"on 10 replicas with partition 0 (at least 9 needed)", "pingdirectory.workload.statefulSet.partition=9", "same -f values files"},
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

// Every golden denial, the ones above and any added later, holds to the length rules.
func TestDenialGoldensAreShort(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "denials", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("%d denial goldens, want at least 10", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, _, _ := strings.Cut(string(b), "\n")
		if n := len(msg); n > maxDenial {
			t.Errorf("%s: denial is %d characters, want at most %d", f, n, maxDenial)
		}
		if first := firstSentence(msg); len(first) > maxFirstSentence {
			t.Errorf("%s: first sentence is %d characters, want at most %d: %q", f, len(first), maxFirstSentence, first)
		}
	}
}

func TestFirstSentence(t *testing.T) {
	for msg, want := range map[string]string{
		"pdguard refused StatefulSet a/b: image 9.0.0.1 is wrong. Next: fix it.": "pdguard refused StatefulSet a/b: image 9.0.0.1 is wrong.",
		"no full stop": "no full stop",
	} {
		if got := firstSentence(msg); got != want {
			t.Errorf("firstSentence(%q) = %q, want %q", msg, got, want)
		}
	}
}

// scaledLive is the fixture's live StatefulSet with the given replicas, all ready on the
// stable revision.
func scaledLive(replicas int32) *appsv1.StatefulSet {
	sts := fixture.Live()
	sts.Spec.Replicas = &replicas
	sts.Status.Replicas, sts.Status.ReadyReplicas, sts.Status.AvailableReplicas = replicas, replicas, replicas
	sts.Status.CurrentReplicas, sts.Status.UpdatedReplicas = replicas, replicas
	return sts
}

// scaledCanary is openCanary with the given replicas and a live partition.
func scaledCanary(replicas, partition int32) *appsv1.StatefulSet {
	sts := withPartition(openCanary(), partition)
	sts.Spec.Replicas = &replicas
	sts.Status.Replicas, sts.Status.ReadyReplicas = replicas, replicas
	sts.Status.CurrentReplicas, sts.Status.UpdatedReplicas = partition, replicas-partition
	return sts
}

func noStatus(sts *appsv1.StatefulSet) *appsv1.StatefulSet {
	sts = sts.DeepCopy()
	sts.Status = appsv1.StatefulSetStatus{}
	return sts
}

// scaledPods are the pods of a scaledCanary: those below the partition on the stable
// revision, Ready for an hour; those at or above it on the canary revision, each with the
// verdict annotation state returns (none for nil).
func scaledPods(live *appsv1.StatefulSet, state func(ordinal int32, pod *corev1.Pod) *rollout.Verdict) []corev1.Pod {
	stable := fixture.WithTag(live.DeepCopy(), "9.0.0.1-latest")
	partition := *live.Spec.UpdateStrategy.RollingUpdate.Partition
	var pods []corev1.Pod
	for i := int32(0); i < *live.Spec.Replicas; i++ {
		p := fixture.Pod(stable, i, stableRev)
		if i >= partition {
			p = fixture.Pod(live, i, canaryRev)
		}
		p.OwnerReferences[0].UID = live.UID
		for c := range p.Status.Conditions {
			if p.Status.Conditions[c].Type == corev1.PodReady {
				p.Status.Conditions[c].LastTransitionTime = metav1.NewTime(now.Add(-time.Hour))
			}
		}
		if i >= partition {
			if v := state(i, p); v != nil {
				raw, _ := json.Marshal(v)
				if p.Annotations == nil {
					p.Annotations = map[string]string{}
				}
				p.Annotations[rollout.ReplaceProfileAnnotation] = string(raw)
			}
		}
		pods = append(pods, *p)
	}
	return pods
}

func inProgress(pod *corev1.Pod) *rollout.Verdict {
	return &rollout.Verdict{Verdict: rollout.VerdictInProgress, Revision: canaryRev, ContainerID: containerID(*pod), ObservedAt: now,
		Reason: `replace-profile has not finished in this log; scan again after "Setting Server to Available". If the startup probe restarts the pod, raise pingdirectory.container.probes.startupProbe.failureThreshold.`}
}

// notReady is a pod whose container restarted and has not passed its readiness probe.
func notReady(pod *corev1.Pod) {
	for c := range pod.Status.Conditions {
		switch pod.Status.Conditions[c].Type {
		case corev1.PodReady, corev1.ContainersReady:
			pod.Status.Conditions[c].Status = corev1.ConditionFalse
			pod.Status.Conditions[c].LastTransitionTime = metav1.NewTime(now.Add(-time.Minute))
		}
	}
	for c := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[c].Ready = false
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
