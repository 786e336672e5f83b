package evidence

import (
	"strings"
	"testing"

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
