package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// randomInput draws an input from the values the rules branch on: operations, modes,
// replica counts and partitions around the canary's, version changes, reverts and
// orders, config paths, annotations that loosen the mode or ask for an override, and
// images with and without tags. Most draws are requests the fast path must refuse, so
// both sides of every condition in fastpath.go are exercised.
func randomInput(r *rand.Rand) *Input {
	pick := func(options ...string) string { return options[r.IntN(len(options))] }
	num := func(options ...int32) int32 { return options[r.IntN(len(options))] }
	image := func(tag string) Image {
		img := Image{Ref: "pingidentity/pingdirectory", Repository: "pingidentity/pingdirectory", Tag: tag}
		if tag != "" {
			img.Ref += ":" + tag
		}
		if strings.HasPrefix(tag, "9.") || strings.HasPrefix(tag, "10.") {
			img.Version = Version{Known: true, Parts: []int64{9, 1, 0, 0}, Text: strings.TrimSuffix(tag, "-latest")}
		}
		return img
	}
	tag := func() string {
		return pick("9.0.0.1-latest", "9.1.0.0-latest", "10.1.0.0-latest", "latest", "2602", "")
	}
	annotations := func() map[string]string {
		a := map[string]string{}
		switch r.IntN(8) {
		case 0:
			a["pdguard.io/enforcement"] = pick("enforce", " Warn ", "dryrun", "off", "")
		case 1:
			a["pdguard.io/override-reason"] = pick("CHG-1 hotfix", "", "  ")
		case 2:
			a["pdguard.io/override-used"] = pick(`{"reason":"CHG-1","user":"dev"}`, "")
		case 3:
			a["pdguard.io/canary"] = `{"fromImage":"x"}`
		}
		return a
	}
	in := &Input{
		Phase: pick("mutate", "validate"), Operation: pick("UPDATE", "UPDATE", "UPDATE", "CREATE"),
		Namespace: "ping", Name: "pd-pingdirectory",
		User: User{Username: pick("dev", "admin"), Groups: []string{pick("system:authenticated", "pdguard-admins")}},
		Settings: Settings{
			Enforcement: pick("enforce", "enforce", "enforce", "warn", "dryrun"), CanaryReplicas: num(0, 1, 1, 2),
			SingleReplica: pick("warn", "deny"), OverrideGroups: []string{"pdguard-admins"}, SoakSeconds: 60, Container: "pingdirectory",
		},
		New: Summary{
			Replicas: num(0, 1, 2, 3, 3, 5, 10, -1), Partition: num(0, 0, 1, 2, 4, 9), HasPartition: true,
			Image: image(tag()), Annotations: annotations(),
		},
		Keys: AnnotationKeys(),
	}
	if in.Operation == "UPDATE" || r.IntN(10) == 0 {
		in.Old = &Summary{
			Replicas: num(1, 2, 3, 5, 10), Partition: num(0, 0, 1, 2, 4), HasPartition: true, Image: image(tag()), Annotations: annotations(),
			CurrentRevision: "r1", UpdateRevision: pick("r1", "r2", ""),
		}
	}
	in.Change = Change{VersionChanged: r.IntN(2) == 0, RevertsCanary: r.IntN(6) == 0}
	if r.IntN(4) > 0 {
		order := int(num(-1, 0, 1, 1))
		in.Change.VersionOrder = &order
	}
	switch r.IntN(4) {
	case 0:
		in.Change.ConfigPaths = []string{"spec.template.metadata.annotations[checksum/config]"}
	case 1:
		in.Change.ConfigPaths = []string{"spec.replicas", "spec.template.spec.containers[pingdirectory].env"}
	}
	in.Canary = Canary{Open: in.Old != nil && r.IntN(3) == 0}
	if r.IntN(2) == 0 {
		in.Canary.StableImage = image(tag())
	}
	if in.Canary.Open {
		if r.IntN(2) == 0 { // a promotion attempt: the partition gate
			in.Change.VersionChanged = false
			in.Old.Partition = num(1, 2, 4)
			in.New.Partition = r.Int32N(in.Old.Partition)
		}
		if r.IntN(4) == 0 {
			in.New.Replicas = num(12, 40) // canaries too large to name every pod in the message
		}
		in.Pods = randomPods(r, in.Name, in.Old.Partition, in.New.Replicas)
	}
	return in
}

// randomPods draws the canary's pods with every fact the partition gate words differently:
// missing and duplicated ordinals, revisions, readiness, each kind of evidence, verdicts
// with and without reasons (long ones, and ones with characters beyond ASCII, so that the
// message is cut), and a few proven pods.
func randomPods(r *rand.Rand, name string, lo, hi int32) []Pod {
	pick := func(options ...string) string { return options[r.IntN(len(options))] }
	var pods []Pod
	for i := lo; i < hi; i++ {
		if r.IntN(8) == 0 {
			continue
		}
		for range 1 + r.IntN(8)/7 {
			p := Pod{
				Name: fmt.Sprintf("%s-%d", name, i), Ordinal: i, Revision: pick("r1", "r2"),
				Ready: r.IntN(4) > 0, OnUpdateRevision: r.IntN(3) > 0, Soaked: r.IntN(2) == 0, ReadySecs: int64(r.IntN(90)),
				ContainerID: pick("", "containerd://abc"), Proven: r.IntN(5) == 0,
				Evidence:     pick("none", "unreadable", "untrusted", "stale-revision", "stale-container", "current"),
				VerdictError: pick("", "not JSON", "signature does not match"),
			}
			if r.IntN(4) > 0 {
				p.Verdict = &PodVerdict{
					Verdict: pick("Succeeded", "Failed", "InProgress", ""), Revision: pick("r1", "r2"), ContainerID: pick("", "containerd://old"),
					Reason: pick("", "replace-profile exited with 1.", "dsconfig rejected the change …", strings.Repeat("löng réason ", 40)),
				}
			}
			pods = append(pods, p)
		}
	}
	return pods
}

// TestFastPathGivesThePolicysAnswer compares, on many generated inputs, every answer of
// the fast path with the Rego policy's. The counts make sure the draw reaches both the
// fast path and the policy in each phase, so the comparison cannot pass vacuously.
func TestFastPathGivesThePolicysAnswer(t *testing.T) {
	e := newEngine(t, Options{})
	c := e.current.Load()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	fast := map[string]int{}
	for i := range 4000 {
		in := randomInput(r)
		if m, ok := fastMutate(in); ok {
			fast["mutate"]++
			want, err := c.evalMutate(ctx, in)
			if err := crossCheck(mutateQuery, m, want, err); err != nil {
				t.Fatalf("input %d: %v\ninput: %#v", i, err, in)
			}
			if m.Partition != nil {
				fast["mutate canary-partition"]++
			}
		}
		if v, ok := fastValidate(in); ok {
			fast["validate"]++
			if len(v.Denials) > 0 {
				fast["validate partition-gate"]++
				if strings.Contains(v.Denials[0].Message, "…") {
					fast["validate partition-gate, cut"]++
				}
				if strings.Contains(v.Denials[0].Message, "more pod") {
					fast["validate partition-gate, more pods"]++
				}
			}
			want, err := c.evalValidate(ctx, in)
			if err := crossCheck(validateQuery, v, want, err); err != nil {
				t.Fatalf("input %d: %v\ninput: %#v", i, err, in)
			}
		}
	}
	for k, least := range map[string]int{
		"mutate": 200, "mutate canary-partition": 200, "validate": 200,
		"validate partition-gate": 150, "validate partition-gate, cut": 20, "validate partition-gate, more pods": 20,
	} {
		if fast[k] < least || fast[k] > 3000 {
			t.Errorf("%s: the fast path answered %d of 4000 inputs; the draw no longer covers both paths", k, fast[k])
		}
	}
	t.Logf("fast path answers of 4000: %v", fast)
}

// TestFastPathAnswersTheCommonRequests pins what the fast path is for, so that a change
// which quietly sends them back to the policy shows up here and not only in load figures.
func TestFastPathAnswersTheCommonRequests(t *testing.T) {
	in := versionChange()
	m, ok := fastMutate(in)
	if !ok || m.Partition == nil || *m.Partition != 1 {
		t.Fatalf("a version change on 2 replicas: fast path %v, %+v", ok, m)
	}
	if _, ok := fastValidate(mutated(in, m)); !ok {
		t.Fatal("the mutated version change was not answered by the fast path")
	}
	unrelated := versionChange()
	unrelated.Change = Change{ConfigPaths: []string{}}
	unrelated.New.Image = unrelated.Old.Image
	if _, ok := fastMutate(unrelated); !ok {
		t.Fatal("an update without a version change was not answered by the fast path")
	}
	if _, ok := fastValidate(unrelated); !ok {
		t.Fatal("an update without a version change was not answered by the fast path")
	}
}

// The fast path knows only the embedded rules: a policy directory module sends every
// request to Rego, so its findings are never skipped.
func TestPolicyDirModulesTurnTheFastPathOff(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "freeze.rego", `package pdguard.validate

violation contains {"rule": "change-freeze", "message": "frozen"} if input.new.annotations["example.com/freeze"] == "true"
`)
	e := newEngine(t, Options{PolicyDir: dir})
	in := versionChange()
	in.Change = Change{ConfigPaths: []string{}}
	in.New.Image = in.Old.Image
	in.New.Annotations = map[string]string{"example.com/freeze": "true"}
	if _, ok := fastValidate(in); !ok {
		t.Fatal("precondition: the fast path would answer this request")
	}
	v, err := e.Validate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if v.Allowed || len(v.Denials) != 1 || v.Denials[0].Rule != "change-freeze" {
		t.Fatalf("the site rule did not deny: %+v", v)
	}
}

func TestCrossCheckReportsADifference(t *testing.T) {
	err := crossCheck(validateQuery, Validation{Allowed: true, Mode: "enforce"}, Validation{Allowed: true, Mode: "warn"}, nil)
	if err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("err = %v, want a difference reported", err)
	}
}

// TestFastGateAtEveryMessageLength sweeps the length of one pod's verdict reason across
// the gate's message budget, so the fast path and the policy are compared at each boundary
// where a group stops fitting, the rest are counted, or a problem is cut (in characters, with
// some beyond ASCII); the counts show the sweep crosses each of them.
func TestFastGateAtEveryMessageLength(t *testing.T) {
	c := newEngine(t, Options{}).current.Load()
	ctx := context.Background()
	seen := map[string]int{}
	for n := 1; n <= 640; n++ {
		in := versionChange()
		in.Phase = "validate"
		in.Change = Change{}
		in.Canary = Canary{Open: true, StableImage: in.Old.Image}
		in.Old.Image, in.Old.Replicas, in.Old.Partition, in.Old.UpdateRevision = in.New.Image, 5, 2, "pd-pingdirectory-85b6"
		in.New.Replicas, in.New.Partition = 5, 0
		reason := strings.Repeat("é", n%7) + strings.Repeat("x", n-n%7)
		in.Pods = []Pod{
			{Name: "pd-pingdirectory-2", Ordinal: 2, Revision: "pd-pingdirectory-85b6", OnUpdateRevision: true, Ready: true, Soaked: true,
				Evidence: "current", Verdict: &PodVerdict{Verdict: "Failed", Reason: reason}},
			{Name: "pd-pingdirectory-3", Ordinal: 3, Revision: "pd-pingdirectory-85b6", OnUpdateRevision: true, Evidence: "none"},
		}
		v, ok := fastValidate(in)
		if !ok {
			t.Fatalf("reason of %d characters: the fast path did not answer the promotion", n)
		}
		want, err := c.evalValidate(ctx, in)
		if err := crossCheck(validateQuery, v, want, err); err != nil {
			t.Fatalf("reason of %d characters: %v", n, err)
		}
		msg := v.Denials[0].Message
		switch {
		case strings.Contains(msg, "pd-pingdirectory-4 does not exist"):
			seen["all three problems"]++
		case strings.Contains(msg, "more pod"):
			seen["some counted"]++
		}
		if strings.Contains(msg, "…") {
			seen["cut"]++
		}
	}
	for _, k := range []string{"all three problems", "some counted", "cut"} {
		if seen[k] == 0 {
			t.Errorf("no reason length gave a message with %s: %v", k, seen)
		}
	}
}
