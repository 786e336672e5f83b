package evidence

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pdguard/pdguard/internal/evidence/logscan"
	"github.com/pdguard/pdguard/internal/rollout"
)

func TestJudge(t *testing.T) {
	running := rollout.ContainerState{ID: "containerd://abc", Running: true, LastExitCode: -1}
	succeeded := &logscan.Result{Verdict: logscan.Succeeded, Reason: "replace-profile migrated 9.0.0.1 to 9.1.0.0"}
	tests := map[string]struct {
		state       PodState
		scan        *logscan.Result
		wantVerdict string
		wantReason  string
	}{
		"a Ready pod whose log shows a completed migration has Succeeded": {
			state: PodState{Container: running, Ready: true}, scan: succeeded,
			wantVerdict: rollout.VerdictSucceeded, wantReason: "migrated",
		},
		"a migrated pod that is not Ready yet is still in progress": {
			state: PodState{Container: running}, scan: succeeded,
			wantVerdict: rollout.VerdictInProgress, wantReason: "Ready",
		},
		"a Ready pod whose log shows a masked step error has Failed": {
			state: PodState{Container: running, Ready: true}, scan: &logscan.Result{Verdict: logscan.Failed, Reason: "Running the update tool ..... Error"},
			wantVerdict: rollout.VerdictFailed, wantReason: "update tool",
		},
		"a pod in CrashLoopBackOff has Failed whatever its log says": {
			state:       PodState{Container: rollout.ContainerState{ID: "containerd://abc", Waiting: "CrashLoopBackOff", Restarts: 2, LastExitCode: 1, LastReason: "Error"}},
			scan:        succeeded,
			wantVerdict: rollout.VerdictFailed, wantReason: "CrashLoopBackOff after 2 restarts (last exit code 1, Error)",
		},
		"a container restarted three times by its probes has Failed": {
			state:       PodState{Container: rollout.ContainerState{ID: "containerd://abc", Running: true, Restarts: 3, LastExitCode: 137}},
			wantVerdict: rollout.VerdictFailed, wantReason: "restarted 3 times (last exit code 137)",
		},
		"the first back-off after a startup-probe kill is not yet a failure": {
			state:       PodState{Container: rollout.ContainerState{ID: "containerd://abc", Waiting: "CrashLoopBackOff", Restarts: 1, LastExitCode: 137}},
			scan:        &logscan.Result{Verdict: logscan.InProgress, Reason: "replace-profile started but has not finished"},
			wantVerdict: rollout.VerdictInProgress,
		},
		"one restart during a slow migration is not a failure": {
			state: PodState{Container: rollout.ContainerState{ID: "containerd://def", Running: true, Restarts: 1, LastExitCode: 137}, Ready: true}, scan: succeeded,
			wantVerdict: rollout.VerdictSucceeded,
		},
		"a container that has not started is in progress": {
			state:       PodState{},
			wantVerdict: rollout.VerdictInProgress, wantReason: "not started",
		},
		"a Ready pod with no replace-profile in its log is not proof": {
			state: PodState{Container: running, Ready: true}, scan: &logscan.Result{Verdict: logscan.Unknown, Reason: "no replace-profile run in the log"},
			wantVerdict: rollout.VerdictUnknown, wantReason: "no replace-profile",
		},
		"a Ready pod whose log lost its first lines is not proof, and says why": {
			state: PodState{Container: running, Ready: true}, scan: &logscan.Result{Verdict: logscan.Unknown, StartMissing: true, Reason: "pdguard cannot see the start of the attempt"},
			wantVerdict: rollout.VerdictUnknown, wantReason: "cannot see the start",
		},
		"a pod not Ready yet whose log lost its first lines is read again": {
			state: PodState{Container: running}, scan: &logscan.Result{Verdict: logscan.Unknown, StartMissing: true, Reason: "pdguard cannot see the start of the attempt"},
			wantVerdict: rollout.VerdictInProgress, wantReason: "cannot see the start",
		},
		"a pod whose profile had no changes when a version change was expected was not upgraded": {
			state: PodState{Container: running, Ready: true}, scan: &logscan.Result{Verdict: logscan.NotUpgraded, Reason: "there are no changes"},
			wantVerdict: rollout.VerdictNotUpgraded,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			verdict, reason := Judge(tc.state, tc.scan)
			if verdict != tc.wantVerdict {
				t.Errorf("verdict = %s (%s), want %s", verdict, reason, tc.wantVerdict)
			}
			if !strings.Contains(reason, tc.wantReason) {
				t.Errorf("reason %q does not contain %q", reason, tc.wantReason)
			}
		})
	}
}

func TestFinal(t *testing.T) {
	for v, want := range map[string]bool{
		rollout.VerdictSucceeded: true, rollout.VerdictFailed: true, rollout.VerdictNotUpgraded: true,
		rollout.VerdictInProgress: false, rollout.VerdictUnknown: true,
	} {
		if Final(v) != want {
			t.Errorf("Final(%s) = %v, want %v", v, !want, want)
		}
	}
}

func TestUnreadable(t *testing.T) {
	verdict, reason := Unreadable(errors.New("the server rejected our request (get pods/log pd-1): open /logs/pd-1.log: no such file or directory"))
	if verdict != rollout.VerdictInProgress || Final(verdict) {
		t.Errorf("verdict %s, want InProgress, which is read again", verdict)
	}
	for _, want := range []string{"could not be read", "not proven", "no such file or directory", "--evidence-recheck"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason %q lacks %q", reason, want)
		}
	}
	_, long := Unreadable(errors.New(strings.Repeat("é", 1000)))
	if len(long) > maxLogErrorBytes+400 || !utf8.ValidString(long) {
		t.Errorf("a long read error gives a %d-byte reason (valid UTF-8: %v)", len(long), utf8.ValidString(long))
	}
}
