package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/golden"
)

// goldenNow is the clock of the golden tests: an hour after the fixture pods turned Ready.
var goldenNow = fixture.ReadyAt.Add(time.Hour)

const (
	newTag      = "9.1.0.0-latest"
	canaryRev   = fixture.Name + "-7f9b8c6d5e"
	checkGolden = "testdata/check"
)

// fixedClock makes check and status read goldenNow.
func fixedClock(t *testing.T) {
	t.Helper()
	prev := now
	now = func() time.Time { return goldenNow }
	t.Cleanup(func() { now = prev })
}

// offline keeps the caller's kubeconfig out of the tests.
func offline(t *testing.T) {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
}

func writeYAML(t *testing.T, dir, name string, objs ...any) string {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		raw, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(raw)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// openCanary is the live object with a canary open on ordinal 1 and its two pods, the
// canary's carrying verdict (nil: none).
func openCanary(verdict *rollout.Verdict) (*appsv1.StatefulSet, []*corev1.Pod) {
	live := fixture.Live()
	stable := fixture.Pod(live, 0, fixture.Revision)
	fixture.WithTag(live, newTag)
	one := int32(1)
	live.Spec.UpdateStrategy.RollingUpdate.Partition = &one
	live.Generation, live.Status.ObservedGeneration = 2, 2
	live.Status.UpdateRevision = canaryRev
	live.Status.UpdatedReplicas, live.Status.CurrentReplicas = 1, 1
	canary := fixture.Pod(live, 1, canaryRev)
	if verdict != nil {
		cs, _ := rollout.Container(canary, fixture.Container)
		v := *verdict
		v.Revision, v.ContainerID = canaryRev, cs.ID
		raw, _ := yaml.Marshal(v)
		js, _ := yaml.YAMLToJSON(raw)
		if canary.Annotations == nil {
			canary.Annotations = map[string]string{}
		}
		canary.Annotations[rollout.ReplaceProfileAnnotation] = string(js)
	}
	return live, []*corev1.Pod{stable, canary}
}

type goldenCase struct {
	name string
	args func(t *testing.T, dir string) []string
	code int
}

func checkGoldenCases() []goldenCase {
	live := filepath.Join(fixtureDir, "statefulset-live.yaml")
	helm := filepath.Join(fixtureDir, "statefulset-helm.yaml")
	return []goldenCase{
		{name: "unchanged", code: 0, args: func(t *testing.T, dir string) []string {
			return []string{"--old", live, "--new", helm}
		}},
		{name: "new-tag", code: 0, args: func(t *testing.T, dir string) []string {
			return []string{"--old", live, "--new", copyVariant(t, dir, helm, "9.0.0.1-latest", newTag)}
		}},
		{name: "bundled", code: 1, args: func(t *testing.T, dir string) []string {
			return []string{"--old", live, "--new", copyVariant(t, dir, helm, "9.0.0.1-latest", newTag, "checksum/config: 9ca1", "checksum/config: 0000")}
		}},
		{name: "create", code: 0, args: func(t *testing.T, dir string) []string {
			return []string{"--new", helm}
		}},
		{name: "old-without-status", code: 0, args: func(t *testing.T, dir string) []string {
			// Both from git: the old manifest has no status, so no canary can be seen.
			return []string{"--old", helm, "--new", copyVariant(t, dir, helm, "9.0.0.1-latest", newTag, "  namespace: ping\n", "")}
		}},
		{name: "promotion-blocked", code: 1, args: func(t *testing.T, dir string) []string {
			sts, pods := openCanary(&rollout.Verdict{Verdict: rollout.VerdictInProgress, ObservedAt: goldenNow.Add(-time.Minute)})
			old := writeYAML(t, dir, "live.yaml", sts)
			podFile := writeYAML(t, dir, "pods.yaml", pods[0], pods[1])
			// The chart sends partition 0 with the same new tag.
			return []string{"--old", old, "--pods", podFile, "--new", copyVariant(t, dir, helm, "9.0.0.1-latest", newTag)}
		}},
		// Whole releases as helm template prints them (hack/render-check-testdata.sh): a
		// ConfigMap, a Service and the StatefulSet, none with a namespace, and an old release
		// from git, which carries no status.
		chartCase("tag", 0),
		chartCase("bundle", 1),
		chartCase("unrelated", 0),
	}
}

const chartTestdata = "testdata/check/chart"

func chartCase(upgrade string, code int) goldenCase {
	return goldenCase{name: "chart-" + upgrade, code: code, args: func(t *testing.T, dir string) []string {
		return []string{"--old", filepath.Join(chartTestdata, "old.yaml"), "--new", filepath.Join(chartTestdata, upgrade+".yaml"), "-n", "ping", "-v"}
	}}
}

// copyVariant writes the file into dir with each from->to replacement applied.
func copyVariant(t *testing.T, dir, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s does not contain %q", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	path := filepath.Join(dir, filepath.Base(name))
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckGolden runs check in every format on the chart-shaped fixtures and on helm
// template output of the test chart; go test ./cmd/webhook -run TestCheckGolden -update
// rewrites testdata/check/*.golden.
func TestCheckGolden(t *testing.T) {
	fixedClock(t)
	offline(t)
	for _, tc := range checkGoldenCases() {
		for _, format := range checkFormats {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				dir := t.TempDir()
				args := append(tc.args(t, dir), "-o", format)
				out, msg, code := runCheck(t, args...)
				if code != tc.code {
					t.Fatalf("exit code = %d, want %d\nstdout: %s\nmessage: %s", code, tc.code, out, msg)
				}
				golden.Check(t, filepath.Join(checkGolden, tc.name+"."+goldenExt(format)), strings.ReplaceAll(out, dir, "$TMP"))
			})
		}
	}
}

func goldenExt(format string) string {
	switch format {
	case "junit":
		return "xml.golden"
	case "markdown":
		return "md.golden"
	case "text":
		return "txt.golden"
	}
	return format + ".golden"
}
