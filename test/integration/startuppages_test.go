//go:build integration

package integration

import (
	"strings"
	"testing"
)

// The shared pdguard, run as the chart runs it, handed back its binary's start-up pages once
// its caches synced; the suite's admission tests ran against it afterwards.
func TestStartupPagesHandedBack(t *testing.T) {
	logs := env.guard.Logs()
	if strings.Contains(logs, "could not hand back the binary's start-up pages") {
		t.Errorf("pdguard could not hand back its start-up pages:\n%s", grepLines(logs, "start-up pages"))
	}
	if !strings.Contains(logs, "handed back the binary's start-up pages") {
		t.Error("pdguard never handed back its start-up pages")
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
