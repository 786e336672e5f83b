package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// scanLogFixtures are the container logs the logscan package is tested on.
const scanLogFixtures = "../../internal/evidence/logscan/testdata"

func readScanLogFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(scanLogFixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runScanLog runs scan-log under the root command and returns its stdout,
// the message main would print on stderr, and the exit code main would use.
func runScanLog(t *testing.T, stdin io.Reader, args ...string) (stdout, message string, code int) {
	t.Helper()
	root := newRootCommand()
	root.SetArgs(append([]string{"scan-log"}, args...))
	if stdin != nil {
		root.SetIn(stdin)
	}
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	if errOut.Len() > 0 {
		t.Errorf("cobra printed on stderr itself: %s", errOut.String())
	}
	code, message = mainExit(err)
	return out.String(), message, code
}

// mainExit mirrors run in main.go: what it prints and the code it exits with.
func mainExit(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	var coded *exitCodeError
	if errors.As(err, &coded) {
		if coded.Err != nil {
			return coded.Code, coded.Err.Error()
		}
		return coded.Code, ""
	}
	return 2, err.Error()
}

func TestScanLogVerdicts(t *testing.T) {
	upgrade := []string{"--from", "9.0.0.1", "--to", "9.1.0.0"}
	tests := map[string]struct {
		stdin   string // fixture name
		args    []string
		code    int
		stdout  []string
		verdict string // checked in JSON output
	}{
		"a clean migration on stdin exits 0 and says why": {
			stdin: "success-migration.log", args: upgrade, code: 0,
			stdout: []string{
				"verdict:  Succeeded\n",
				"expected: 9.0.0.1 -> 9.1.0.0\n",
				"log:      9.0.0.1 -> 9.1.0.0\n",
				"reason:   manage-profile replace-profile updated the server version",
				"evidence:\n  # RUN_PLAN: RESTART\n",
				"  Setting Server to Available\n",
			},
		},
		"a clean migration read from a file exits 0 with JSON": {
			args: append([]string{"--file", filepath.Join(scanLogFixtures, "success-migration.log"), "-o", "json"}, upgrade...),
			code: 0, verdict: "Succeeded",
		},
		"a dash as the file reads stdin": {
			stdin: "success-migration.log", args: append([]string{"--file", "-", "--output=json"}, upgrade...),
			code: 0, verdict: "Succeeded",
		},
		"a failure masked by a Ready pod exits 1": {
			stdin: "failed-masked-step-error.log", args: append([]string{"-o", "json"}, upgrade...),
			code: 1, verdict: "Failed",
		},
		"a license failure exits 1 and names the failure": {
			stdin: "failed-license.log", args: upgrade, code: 1,
			stdout: []string{"verdict:  Failed\n", "log:      no server version update\n", "CONTAINER FAILURE: License File absent"},
		},
		"a migration still running exits 1": {
			stdin: "in-progress.log", args: append([]string{"-o", "json"}, upgrade...),
			code: 1, verdict: "InProgress",
		},
		"a profile without changes exits 1 when an upgrade is expected": {
			stdin: "no-changes.log", args: append([]string{"-o", "json"}, upgrade...),
			code: 1, verdict: "NotUpgraded",
		},
		"a profile without changes exits 0 when the version stays": {
			stdin: "no-changes.log", args: []string{"--to", "9.1.0.0"}, code: 0,
			stdout: []string{"verdict:  Succeeded\n", "expected: 9.1.0.0 (no version change)\n"},
		},
		"a first start exits 1 as unknown": {
			stdin: "first-start.log", args: append([]string{"-o", "json"}, upgrade...),
			code: 1, verdict: "Unknown",
		},
		"an old success replayed from the previous tool log exits 1": {
			stdin: "prev-old-success-then-failure.log", args: append([]string{"-o", "json"}, upgrade...),
			code: 1, verdict: "Failed",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var in io.Reader = strings.NewReader("")
			if tc.stdin != "" {
				in = strings.NewReader(readScanLogFixture(t, tc.stdin))
			}
			stdout, message, code := runScanLog(t, in, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nmessage: %s", code, tc.code, stdout, message)
			}
			if message != "" {
				t.Errorf("a verdict also printed a message: %s", message)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if tc.verdict != "" {
				got := decodeScanLogJSON(t, stdout)
				if got.Verdict != tc.verdict {
					t.Errorf("JSON verdict %q, want %q\n%s", got.Verdict, tc.verdict, stdout)
				}
			}
		})
	}
}

type scanLogJSON struct {
	Verdict  string   `json:"verdict"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Reason   string   `json:"reason"`
	Evidence []string `json:"evidence"`
}

// decodeJSON checks the output is one JSON object with exactly the agreed
// keys and decodes it.
func decodeScanLogJSON(t *testing.T, stdout string) scanLogJSON {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, stdout)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"evidence", "from", "reason", "to", "verdict"}; !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want %v", keys, want)
	}
	if string(raw["evidence"]) == "null" {
		t.Error(`"evidence" is null; want a list`)
	}
	var got scanLogJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestScanLogJSONCarriesTheResult(t *testing.T) {
	stdout, _, code := runScanLog(t, strings.NewReader(readScanLogFixture(t, "failed-banner.log")),
		"--from", "9.0.0.1", "--to", "9.1.0.0", "-o", "json")
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	got := decodeScanLogJSON(t, stdout)
	if got.From != "9.0.0.1" || got.To != "9.1.0.0" {
		t.Errorf("versions %q -> %q, want 9.0.0.1 -> 9.1.0.0", got.From, got.To)
	}
	if !slices.Contains(got.Evidence, "An error occurred during mange-profile replace-profile.") {
		t.Errorf("evidence lacks the banner: %q", got.Evidence)
	}
	if !strings.Contains(got.Reason, "manage-profile.log") {
		t.Errorf("reason %q does not say where to look", got.Reason)
	}
	if strings.Contains(stdout, `\u003e`) || strings.Contains(stdout, "\x1b") {
		t.Errorf("output escapes HTML or keeps colour codes:\n%s", stdout)
	}
}

func TestScanLogEmptyLogGivesAnEmptyEvidenceList(t *testing.T) {
	stdout, _, code := runScanLog(t, strings.NewReader(""), "--to", "9.1.0.0", "-o", "json")
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if got := decodeScanLogJSON(t, stdout); got.Verdict != "Unknown" || len(got.Evidence) != 0 {
		t.Errorf("got %+v, want Unknown with no evidence", got)
	}
	if !strings.Contains(stdout, `"evidence": []`) {
		t.Errorf("evidence is not an empty list:\n%s", stdout)
	}
}

func TestScanLogRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(scanLogFixtures, "success-migration.log")
	tests := map[string]struct {
		args    []string
		stdin   io.Reader
		message []string
	}{
		"a missing --to is named": {
			args: []string{"--from", "9.0.0.1", "--file", log}, message: []string{"--to is required"},
		},
		"an image tag given as --to is named": {
			args:    []string{"--to", "2504-10.2.0.1", "--file", log},
			message: []string{"--to", `"2504-10.2.0.1" is not a product version`},
		},
		"a short --from is named": {
			args: []string{"--from", "9.0", "--to", "9.1.0.0", "--file", log}, message: []string{"--from", `"9.0"`},
		},
		"an unknown output format is named": {
			args: []string{"--to", "9.1.0.0", "-o", "yaml", "--file", log}, message: []string{`--output "yaml" is not supported`},
		},
		"an unknown flag is named": {
			args: []string{"--to", "9.1.0.0", "--pod", "pingdirectory-2"}, message: []string{"unknown flag: --pod"},
		},
		"a flag without its value is named": {
			args: []string{"--to"}, message: []string{"flag needs an argument", "--to"},
		},
		"a positional argument is refused": {
			args: []string{"--to", "9.1.0.0", log}, message: []string{"unexpected argument", "--file"},
		},
		"a missing file is named": {
			args:    []string{"--to", "9.1.0.0", "--file", filepath.Join(dir, "canary.log")},
			message: []string{"--file", "canary.log", "no such file or directory"},
		},
		"a directory given as the file is named": {
			args: []string{"--to", "9.1.0.0", "--file", dir}, message: []string{"reading --file", dir, "is a directory"},
		},
		"a failing stdin is named": {
			args: []string{"--to", "9.1.0.0"}, stdin: scanLogFailingReader{}, message: []string{"reading stdin", "connection reset"},
		},
		"a device on stdin is refused instead of waited on": {
			args: []string{"--to", "9.1.0.0"}, stdin: openDevNull(t), message: []string{"stdin is a terminal or device"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			stdin := tc.stdin
			if stdin == nil {
				stdin = strings.NewReader(readScanLogFixture(t, "success-migration.log"))
			}
			stdout, message, code := runScanLog(t, stdin, tc.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2\nstdout:\n%s\nmessage: %s", code, stdout, message)
			}
			if stdout != "" {
				t.Errorf("bad input printed a result:\n%s", stdout)
			}
			for _, want := range tc.message {
				if !strings.Contains(message, want) {
					t.Errorf("message %q lacks %q", message, want)
				}
			}
		})
	}
}

type scanLogFailingReader struct{}

func (scanLogFailingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func openDevNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestScanLogHelpExitsZero(t *testing.T) {
	stdout, message, code := runScanLog(t, nil, "--help")
	if code != 0 || message != "" {
		t.Fatalf("exit code %d, message %q; want 0 and nothing", code, message)
	}
	for _, want := range []string{"--from", "--to", "--file", "--output", "Exit codes: 0 Succeeded, 1 any other verdict, 2 bad input."} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestScanLogExitCodeError(t *testing.T) {
	cause := errors.New("--to is required")
	tests := map[string]struct {
		err  *exitCodeError
		text string
	}{
		"an error with a cause reads as the cause": {&exitCodeError{Code: 2, Err: cause}, "--to is required"},
		"an error without a cause names its code":  {&exitCodeError{Code: 1}, "exit code 1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.text {
				t.Errorf("Error() = %q, want %q", got, tc.text)
			}
			if !errors.Is(tc.err, cause) && tc.err.Err != nil {
				t.Error("does not unwrap to its cause")
			}
			wrapped := fmt.Errorf("context: %w", tc.err)
			if code, _ := mainExit(wrapped); code != tc.err.Code {
				t.Errorf("wrapped, main would exit %d, want %d", code, tc.err.Code)
			}
		})
	}
}
