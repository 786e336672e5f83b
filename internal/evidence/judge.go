// Package evidence is the controller that proves or disproves each canary: for every pod
// of a guarded StatefulSet that runs the update revision, it reads the product
// container's log, judges whether `manage-profile replace-profile` migrated the server,
// and records the verdict on the pod (pdguard.io/replace-profile) where admission reads
// it from cache. Optionally it promotes proven canaries one ordinal at a time.
package evidence

import (
	"fmt"
	"strings"

	"github.com/pdguard/pdguard/internal/evidence/logscan"
	"github.com/pdguard/pdguard/internal/rollout"
)

// CrashLoopRestarts is how many restarts of one canary container make it Failed even
// before the kubelet reports CrashLoopBackOff. One or two restarts happen when the
// startup probe kills a slow migration; the next start runs replace-profile again.
const CrashLoopRestarts = 3

// PodState is what the judge needs to know about one canary pod.
type PodState struct {
	Container rollout.ContainerState
	Ready     bool
}

// needsLog reports whether the pod's log must be read to judge it. A crash-looping
// container is judged from its status alone: its log may be empty or from an attempt
// that will not finish.
func needsLog(p PodState) bool {
	return crashLoopReason(p.Container) == "" && p.Container.ID != ""
}

// crashLoopReason names why a container counts as restarting forever, or "". The first
// back-off is not enough: the startup probe may kill one slow migration, and the next
// start runs replace-profile again.
func crashLoopReason(c rollout.ContainerState) string {
	switch {
	case c.Waiting == "CrashLoopBackOff" && c.Restarts >= 2:
		return fmt.Sprintf("container is in CrashLoopBackOff after %d restarts (last exit code %d%s)", c.Restarts, c.LastExitCode, reasonSuffix(c.LastReason))
	case c.Restarts >= CrashLoopRestarts:
		return fmt.Sprintf("container restarted %d times (last exit code %d%s)", c.Restarts, c.LastExitCode, reasonSuffix(c.LastReason))
	}
	return ""
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ", " + r
}

// Judge turns the pod's state and the scan of its log into a verdict and a reason a
// person can act on. scan is nil when the log was not read.
func Judge(p PodState, scan *logscan.Result) (verdict, reason string) {
	if r := crashLoopReason(p.Container); r != "" {
		return rollout.VerdictFailed, r + "; read its previous log with kubectl logs --previous and scan it with webhook scan-log"
	}
	if p.Container.ID == "" {
		return rollout.VerdictInProgress, "container has not started yet"
	}
	if scan == nil {
		return rollout.VerdictUnknown, "container log was not read"
	}
	switch string(scan.Verdict) {
	case rollout.VerdictSucceeded:
		if !p.Ready {
			return rollout.VerdictInProgress, "replace-profile succeeded; waiting for the pod to become Ready"
		}
		return rollout.VerdictSucceeded, scan.Reason
	case rollout.VerdictFailed, rollout.VerdictNotUpgraded, rollout.VerdictInProgress:
		return string(scan.Verdict), scan.Reason
	default:
		if scan.StartMissing {
			if p.Ready {
				return rollout.VerdictUnknown, scan.Reason
			}
			// Not final yet: a pod that is not Ready may still be starting.
			return rollout.VerdictInProgress, scan.Reason
		}
		if p.Ready {
			// Ready with no replace-profile in the log: the pod started without migrating
			// (a first start, or a log that was cut). That is not proof.
			return rollout.VerdictUnknown, "pod is Ready but its log shows no replace-profile run: " + scan.Reason
		}
		return rollout.VerdictInProgress, "no replace-profile output yet"
	}
}

// maxLogErrorBytes bounds the read error quoted in a verdict, which lives in an annotation.
const maxLogErrorBytes = 300

// Unreadable is the verdict of a pod whose log could not be read (the node's log
// endpoint is down or answers with an error, the log file is gone): not proven, and not
// final, so the log is read again at the next recheck.
func Unreadable(err error) (verdict, reason string) {
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if len(msg) > maxLogErrorBytes {
		n := maxLogErrorBytes
		for n > 0 && msg[n]&0xC0 == 0x80 {
			n--
		}
		msg = msg[:n] + "…"
	}
	return rollout.VerdictInProgress, fmt.Sprintf("the container's log could not be read, so replace-profile is not proven: %s; pdguard reads it again every --evidence-recheck; check that kubectl logs works for the pod (the node's kubelet serves logs)", msg)
}

// Final reports whether a verdict will not change for the same container, so its log
// need not be read again. Unknown is final: it is only given to a Ready container whose
// log holds no replace-profile run, and a running server will not print one later.
func Final(verdict string) bool {
	switch verdict {
	case rollout.VerdictSucceeded, rollout.VerdictFailed, rollout.VerdictNotUpgraded, rollout.VerdictUnknown:
		return true
	}
	return false
}
