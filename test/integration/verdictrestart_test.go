//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

const (
	verdictRestartLane = "restart-verdicts"
	verdictRestartName = "pingdirectory-rv"
)

// ownName gives a StatefulSet and its pods a selector label value of their own, so that
// only the pdguard started with that value guards them: the shared pdguard's evidence
// controller judges every pod labelled app.kubernetes.io/name=pingdirectory, whatever
// the webhooks' lanes.
func ownName(value string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		s.Labels[selectorLabel] = value
		s.Spec.Selector.MatchLabels[selectorLabel] = value
		s.Spec.Template.Labels[selectorLabel] = value
	}
}

// TestRollingRestartKeepsVerdicts: the evidence controller on two leader-elected replicas
// behind one address, each in turn stopped with SIGTERM and started again while canaries
// open one after another and their logs prove the migration. The lease moves with every
// stop of the leader; every canary must still get its Succeeded verdict, written once.
func TestRollingRestartKeepsVerdicts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	args := []string{
		"--log-format=json", "--shutdown-drain=1s", "--shutdown-timeout=5s",
		"--leader-elect", "--leader-election-namespace=" + pdguardproc.Namespace, "--leader-election-id=pdguard-" + verdictRestartLane,
		"--soak=" + serveSoak, "--evidence-recheck=" + serveRecheck,
		"--selector=" + selectorLabel + "=" + verdictRestartName,
	}
	replicas, proxy := startReplicas(t, args, "pdguard-"+verdictRestartLane, map[string]string{selectorLabel: verdictRestartName})

	// Each replica in turn SIGTERMed and started again, the next only once the last is
	// routed to again: the leader is among them, so the lease moves every time.
	restarts := 0
	restartBoth := func() error {
		for i, srv := range replicas {
			if err := srv.Restart(ctx); err != nil {
				return err
			}
			if err := proxy.waitRouted(ctx, i); err != nil {
				return err
			}
			restarts++
		}
		return nil
	}

	const canaries = 4
	began := time.Now()
	var namespaces []string
	for n := range canaries {
		g := newGuarded(t, "rv", ownName(verdictRestartName))
		namespaces = append(namespaces, g.ns)
		// The tag change goes through the replicas too: retried while none answers.
		var stored *appsv1.StatefulSet
		g.eventually("the canary opened", func() (bool, string) {
			var err error
			stored, _, err = g.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) })
			return err == nil, fmt.Sprint(err)
		})
		if p := partitionOf(stored); p != 1 {
			t.Fatalf("canary %d: stored partition %d, want 1", n, p)
		}
		g.waitImages(oldImage, newImage)
		// The log proves the migration while both replicas are restarted.
		restarted := make(chan error, 1)
		go func() { restarted <- restartBoth() }()
		g.serveLog(1, "success-migration.log")
		_, _, took := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
		if err := <-restarted; err != nil {
			t.Fatalf("canary %d: restarting a replica: %v", n, err)
		}
		t.Logf("canary %d (%s): Succeeded verdict %s after its log", n, g.ns, took.Round(time.Millisecond))
	}

	// Every replica's log, across all its restarts: who led, and each verdict written.
	leases, written := 0, map[string]int{}
	for _, srv := range replicas {
		sc := bufio.NewScanner(strings.NewReader(srv.Logs()))
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `"msg":"Successfully acquired lease","lock":"`+pdguardproc.Namespace+`/pdguard-`+verdictRestartLane+`"`) {
				leases++
			}
			var rec struct {
				Msg, Namespace, Decision, Verdict, Pod string
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "evidence controller" && rec.Decision == "verdict" && rec.Verdict == rollout.VerdictSucceeded {
				written[rec.Namespace]++
			}
		}
		if lines := srv.Forbidden(); len(lines) > 0 {
			t.Errorf("the API server refused replica %s (as %s): %q", srv.LogPath, srv.Identity.User, lines)
		}
	}
	t.Logf("rolling restart with the evidence controller: %d canaries judged in %s over %d restarts, the lease acquired %d times; Succeeded verdicts written per canary: %v",
		canaries, time.Since(began).Round(time.Millisecond), restarts, leases, written)
	for _, ns := range namespaces {
		if written[ns] != 1 {
			t.Errorf("canary %s: its Succeeded verdict was written %d times, want once", ns, written[ns])
		}
	}
	// The first acquisition, and one each time a canary's restarts stopped the leader.
	if leases < canaries+1 {
		t.Errorf("the lease was acquired %d times over %d restarts, want at least %d: the leader did not move during each canary", leases, restarts, canaries+1)
	}
}
