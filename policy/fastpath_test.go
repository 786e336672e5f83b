package policy

import (
	"context"
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
		for i := in.Old.Partition; i < in.New.Replicas && i < 4; i++ {
			in.Pods = append(in.Pods, Pod{Name: in.Name + "-" + string(rune('0'+i)), Ordinal: i, Revision: "r2", Ready: true, Evidence: pick("none", "current")})
		}
	}
	return in
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
			want, err := c.evalValidate(ctx, in)
			if err := crossCheck(validateQuery, v, want, err); err != nil {
				t.Fatalf("input %d: %v\ninput: %#v", i, err, in)
			}
		}
	}
	for _, k := range []string{"mutate", "mutate canary-partition", "validate"} {
		if fast[k] < 200 || fast[k] > 3000 {
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
