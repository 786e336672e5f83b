//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// TestNotesFindTheVerdict runs the commands of the chart's NOTES step about verdicts, as
// printed by helm install, with a user's placeholders filled in, after a canary's verdict:
// the first must print the verdict annotation, the second must list its Event.
func TestNotesFindTheVerdict(t *testing.T) {
	t.Parallel()
	notes, err := pdguardproc.ChartOf(env.cp, env.binary).Notes(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, step, found := strings.Cut(notes, "\n4. ")
	if !found {
		t.Fatalf("the NOTES have no step 4:\n%s", notes)
	}
	var commands []string
	for _, line := range strings.Split(step, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "kubectl ") {
			commands = append(commands, line)
		}
	}
	if len(commands) != 2 {
		t.Fatalf("step 4 of the NOTES has %d kubectl commands, want the annotation and the Events:\n%s", len(commands), step)
	}

	g := newGuarded(t, "notes")
	g.openCanary()
	g.serveLog(1, "success-migration.log")
	g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })

	fill := strings.NewReplacer("NAMESPACE", g.ns, "NAME-N", podName(1), "NAME", g.name)
	run := func(command string) (string, error) {
		// As a user pastes it into a shell, with kubectl on PATH.
		cmd := exec.CommandContext(g.ctx, "sh", "-c", fill.Replace(command))
		cmd.Env = append(os.Environ(), "KUBECONFIG="+env.cp.KubeconfigPath(), "PATH="+env.cp.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	annotation, err := run(commands[0])
	if err != nil || !strings.Contains(annotation, `"verdict":"Succeeded"`) {
		t.Errorf("%s\nprinted %q (%v), want the Succeeded verdict", fill.Replace(commands[0]), annotation, err)
	}
	var events string
	g.eventually("the verdict Event listed by the NOTES' command", func() (bool, string) {
		events, err = run(commands[1])
		return err == nil && strings.Contains(events, "ReplaceProfileVerdict") && strings.Contains(events, "pod "+podName(1)+": replace-profile Succeeded"), fmt.Sprintf("%v: %s", err, events)
	})
	if !strings.Contains(events, "statefulset/"+g.name) {
		t.Errorf("the Event is not on StatefulSet %s:\n%s", g.name, events)
	}
	t.Logf("%s\n%s", fill.Replace(commands[1]), events)
}
