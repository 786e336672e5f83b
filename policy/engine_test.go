package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

func pdImage(tag string, parts ...int64) Image {
	img := Image{
		Ref:        "pingidentity/pingdirectory:" + tag,
		Repository: "pingidentity/pingdirectory",
		Tag:        tag,
		Version:    Version{Text: tag},
	}
	if len(parts) > 0 {
		img.Version = Version{Known: true, Parts: parts, Text: strings.TrimSuffix(tag, "-latest")}
	}
	return img
}

// versionChange is helm upgrade --set pingdirectory.image.tag=10.2.0.0-latest on a
// two-replica PingDirectory, as the mutating webhook receives it.
func versionChange() *Input {
	stable := pdImage("10.1.0.0-latest", 10, 1, 0, 0)
	higher := 1
	pod := func(i int32) Pod {
		return Pod{
			Name: "pd-pingdirectory-" + string(rune('0'+i)), Ordinal: i, Revision: "pd-pingdirectory-7c9f8d",
			Ready: true, ReadySecs: 86400, ContainerID: "containerd://0f3a" + string(rune('0'+i)),
		}
	}
	return &Input{
		Phase:     "mutate",
		Operation: "UPDATE",
		Namespace: "ping",
		Name:      "pd-pingdirectory",
		User:      User{Username: "system:serviceaccount:ci:deployer", Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		Settings:  Settings{Enforcement: "enforce", CanaryReplicas: 1, SingleReplica: "warn", OverrideGroups: []string{"pdguard-admins"}, SoakSeconds: 60, Container: "pingdirectory"},
		Old: &Summary{
			Replicas: 2, HasPartition: true, Image: stable,
			Annotations:     map[string]string{"meta.helm.sh/release-name": "pd", "meta.helm.sh/release-namespace": "ping"},
			CurrentRevision: "pd-pingdirectory-7c9f8d", UpdateRevision: "pd-pingdirectory-7c9f8d",
		},
		New: Summary{
			Replicas: 2, HasPartition: true, Image: pdImage("10.2.0.0-latest", 10, 2, 0, 0),
			Annotations: map[string]string{"meta.helm.sh/release-name": "pd", "meta.helm.sh/release-namespace": "ping"},
		},
		Change: Change{VersionChanged: true, VersionOrder: &higher},
		Canary: Canary{StableImage: stable},
		Pods:   []Pod{pod(0), pod(1)},
		Keys:   AnnotationKeys(),
	}
}

// mutated is in as the validating webhook sees it once Go applied m.
func mutated(in *Input, m Mutation) *Input {
	out := *in
	out.Phase = "validate"
	if m.Partition != nil {
		out.New.Partition = *m.Partition
	}
	return &out
}

// newEngine cross-checks the fast path in tests; benchmarks measure what the server runs.
func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if _, bench := t.(*testing.B); !bench {
		opts.CrossCheck = true
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func writeModule(t testing.TB, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rules(findings []Finding) []string {
	var out []string
	for _, f := range findings {
		out = append(out, f.Rule)
	}
	return out
}

func TestEngineDecisions(t *testing.T) {
	e := newEngine(t, Options{})
	ctx := context.Background()

	tests := map[string]struct {
		input func() *Input
		// skipMutation validates the request as if the mutating webhook had not run.
		skipMutation bool
		partition    int32 // 0: no partition
		fired        string
		violations   string
	}{
		"a version change on two replicas gets a canary on pod 1 and then passes validation": {
			input:     versionChange,
			partition: 1,
			fired:     "canary-partition",
		},
		"a version change that skipped the mutating webhook is denied": {
			input:        versionChange,
			skipMutation: true,
			partition:    1,
			fired:        "canary-partition",
			violations:   "missing-canary",
		},
		"a new StatefulSet is left alone": {
			input: func() *Input {
				in := versionChange()
				in.Operation, in.Old = "CREATE", nil
				return in
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := tt.input()
			m, err := e.Mutate(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			var got int32
			if m.Partition != nil {
				got = *m.Partition
			}
			if got != tt.partition {
				t.Errorf("partition = %d, want %d", got, tt.partition)
			}
			if got := strings.Join(rules(m.Fired), ","); got != tt.fired {
				t.Errorf("fired = %q, want %q", got, tt.fired)
			}
			if m.Mode != "enforce" {
				t.Errorf("mode = %q", m.Mode)
			}
			if tt.skipMutation {
				m = Mutation{}
			}
			v, err := e.Validate(ctx, mutated(in, m))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rules(v.Violations), ","); got != tt.violations {
				t.Errorf("violations = %q, want %q", got, tt.violations)
			}
			if v.Allowed != (tt.violations == "") {
				t.Errorf("allowed = %v with denials %+v", v.Allowed, v.Denials)
			}
		})
	}
}

const userRules = `package pdguard.validate

import data.pdguard.lib

violation contains {"rule": "business-hours", "message": msg} if {
	input.change.version_changed
	input.new.annotations["example.com/freeze"] == "true"
	msg := sprintf("%s is frozen", [lib.object_name])
}

advisory contains {"rule": "note", "message": "checked by the platform team's policy"} if lib.is_update
`

const userMutateAdvice = `package pdguard.mutate

advisory contains {"rule": "mutate-note", "message": "seen by the platform team's policy"} if input.change.version_changed
`

func TestPolicyDirModulesExtendTheRules(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, "freeze.rego", userRules)
	writeModule(t, dir, "advice.rego", userMutateAdvice)
	// Tests next to a policy are not part of it.
	writeModule(t, dir, "freeze_test.rego", "package broken syntax")
	e := newEngine(t, Options{PolicyDir: dir})
	ctx := context.Background()

	in := versionChange()
	in.New.Annotations = map[string]string{"example.com/freeze": "true"}
	m, err := e.Mutate(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rules(m.Warnings), ","); got != "mutate-note" {
		t.Errorf("mutate warnings = %q, want the user's advisory", got)
	}
	v, err := e.Validate(ctx, mutated(in, m))
	if err != nil {
		t.Fatal(err)
	}
	if v.Allowed || strings.Join(rules(v.Denials), ",") != "business-hours" {
		t.Errorf("denials = %+v, want the user's violation", v.Denials)
	}
	if got := strings.Join(rules(v.Warnings), ","); got != "note" {
		t.Errorf("warnings = %q, want the user's advisory", got)
	}

	// The user's violation goes through the override like the built-in ones.
	in.New.Annotations["pdguard.io/override-reason"] = "release train 42"
	in.User.Groups = append(in.User.Groups, "pdguard-admins")
	v, err = e.Validate(ctx, mutated(in, m))
	if err != nil {
		t.Fatal(err)
	}
	if !v.Allowed || !v.Overridden {
		t.Errorf("an authorized override should lift the user's violation: %+v", v)
	}
}

func TestReloadRejectsABrokenModuleSetAndKeepsTheLastGoodOne(t *testing.T) {
	tests := map[string]struct {
		module string
		want   string
	}{
		"a syntax error": {
			module: "package pdguard.validate\n\nviolation contains {\"rule\": \"x\" if {\n",
			want:   "rego_parse_error",
		},
		"an undefined reference": {
			module: "package pdguard.validate\n\nviolation contains {\"rule\": \"x\", \"message\": m} if { m := data.pdguard.lib.nothing_here(1) }\n",
			want:   "rego_type_error",
		},
		"a network call in the admission path": {
			module: "package pdguard.validate\n\nadvisory contains {\"rule\": \"x\", \"message\": r.body} if { r := http.send({\"method\": \"GET\", \"url\": \"http://example.com\"}) }\n",
			want:   "http.send",
		},
		"a violation that is not a finding": {
			module: "package pdguard.validate\n\nviolation contains \"just a string\" if input.operation\n",
			want:   "not an object with rule and message",
		},
		"a rule that redefines the result": {
			module: "package pdguard.framework\n\nmutate_result := {\"partition\": 0}\n",
			want:   "result",
		},
		"a module without Rego v1 keywords": {
			module: "package pdguard.validate\n\nviolation[{\"rule\": \"x\", \"message\": \"y\"}] { true }\n",
			want:   "rego_parse_error",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeModule(t, dir, "freeze.rego", userRules)
			e := newEngine(t, Options{PolicyDir: dir})

			writeModule(t, dir, "zz-broken.rego", tt.module)
			err := e.Reload()
			if err == nil {
				t.Fatal("Reload accepted a broken module set")
			}
			if !strings.Contains(err.Error(), "zz-broken.rego") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q should name zz-broken.rego and say %q", err, tt.want)
			}

			in := versionChange()
			in.New.Annotations = map[string]string{"example.com/freeze": "true"}
			v, err := e.Validate(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(rules(v.Denials), ","), "business-hours") {
				t.Errorf("the last good module set should still be in force: %+v", v.Denials)
			}

			if _, err := New(Options{PolicyDir: dir}); err == nil {
				t.Error("New accepted a broken module set")
			}
		})
	}
}

func TestNewRejectsAMissingPolicyDir(t *testing.T) {
	_, err := New(Options{PolicyDir: filepath.Join(t.TempDir(), "absent")})
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("err = %v, want one naming the directory", err)
	}
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{})
}

func (l *logLines) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchReloadsWhenThePolicyDirChanges(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{PolicyDir: dir})
	e.debounce = 20 * time.Millisecond
	var logs logLines
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx, logs.logger()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	in := versionChange()
	in.New.Annotations = map[string]string{"example.com/freeze": "true"}
	frozen := func() bool {
		v, err := e.Validate(context.Background(), in)
		return err == nil && strings.Contains(strings.Join(rules(v.Violations), ","), "business-hours")
	}

	// fsnotify may start watching just after the first write; rewriting until it is seen
	// keeps the test independent of that race.
	eventually(t, "a new module is picked up", func() bool {
		writeModule(t, dir, "freeze.rego", userRules)
		time.Sleep(50 * time.Millisecond)
		return frozen()
	})
	eventually(t, "the reload is logged", func() bool { return logs.contains("policy reloaded") })

	writeModule(t, dir, "broken.rego", "package pdguard.validate\n\nviolation contains {\n")
	eventually(t, "the broken module is rejected", func() bool {
		return logs.contains("policy reload rejected") && logs.contains("broken.rego")
	})
	if !frozen() {
		t.Error("the last good module set should stay in force")
	}

	if err := os.Remove(filepath.Join(dir, "broken.rego")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "freeze.rego")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removed module is dropped", func() bool { return !frozen() })
}

func TestConcurrentDecisionsDuringReloads(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, Options{PolicyDir: dir})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				in := versionChange()
				m, err := e.Mutate(ctx, in)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := e.Validate(ctx, mutated(in, m)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range 5 {
		if i%2 == 0 {
			writeModule(t, dir, "freeze.rego", userRules)
		} else {
			os.Remove(filepath.Join(dir, "freeze.rego"))
		}
		if err := e.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func TestEvaluationErrorsAreReported(t *testing.T) {
	prepare := func(t *testing.T, module, query string) rego.PreparedEvalQuery {
		t.Helper()
		pq, err := rego.New(
			rego.Query(query),
			rego.Module("test.rego", module),
			rego.GenerateJSON(keepTerm),
		).PrepareForEval(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return pq
	}
	tests := map[string]struct {
		module string
		want   string
	}{
		"an undefined result": {
			module: "package pdguard.framework\n\nmutate_result := 1 if false\n",
			want:   mutateQuery + " is undefined",
		},
		"conflicting values": {
			module: "package pdguard.framework\n\nmutate_result := 1 if input.operation\nmutate_result := 2 if input.operation\n",
			want:   "conflict",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := eval(context.Background(), prepare(t, tt.module, mutateQuery), versionChange(), mutateQuery)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}

	t.Run("a cancelled context", func(t *testing.T) {
		e := newEngine(t, Options{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := e.Validate(ctx, versionChange()); err == nil {
			t.Error("Validate ignored a cancelled context")
		}
	})
	t.Run("a nil input", func(t *testing.T) {
		e := newEngine(t, Options{})
		if _, err := e.Mutate(context.Background(), nil); err == nil {
			t.Error("Mutate accepted a nil input")
		}
	})
}

func TestDecodeRejectsResultsOfTheWrongShape(t *testing.T) {
	const goodFinding = `{"rule": "r", "message": "m"}`
	mutation := func(partition, fired, mode string) string {
		return `{"partition": ` + partition + `, "record_canary": true, "close_canary": false, "fired": ` + fired + `, "warnings": [], "shown": [], "apply": true, "mode": ` + mode + `}`
	}
	validation := func(allowed, denials string) string {
		return `{"allowed": ` + allowed + `, "denials": ` + denials + `, "warnings": [], "violations": [], "mode": "enforce", "overridden": false}`
	}
	tests := map[string]struct {
		validate bool
		value    string
		want     string // empty: decodes
	}{
		"a complete mutation":               {value: mutation("1", "["+goodFinding+"]", `"enforce"`)},
		"a mutation without a partition":    {value: mutation("null", "[]", `"warn"`)},
		"a result that is not an object":    {value: `[1]`, want: "not an object"},
		"a negative partition":              {value: mutation("-1", "[]", `"enforce"`), want: "not a partition"},
		"a fractional partition":            {value: mutation("1.5", "[]", `"enforce"`), want: "not a partition"},
		"a partition that is a string":      {value: mutation(`"1"`, "[]", `"enforce"`), want: "not a number"},
		"an unknown mode":                   {value: mutation("1", "[]", `"audit"`), want: "not enforce, warn or dryrun"},
		"a finding without a message":       {value: mutation("1", `[{"rule": "r"}]`, `"enforce"`), want: "fired[0]"},
		"findings in a set":                 {value: mutation("1", "{"+goodFinding+"}", `"enforce"`), want: "not an array"},
		"a missing field":                   {value: `{"partition": 1}`, want: "has no record_canary"},
		"a complete validation":             {validate: true, value: validation("false", "["+goodFinding+"]")},
		"a denial that does not say why":    {validate: true, value: validation("false", "[]"), want: "no denials"},
		"an allowed flag that is a string":  {validate: true, value: validation(`"yes"`, "[]"), want: "not a boolean"},
		"a denial whose rule is not a text": {validate: true, value: validation("false", `[{"rule": 1, "message": "m"}]`), want: "denials[0]"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			v := ast.MustParseTerm(tt.value).Value
			var err error
			if tt.validate {
				_, err = decodeValidation(v)
			} else {
				_, err = decodeMutation(v)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
