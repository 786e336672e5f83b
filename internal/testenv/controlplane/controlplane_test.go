package controlplane

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The binaries are exercised by test/integration; these cover what needs none.

func TestPodStagesDecode(t *testing.T) {
	objs, err := decodeManifests(bytes.NewReader(podStages), "stages.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		if o.GetKind() != "Stage" || o.GetAPIVersion() != "kwok.x-k8s.io/v1alpha1" {
			t.Errorf("%s: kind %s %s, want kwok.x-k8s.io/v1alpha1 Stage", o.GetName(), o.GetAPIVersion(), o.GetKind())
		}
		names = append(names, o.GetName())
	}
	want := "pod-ready pdguard-crash-start pdguard-crash-exit pdguard-crash-restart pdguard-crash-recover"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("stages = %s, want %s", got, want)
	}
	if !bytes.Contains(podStages, []byte(`"`+CrashLoopLabel+`"`)) {
		t.Errorf("stages.yaml does not select on %s", CrashLoopLabel)
	}
}

func TestWriteCRILog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	if err := writeCRILog(path, []string{"one", "two\nthree"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (a message with a newline becomes two):\n%s", len(lines), data)
	}
	re := regexp.MustCompile(`^(\S+) stdout F (.*)$`)
	var prev time.Time
	for i, want := range []string{"one", "two", "three"} {
		m := re.FindStringSubmatch(lines[i])
		if m == nil || m[2] != want {
			t.Fatalf("line %d = %q, want `<time> stdout F %s`", i, lines[i], want)
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("line %d: timestamp: %v", i, err)
		}
		if ts.Before(prev) {
			t.Errorf("line %d: timestamp %s goes backwards", i, ts)
		}
		prev = ts
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if modulePath(filepath.Join(root, "go.mod")) != "github.com/pdguard/pdguard" {
		t.Errorf("repoRoot() = %s, which is not pdguard's module root", root)
	}
}

func TestPIDsLeavesOutExitedComponents(t *testing.T) {
	dir := t.TempDir()
	running, err := startProcess("running", "/bin/sleep", []string{"30"}, nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer running.stop(time.Second)
	exited, err := startProcess("exited", "/bin/true", nil, nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	<-exited.done
	cp := &ControlPlane{procs: []*process{running, exited}}
	got := cp.PIDs()
	if len(got) != 1 || got["running"] != running.cmd.Process.Pid {
		t.Errorf("PIDs() = %v, want only running=%d", got, running.cmd.Process.Pid)
	}
}
