//go:build integration

package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// A queue of one record in front of the Event and Report sinks, whose Report writes are
// API calls to the real apiserver, meets bursts of concurrent denials: every answer is the
// denial, the records that do not fit are dropped and counted, and each record sent is
// either written or dropped.
func TestFullAuditQueueDropsAndCounts(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "audit-queue")
	srv, hc := g.reviewServer("--audit-queue-size=1")
	live, changed := g.bundledChange()

	const burst = 100
	sent := 0
	metric := func(name string) float64 { return sumSamples(scrape(t, srv.MetricsURL), name, nil) }
	// One burst nearly always overruns a queue of one; a few more make it certain.
	for round := 0; round < 5 && (round == 0 || metric("pdguard_audit_records_dropped_total") == 0); round++ {
		var wg sync.WaitGroup
		errs := make(chan error, burst)
		for i := range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("queue-%d-%d", round, i)
				out, err := sendReview(hc, srv, g.bundledReview(live, changed, id, live.Generation+int64(round*burst+i)))
				switch {
				case err != nil:
					errs <- fmt.Errorf("review %s: %w", id, err)
				case out.Allowed || out.Result == nil || !strings.Contains(out.Result.Message, "[bundled-config-and-version]") || !strings.Contains(out.Result.Message, "a version change goes alone"):
					errs <- fmt.Errorf("review %s: answer allowed=%v %+v, want the bundled denial", id, out.Allowed, out.Result)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		sent += burst
	}
	if t.Failed() {
		t.FailNow()
	}

	var written, dropped float64
	g.eventually("every record written or dropped", func() (bool, string) {
		samples := scrape(t, srv.MetricsURL)
		written = sumSamples(samples, "pdguard_audit_records_written_total", nil)
		dropped = sumSamples(samples, "pdguard_audit_records_dropped_total", map[string]string{"reason": "queue full"})
		queued := sumSamples(samples, "pdguard_audit_queue_length", nil)
		return queued == 0 && written+dropped >= float64(sent), fmt.Sprintf("written %v + dropped %v of %d sent, %v queued", written, dropped, sent, queued)
	})
	t.Logf("%d denials sent in bursts of %d: %v written, %v dropped", sent, burst, written, dropped)
	if dropped == 0 {
		t.Errorf("no record dropped from a queue of one under %d concurrent denials", sent)
	}
	if written+dropped != float64(sent) {
		t.Errorf("written %v + dropped %v = %v, want the %d records sent", written, dropped, written+dropped, sent)
	}
	if all := metric("pdguard_audit_records_dropped_total"); all != dropped {
		t.Errorf("%v records dropped in all, %v for a full queue: something else dropped records", all, dropped)
	}
	if n := strings.Count(srv.Logs(), "audit record dropped from the Event and Report sinks"); n != int(dropped) {
		t.Errorf("%d drops logged, want one line for each of the %v dropped", n, dropped)
	}
	if strings.Contains(srv.Logs(), "is forbidden:") {
		t.Error("pdguard logged a forbidden error")
	}
}
