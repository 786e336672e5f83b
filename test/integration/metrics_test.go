//go:build integration

package integration

import (
	"io"
	"net/http"
	"testing"
)

func scrape(t *testing.T, url string) []metricSample {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return parseMetrics(string(body))
}

// A denial must be counted where alerts look for it. Other tests deny in parallel, so
// only the increase is certain.
func TestMetricsCountDenials(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "metrics")
	denied := map[string]string{"webhook": "validate", "decision": "denied", "mode": "enforce"}
	finding := map[string]string{"webhook": "validate", "rule": "bundled-config-and-version", "decision": "denied"}
	before := scrape(t, env.guard.MetricsURL)

	_, _, err := g.change(adminConfig(), bundle)
	mustDeny(t, err, "a bundled change")

	after := scrape(t, env.guard.MetricsURL)
	for _, m := range []struct {
		name   string
		labels map[string]string
	}{
		{"pdguard_admission_decisions_total", denied},
		{"pdguard_rule_findings_total", finding},
		{"pdguard_admission_duration_seconds_count", map[string]string{"webhook": "validate"}},
	} {
		was, is := sumSamples(before, m.name, m.labels), sumSamples(after, m.name, m.labels)
		t.Logf("%s%v: %v -> %v", m.name, m.labels, was, is)
		if is < was+1 {
			t.Errorf("%s%v did not count the denial: %v -> %v", m.name, m.labels, was, is)
		}
	}
}
