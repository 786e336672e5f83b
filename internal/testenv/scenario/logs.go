package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Canary logs recorded from the PingDirectory image, in internal/evidence/logscan/testdata.
const (
	// SuccessLog: replace-profile migrates 9.0.0.1 to 9.1.0.0 and the server starts.
	SuccessLog = "success-migration.log"
	// MaskedFailureLog: the update tool fails behind a tee, so the container carries on
	// and the pod turns Ready anyway.
	MaskedFailureLog = "failed-masked-step-error.log"
	// InProgressLog: replace-profile has started and not finished.
	InProgressLog = "in-progress.log"
)

// Fixture reads a canary log from internal/evidence/logscan/testdata as lines.
func (e *Env) Fixture(name string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(e.Root, "internal", "evidence", "logscan", "testdata", name))
	if err != nil {
		return nil, errorf("reading canary log: %w", err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), nil
}

// MigrationLog is the success log with its versions moved to from -> to (full
// four-part versions such as 9.1.0.0), for a canary of a later upgrade than the one
// the recording shows.
func (e *Env) MigrationLog(from, to string) ([]string, error) {
	lines, err := e.Fixture(SuccessLog)
	if err != nil {
		return nil, err
	}
	toMinor := strings.Join(strings.SplitN(to, ".", 3)[:2], ".")
	// One pass, so a version written in never gets rewritten again.
	r := strings.NewReplacer(
		"9.0.0.1", from,
		"9.1.0.0", to,
		"PD - v9.1", "PD - v"+toMinor,
		"Version=9.1", "Version="+toMinor,
	)
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = r.Replace(l)
	}
	if strings.Join(out, "\n") == strings.Join(lines, "\n") && (from != "9.0.0.1" || to != "9.1.0.0") {
		return nil, fmt.Errorf("scenario: %s no longer names 9.0.0.1 and 9.1.0.0; cannot move it to %s -> %s", SuccessLog, from, to)
	}
	return out, nil
}
