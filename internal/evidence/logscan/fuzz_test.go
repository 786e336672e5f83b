package logscan

import (
	"strings"
	"testing"

	"github.com/pdguard/pdguard/internal/rollout/imageref"
)

// checkSuccessLine holds the scanner to its one promise: a Succeeded verdict for a
// version change rests on a line of the log, as a terminal shows it, that says the server
// version was updated to the target version. The check reads the log on its own
// (lines split on newlines and carriage returns, escape sequences stripped, blanks
// squeezed), so a scanner bug cannot hide behind its own parsing.
func checkSuccessLine(t *testing.T, log string, want Expect, got Result) {
	t.Helper()
	if got.Verdict != Succeeded || want.From == "" || want.From == want.To {
		return
	}
	wantTo, err := imageref.ParsePrintedVersion(want.To)
	if err != nil {
		return
	}
	if to, err := imageref.ParsePrintedVersion(got.To); err != nil || to.Parts != wantTo.Parts {
		t.Fatalf("Succeeded with To %q for a rollout to %s", got.To, want.To)
	}
	line := "Updating the server version from " + got.From + " to " + got.To
	for l := range strings.FieldsFuncSeq(log, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if strings.Contains(strings.Join(strings.Fields(StripANSI(l)), " "), line) {
			return
		}
	}
	t.Fatalf("Succeeded (%s) but no line of the log reads %q", got.Reason, line)
}
