package logscan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

var upgrade = Expect{From: "9.0.0.1", To: "9.1.0.0"}

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestScanFixtures(t *testing.T) {
	tests := map[string]struct {
		fixture      string
		want         Expect
		verdict      Verdict
		from, to     string
		evidence     []string
		reason       string
		notEvidenced string
	}{
		"a clean migration succeeds": {
			fixture: "success-migration.log", want: upgrade, verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0",
			evidence: []string{
				"RUN_PLAN: RESTART",
				"Updating the server version from 9.0.0.1 to 9.1.0.0.",
				"Running the update tool ..... Done",
				"Setting Server to Available",
			},
			reason: "updated the server version from 9.0.0.1 to 9.1.0.0",
		},
		"expected versions with build suffixes match on their numbers": {
			fixture: "success-migration.log", want: Expect{From: "9.0.0.1-GA", To: "9.1.0.0.20240930"},
			verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0",
		},
		"a failed update step fails even though the old server became Available": {
			fixture: "failed-masked-step-error.log", want: upgrade, verdict: Failed, from: "9.0.0.1", to: "9.1.0.0",
			evidence: []string{
				"Running the update tool ..... Error",
				"ERROR: The update tool exited with code 1; see /opt/out/instance/logs/tools/update.log for details",
				"/opt/out/instance/logs/tools/manage-profile.log: Running the update tool ..... Error",
				"Setting Server to Available",
			},
			reason: "manage-profile replace-profile failed",
		},
		"the hook's error banner fails": {
			fixture: "failed-banner.log", want: upgrade, verdict: Failed, from: "9.0.0.1", to: "9.1.0.0",
			evidence: []string{
				"Applying the new profile configuration ..... Error",
				"An error occurred during mange-profile replace-profile.",
				"CONTAINER FAILURE: Resolve the issues with your server-profile",
			},
			reason: "Applying the new profile configuration ..... Error",
		},
		"an absent license fails before replace-profile runs": {
			fixture: "failed-license.log", want: upgrade, verdict: Failed,
			evidence: []string{"Restarting container", "CONTAINER FAILURE: License File absent"},
			reason:   "before manage-profile replace-profile ran",
		},
		"a post-start failure after a good migration fails": {
			fixture: "failed-post-start.log", want: upgrade, verdict: Failed, from: "9.0.0.1", to: "9.1.0.0",
			evidence: []string{"CONTAINER FAILURE: Error running 80-post-start.sh ... Bailing..."},
			reason:   "while starting the server",
		},
		"a profile with nothing to apply is not the expected upgrade": {
			fixture: "no-changes.log", want: upgrade, verdict: NotUpgraded,
			evidence: []string{
				"The profile and the existing server configuration are the same; there are no changes to apply",
				"Setting Server to Available",
			},
			reason: "found no changes to apply",
		},
		"a profile with nothing to apply succeeds when the version stays": {
			fixture: "no-changes.log", want: Expect{From: "9.1.0.0", To: "9.1.0.0"}, verdict: Succeeded,
			reason: "without a version change",
		},
		"a profile with nothing to apply succeeds when only the target is known": {
			fixture: "no-changes.log", want: Expect{To: "9.1.0.0"}, verdict: Succeeded,
		},
		"a profile with nothing to apply succeeds when nothing is expected": {
			fixture: "no-changes.log", verdict: Succeeded,
		},
		"a log cut while the update tool runs is in progress": {
			fixture: "in-progress.log", want: upgrade, verdict: InProgress, from: "9.0.0.1", to: "9.1.0.0",
			evidence: []string{"Updating the server version from 9.0.0.1 to 9.1.0.0."},
			reason:   "migration from 9.0.0.1 to 9.1.0.0 under way",
		},
		"an old error replayed from the previous tool log is ignored": {
			fixture: "prev-old-error-then-success.log", want: upgrade, verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0",
			evidence:     []string{"Forcing replace-profile due to PD_REBUILD_ON_RESTART=true ..."},
			notEvidenced: ".prev",
		},
		"an old success replayed from the previous tool log does not hide a new failure": {
			fixture: "prev-old-success-then-failure.log", want: upgrade, verdict: Failed, from: "9.0.0.1", to: "9.1.0.0",
			evidence:     []string{"Running the update tool ..... Error"},
			notEvidenced: ".prev",
		},
		"a migration killed by the startup probe and finished on the next start succeeds": {
			fixture: "restart-cut-then-success.log", want: upgrade, verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0",
			notEvidenced: ".prev",
		},
		"a migration to another version is not the expected upgrade": {
			fixture: "wrong-target-version.log", want: upgrade, verdict: NotUpgraded, from: "9.0.0.1", to: "9.0.0.3",
			evidence: []string{"Updating the server version from 9.0.0.1 to 9.0.0.3."},
			reason:   "but the rollout expects 9.0.0.1 to 9.1.0.0",
		},
		"a migration from another version is not the expected upgrade": {
			fixture: "success-migration.log", want: Expect{From: "8.3.0.5", To: "9.1.0.0"}, verdict: NotUpgraded,
			from: "9.0.0.1", to: "9.1.0.0",
		},
		"a migration when the version should stay is not the expected upgrade": {
			fixture: "success-migration.log", want: Expect{From: "9.0.0.1", To: "9.0.0.1"}, verdict: NotUpgraded,
			from: "9.0.0.1", to: "9.1.0.0", reason: "expects the server at 9.0.0.1",
		},
		"a first start on an empty volume proves nothing": {
			fixture: "first-start.log", want: upgrade, verdict: Unknown,
			evidence: []string{"RUN_PLAN: START"},
			reason:   "RUN_PLAN: START",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ScanString(readFixture(t, tc.fixture), tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != tc.verdict {
				t.Fatalf("verdict %s, want %s; reason: %s\nevidence:\n%s", got.Verdict, tc.verdict, got.Reason, strings.Join(got.Evidence, "\n"))
			}
			if got.From != tc.from || got.To != tc.to {
				t.Errorf("versions %q -> %q, want %q -> %q", got.From, got.To, tc.from, tc.to)
			}
			for _, line := range tc.evidence {
				if !containsLine(got.Evidence, line) {
					t.Errorf("evidence lacks %q:\n%s", line, strings.Join(got.Evidence, "\n"))
				}
			}
			if tc.notEvidenced != "" {
				for _, line := range got.Evidence {
					if strings.Contains(line, tc.notEvidenced) {
						t.Errorf("evidence holds %q, which should have been ignored", line)
					}
				}
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", got.Reason, tc.reason)
			}
			checkResult(t, got)
		})
	}
}

// containsLine matches an evidence line by its ending, since lines may carry
// a kubectl timestamp or a tool-log path in front.
func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want || strings.HasSuffix(l, " "+want) {
			return true
		}
	}
	return false
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	if !r.Verdict.Valid() {
		t.Errorf("verdict %q is not one of the five", r.Verdict)
	}
	if r.Reason == "" {
		t.Error("empty reason")
	}
	if r.Evidence == nil {
		t.Error("nil evidence; want an empty list")
	}
	if len(r.Evidence) > MaxEvidence {
		t.Errorf("%d evidence lines, want at most %d", len(r.Evidence), MaxEvidence)
	}
	for _, l := range r.Evidence {
		if len(l) > MaxEvidenceLineBytes || !utf8.ValidString(l) || strings.ContainsAny(l, "\x1b\r\n") {
			t.Errorf("evidence line %q is too long, not UTF-8, or holds control characters", l)
		}
	}
}

func TestScanLastAttemptDecides(t *testing.T) {
	tests := map[string]struct {
		fixtures []string
		verdict  Verdict
	}{
		"a success followed by a cut attempt is in progress": {
			fixtures: []string{"success-migration.log", "in-progress.log"}, verdict: InProgress,
		},
		"a failure followed by a success succeeds": {
			fixtures: []string{"failed-banner.log", "success-migration.log"}, verdict: Succeeded,
		},
		"a success followed by a license failure fails": {
			fixtures: []string{"success-migration.log", "failed-license.log"}, verdict: Failed,
		},
		"a success followed by a masked failure fails": {
			fixtures: []string{"success-migration.log", "failed-masked-step-error.log"}, verdict: Failed,
		},
		"a replace-profile attempt followed by a first start is judged on the attempt": {
			// Only a hand-stitched log has a first start after a restart; the
			// earlier attempt is still the last replace-profile in the text.
			fixtures: []string{"failed-banner.log", "first-start.log"}, verdict: Failed,
		},
	}

	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var log strings.Builder
			for _, f := range tc.fixtures {
				log.WriteString(readFixture(t, f))
			}
			got, err := ScanString(log.String(), upgrade)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != tc.verdict {
				t.Fatalf("verdict %s, want %s; reason: %s\nevidence:\n%s", got.Verdict, tc.verdict, got.Reason, strings.Join(got.Evidence, "\n"))
			}
			checkResult(t, got)
		})
	}
}

// minimal is the smallest log that passes as a finished migration; rows below
// put one odd line into it.
const minimal = "RUN_PLAN: RESTART\n" +
	"Restarting container\n" +
	"Merging changes from new server profile...\n" +
	"  /opt/server/bin/manage-profile replace-profile --serverRoot /opt/out/instance --profile /opt/staging/pd.profile\n" +
	"Updating the server version from 9.0.0.1 to 9.1.0.0.\n" +
	"%s\n" +
	"Running the update tool ..... Done\n" +
	"Setting Server to Unavailable - Configuring replication\n" +
	"Starting server in foreground: (/opt/out/instance/bin/start-server --nodetach)\n" +
	"Setting Server to Available\n"

func TestScanEdgeCases(t *testing.T) {
	tests := map[string]struct {
		log     string
		want    *Expect // nil means upgrade
		verdict Verdict
		from    string
		to      string
		reason  string
	}{
		"an empty log is unknown": {
			log: "", verdict: Unknown, reason: "empty",
		},
		"a log of blank and colour-only lines is unknown": {
			log: "\n \n\x1b[0m\n\t\n", verdict: Unknown, reason: "empty",
		},
		"a log from another program is unknown": {
			log: "hello\nlistening on :8080\n", verdict: Unknown, reason: "no manage-profile replace-profile output",
		},
		"the minimal log succeeds": {
			log: fmt.Sprintf(minimal, ""), verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0",
		},
		"Windows line endings read like Unix ones": {
			log:     strings.ReplaceAll(fmt.Sprintf(minimal, "Running the update tool ..... Error"), "\n", "\r\n"),
			verdict: Failed, from: "9.0.0.1", to: "9.1.0.0",
		},
		"a progress line redrawn with carriage returns still shows its outcome": {
			log:     fmt.Sprintf(minimal, "Running the update tool .....\rRunning the update tool ..... \x1b[31mError\x1b[0m"),
			verdict: Failed,
		},
		"a printed version with a build suffix matches on its numbers": {
			log:     strings.Replace(fmt.Sprintf(minimal, ""), "9.1.0.0.", "9.1.0.0-20240930201536Z.", 1),
			verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0-20240930201536Z",
		},
		"an unreadable printed version is not the expected upgrade": {
			log:     strings.Replace(fmt.Sprintf(minimal, ""), "to 9.1.0.0.", "to nine.", 1),
			verdict: NotUpgraded, from: "9.0.0.1", to: "nine",
		},
		"a step result glued to its dots still counts": {
			log: fmt.Sprintf(minimal, "Running the update tool .....Error"), verdict: Failed,
		},
		"a step result ending in a full stop still counts": {
			log: fmt.Sprintf(minimal, "Cleaning up after replace ..... Failed."), verdict: Failed,
		},
		"the word error after a single dot is no step result": {
			log: fmt.Sprintf(minimal, "Retrying after a transient error"), verdict: Succeeded,
		},
		"the UNSAFE_CONTINUE_ON_ERROR banner fails": {
			log: fmt.Sprintf(minimal, "#  ERROR (20): Resolve the issues with your server-profile"), verdict: Failed,
		},
		"a word that merely starts with ERROR is no failure": {
			log: fmt.Sprintf(minimal, "ERRORS_TO_IGNORE=0"), verdict: Succeeded,
		},
		"a server log line of severity SEVERE_ERROR is no replace-profile failure": {
			log:     fmt.Sprintf(minimal, `[25/Nov/2025:15:31:09 +0000] category=CORE severity=SEVERE_ERROR msgID=1 msg="Replication is not configured"`),
			verdict: Succeeded,
		},
		"a line from the current tool log tail counts": {
			log:     fmt.Sprintf(minimal, "/opt/out/instance/logs/tools/manage-profile.log: ERROR: the profile is invalid"),
			verdict: Failed,
		},
		"a replayed line behind a kubectl timestamp is still ignored": {
			log:     fmt.Sprintf(minimal, "2025-11-25T15:31:02.118227Z \x1b[31m/opt/out/instance/logs/tools/manage-profile.log.prev: ERROR: old\x1b[0m"),
			verdict: Succeeded,
		},
		"a kubectl timestamp does not hide a failure": {
			log:     fmt.Sprintf(minimal, "2025-11-25T15:31:02.118227Z \x1b[1;31mCONTAINER FAILURE: License File absent\x1b[0m"),
			verdict: Failed,
		},
		"a line that only looks like a timestamp is read as it is": {
			log:     fmt.Sprintf(minimal, "2025-11-25Tnonsense CONTAINER FAILURE: x"),
			verdict: Failed,
		},
		"a restart that has not reached replace-profile is in progress": {
			log: "RUN_PLAN: RESTART\n#        - manage-profile replace-profile\nRestarting container\nChecking license file...\n", verdict: InProgress,
			reason: "has not run manage-profile replace-profile yet",
		},
		"a restart that starts the server without replace-profile output proves nothing": {
			log:     "Restarting container\nStarting server in foreground: (start-server --nodetach)\nSetting Server to Available\n",
			verdict: Unknown, reason: "without any manage-profile replace-profile output",
		},
		"replace-profile output without the server starting is in progress": {
			log:     "Merging changes from new server profile...\nValidating source and existing servers ..... Done\n",
			verdict: InProgress,
		},
		"a second command echo without a restart line starts a new attempt": {
			log:     fmt.Sprintf(minimal, "") + "  /opt/server/bin/manage-profile replace-profile --serverRoot /opt/out/instance\n",
			verdict: InProgress,
		},
		"a version update when none is expected succeeds if it lands on the target": {
			log: fmt.Sprintf(minimal, ""), want: &Expect{To: "9.1.0.0"}, verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0",
		},
		"a version update succeeds when no versions are given at all": {
			log: fmt.Sprintf(minimal, ""), want: &Expect{}, verdict: Succeeded, from: "9.0.0.1", to: "9.1.0.0",
		},
		"a finished replace-profile without a version line is not the expected upgrade": {
			log:     strings.Replace(fmt.Sprintf(minimal, ""), "Updating the server version from 9.0.0.1 to 9.1.0.0.\n", "", 1),
			verdict: NotUpgraded, reason: "finished without updating the server version",
		},
		"a cut version line is tool output but no version": {
			log:     strings.Replace(fmt.Sprintf(minimal, ""), "from 9.0.0.1 to 9.1.0.0.", "from 9.0.0.1", 1),
			verdict: NotUpgraded,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			want := upgrade
			if tc.want != nil {
				want = *tc.want
			}
			got, err := ScanString(tc.log, want)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != tc.verdict {
				t.Fatalf("verdict %s, want %s; reason: %s\nevidence:\n%s", got.Verdict, tc.verdict, got.Reason, strings.Join(got.Evidence, "\n"))
			}
			if tc.from != "" && (got.From != tc.from || got.To != tc.to) {
				t.Errorf("versions %q -> %q, want %q -> %q", got.From, got.To, tc.from, tc.to)
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", got.Reason, tc.reason)
			}
			checkResult(t, got)
		})
	}
}

func TestScanCutsLongLines(t *testing.T) {
	tests := map[string]struct {
		maxLine int
		long    string
	}{
		"a line twice the real buffer is cut, not an error": {
			maxLine: MaxLineBytes, long: strings.Repeat("x", 2*MaxLineBytes+17),
		},
		"a long line with a failure past the cut is only judged on what was kept": {
			maxLine: 64, long: strings.Repeat("x", 100) + " CONTAINER FAILURE: hidden",
		},
		"a long line ending the log without a newline is cut": {
			maxLine: 64, long: strings.Repeat("y", 1000),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			log := fmt.Sprintf(minimal, tc.long)
			if strings.Contains(name, "ending the log") {
				log = fmt.Sprintf(minimal, "") + tc.long
			}
			got, err := scan(strings.NewReader(log), upgrade, tc.maxLine)
			if err != nil {
				t.Fatalf("long line made the scan fail: %v", err)
			}
			if got.Verdict != Succeeded {
				t.Fatalf("verdict %s, want %s; reason: %s", got.Verdict, Succeeded, got.Reason)
			}
			checkResult(t, got)
		})
	}
}

func TestScanBoundsEvidence(t *testing.T) {
	var log strings.Builder
	log.WriteString("Restarting container\nMerging changes from new server profile...\n")
	for i := range 500 {
		fmt.Fprintf(&log, "ERROR: failure number %d %s\n", i, strings.Repeat("é", 400))
	}
	got, err := ScanString(log.String(), upgrade)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != Failed {
		t.Fatalf("verdict %s, want Failed", got.Verdict)
	}
	if !strings.HasPrefix(got.Evidence[len(got.Evidence)-maxFailureEvidence], "ERROR: failure number 0 ") {
		t.Errorf("the first failure is not in the evidence: %q", got.Evidence)
	}
	checkResult(t, got)
}

func TestScanRejectsBadInput(t *testing.T) {
	tests := map[string]struct {
		want    Expect
		message string
	}{
		"a source version without a target is rejected": {
			want: Expect{From: "9.0.0.1"}, message: `source version "9.0.0.1" given without a target`,
		},
		"an image tag is not a target version": {
			want: Expect{From: "9.0.0.1", To: "2504-10.2.0.1"}, message: `target version: "2504-10.2.0.1" is not a product version`,
		},
		"a two-part source version is rejected": {
			want: Expect{From: "9.1", To: "9.1.0.0"}, message: `source version: "9.1" is not a product version`,
		},
		"a word is not a target version": {
			want: Expect{To: "latest"}, message: `"latest" is not a product version`,
		},
		"a version number too big for the server is rejected": {
			want: Expect{To: "9.1.0.99999999999"}, message: "is not a product version",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ScanString(readFixture(t, "success-migration.log"), tc.want)
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %v, want one containing %q", err, tc.message)
			}
		})
	}

	t.Run("a nil reader is rejected", func(t *testing.T) {
		if _, err := Scan(nil, upgrade); err == nil || !strings.Contains(err.Error(), "nil reader") {
			t.Fatalf("error %v, want one about the nil reader", err)
		}
	})
	t.Run("a failing reader is reported", func(t *testing.T) {
		boom := errors.New("connection reset")
		_, err := Scan(iotest.ErrReader(boom), upgrade)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading log") {
			t.Fatalf("error %v, want one wrapping %v", err, boom)
		}
	})
}

func TestStripANSI(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain text is returned as is":                 {"Restarting container", "Restarting container"},
		"a colour and its reset are removed":           {"\x1b[32mDone\x1b[0m", "Done"},
		"a bold colour is removed":                     {"\x1b[1;31mCONTAINER FAILURE: x\x1b[0m", "CONTAINER FAILURE: x"},
		"a 256-colour code is removed":                 {"\x1b[38;5;196mred\x1b[m", "red"},
		"a cursor move is removed":                     {"a\x1b[2Kb\x1b[1Ac", "abc"},
		"a window title ended by BEL is removed":       {"\x1b]0;title\x07text", "text"},
		"a window title ended by ESC backslash goes":   {"\x1b]0;title\x1b\\text", "text"},
		"an unterminated title stops at the next ESC":  {"\x1b]0;title\x1b[31mtext", "text"},
		"a charset switch is removed":                  {"\x1b(Btext", "text"},
		"a two-byte escape is removed":                 {"\x1b7saved\x1b8", "saved"},
		"a lone ESC at the end is dropped":             {"text\x1b", "text"},
		"a CSI cut off by a control character ends":    {"\x1b[31\nX", "X"},
		"other control characters are dropped":         {"a\x00b\x07c\x7fd\re", "abcde"},
		"tabs are kept":                                {"a\tb", "a\tb"},
		"UTF-8 text is kept":                           {"\x1b[33mDéjà vu ✓\x1b[0m", "Déjà vu ✓"},
		"an ESC followed by a non-ASCII byte keeps it": {"\x1bé", "é"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := StripANSI(tc.in); got != tc.want {
				t.Errorf("StripANSI(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	tests := map[string]struct {
		in string
		ok bool
	}{
		"four numbers are a version":                  {"9.1.0.0", true},
		"a dash suffix is a build suffix":             {"9.1.0.0-GA", true},
		"a fifth number is a build suffix":            {"9.1.0.0.20240930", true},
		"a trailing dot is a build suffix":            {"9.1.0.0.", true},
		"three numbers are not a version":             {"9.1.0", false},
		"an image tag with a sprint prefix is not":    {"2504-10.2.0.1", false},
		"a leading v is not a version":                {"v9.1.0.0", false},
		"an empty string is not a version":            {"", false},
		"a number beyond 32 bits is not a version":    {"4294967296.0.0.0", false},
		"a double dot is not a version":               {"9..1.0.0", false},
		"spaces around the version are not accepted":  {" 9.1.0.0", false},
		"the largest 32-bit numbers are still fine":   {"4294967295.0.0.0", true},
		"a version glued to letters keeps its prefix": {"9.1.0.0GA", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckVersion(tc.in)
			if (err == nil) != tc.ok {
				t.Errorf("CheckVersion(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

func FuzzScan(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") {
			f.Add(readFixture(f, e.Name()), "9.0.0.1", "9.1.0.0")
		}
	}
	f.Add(fmt.Sprintf(minimal, "\x1b]0;\x1b\x1b[\r\x00"), "9.1.0.0", "9.1.0.0")
	f.Add("RUN_PLAN: RESTART\n/x.prev:\n/:\n2025-11-25T15:31:02Z\n", "", "")
	f.Add("Updating the server version from  to .\n..Error", "1.2.3.4x", "")
	f.Fuzz(func(t *testing.T, log, from, to string) {
		want := Expect{From: from, To: to}
		_, badWant := want.parse()
		for _, maxLine := range []int{MaxLineBytes, 16} {
			got, err := scan(strings.NewReader(log), want, maxLine)
			if badWant != nil {
				if err == nil {
					t.Fatalf("invalid %+v accepted", want)
				}
				return
			}
			if err != nil {
				t.Fatalf("scan failed on a valid expectation: %v", err)
			}
			checkResult(t, got)
			checkSuccessLine(t, log, want, got)
		}

		// Colour codes at line starts must never change the verdict.
		plain, _ := ScanString(log, want)
		coloured, _ := ScanString("\x1b[0m"+strings.ReplaceAll(log, "\n", "\n\x1b[1;31m"), want)
		if plain.Verdict != coloured.Verdict {
			t.Fatalf("colour changed the verdict from %s to %s", plain.Verdict, coloured.Verdict)
		}
	})
}

func FuzzStripANSI(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[1;31mred\x1b[0m", "\x1b]0;t\x07x", "\x1b]0;t\x1b\\x", "\x1b(B", "\x1b\x1b[", "a\x00\x7f\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := StripANSI(s)
		if len(got) > len(s) {
			t.Fatalf("output %q is longer than input %q", got, s)
		}
		for i := 0; i < len(got); i++ {
			if isControl(got[i]) || got[i] == 0x1b {
				t.Fatalf("output %q keeps control byte %#x", got, got[i])
			}
		}
		if again := StripANSI(got); again != got {
			t.Fatalf("stripping twice changed %q to %q", got, again)
		}
		if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) && got != s {
			t.Fatalf("text without control characters changed from %q to %q", s, got)
		}
	})
}

// BenchmarkScan1MiB scans the success fixture with the server's startup
// output padded to 1 MiB, about what a canary pod logs in its first minutes.
func BenchmarkScan1MiB(b *testing.B) {
	log := padded(b, readFixture(b, "success-migration.log"), 1<<20)
	if got, err := ScanString(log, upgrade); err != nil || got.Verdict != Succeeded {
		b.Fatalf("padded fixture gives %s, %v; want Succeeded", got.Verdict, err)
	}
	data := []byte(log)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(bytes.NewReader(data), upgrade); err != nil {
			b.Fatal(err)
		}
	}
}

// padded inserts server output after the server starts until log is size
// bytes long.
func padded(tb testing.TB, log string, size int) string {
	const at = "Starting server in foreground"
	i := strings.Index(log, at)
	if i < 0 {
		tb.Fatal("fixture has no server start")
	}
	i += strings.IndexByte(log[i:], '\n') + 1
	server := []string{
		`[25/Nov/2025:15:31:%02d.%03d +0000] category=CORE severity=NOTICE msgID=458886 msg="Processing search operation conn=%d op=%d base='dc=example,dc=com' scope=sub filter='(uid=user.%d)'"`,
		`[25/Nov/2025:15:31:%02d.%03d +0000] category=REPLICATION severity=NOTICE msgID=1966115 msg="Replication server conn=%d op=%d sent %d changes to replica pingdirectory-0"`,
		"[25/Nov/2025:15:31:%02d.%03d +0000] category=JEB severity=INFORMATION msgID=8847402 msg=\"Cleaner run conn=%d op=%d finished, %d log files cleaned\"",
		"\x1b[33m[25/Nov/2025:15:31:%02d.%03d +0000] category=CONFIG severity=MILD_WARNING msgID=1 msg=\"Disk space conn=%d op=%d is at %d%% of its low threshold\"\x1b[0m",
	}
	var pad strings.Builder
	for n := 0; len(log)+pad.Len() < size; n++ {
		line := fmt.Sprintf(server[n%len(server)], n/1000%60, n%1000, n%97, n, n%500)
		if rest := size - len(log) - pad.Len(); len(line)+1 > rest {
			line = strings.Repeat("#", max(rest-1, 0))
		}
		pad.WriteString(line)
		pad.WriteByte('\n')
	}
	return log[:i] + pad.String() + log[i:]
}

func ExampleScanString() {
	log := "\x1b[32mRestarting container\x1b[0m\n" +
		"Merging changes from new server profile...\n" +
		"  /opt/server/bin/manage-profile replace-profile --serverRoot /opt/out/instance --profile /opt/staging/pd.profile\n" +
		"/opt/out/instance/logs/tools/manage-profile.log.prev: Running the update tool ..... Error\n" +
		"Updating the server version from 9.0.0.1 to 9.1.0.0.\n" +
		"Running the update tool ..... \x1b[32mDone\x1b[0m\n" +
		"Starting server in foreground: (/opt/out/instance/bin/start-server --nodetach)\n" +
		"\x1b[32mSetting Server to Available\x1b[0m\n"
	r, err := ScanString(log, Expect{From: "9.0.0.1", To: "9.1.0.0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Verdict, r.From, r.To)
	for _, line := range r.Evidence {
		fmt.Println(line)
	}
	// Output:
	// Succeeded 9.0.0.1 9.1.0.0
	// Restarting container
	// Merging changes from new server profile...
	// /opt/server/bin/manage-profile replace-profile --serverRoot /opt/out/instance --profile /opt/staging/pd.profile
	// Updating the server version from 9.0.0.1 to 9.1.0.0.
	// Running the update tool ..... Done
	// Starting server in foreground: (/opt/out/instance/bin/start-server --nodetach)
	// Setting Server to Available
}

// A log whose first lines were rotated away or cut proves nothing, even when what is
// left reads like a finished migration; a failure still visible stands.
func TestScanLogWithoutItsStart(t *testing.T) {
	lines := strings.SplitAfter(readFixture(t, "success-migration.log"), "\n")
	at := func(marker string) int {
		for i, l := range lines {
			if strings.Contains(l, marker) {
				return i
			}
		}
		t.Fatalf("no line %q in the fixture", marker)
		return 0
	}
	from := func(i int) string { return strings.Join(lines[i:], "") }
	tests := map[string]struct {
		log          string
		verdict      Verdict
		startMissing bool
		reason       string
	}{
		"the whole log succeeds": {log: from(0), verdict: Succeeded},
		"a log cut after the run plan but before the restart banner still shows the attempt begin": {
			log: from(at("04-check-variables")), verdict: Succeeded,
		},
		"a log from the replace-profile output on cannot see the start": {
			log: from(at("Merging changes")), verdict: Unknown, startMissing: true, reason: "cannot see the start of the attempt",
		},
		"a log from the version line on cannot see the start": {
			log: from(at("Updating the server version")), verdict: Unknown, startMissing: true, reason: "cannot see the start of the attempt",
		},
		"a log of server output only cannot see the start": {
			log: from(at("Starting server in foreground")), verdict: Unknown, startMissing: true, reason: "cannot see the start of the attempt",
		},
		"a cut log without a version line is not called NotUpgraded": {
			log:     strings.Replace(from(at("Merging changes")), "Updating the server version from 9.0.0.1 to 9.1.0.0.\n", "", 1),
			verdict: Unknown, startMissing: true,
		},
		"a failure in a cut log still fails": {
			log:     strings.Replace(from(at("Merging changes")), "Running the update tool ..... \x1b[32mDone", "Running the update tool ..... Error", 1),
			verdict: Failed,
		},
		"a container that has only printed its first hooks is no cut log": {
			log: strings.Join(lines[:3], ""), verdict: Unknown,
		},
		"an empty log is no cut log": {log: "", verdict: Unknown, reason: "empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ScanString(tc.log, upgrade)
			if err != nil {
				t.Fatal(err)
			}
			if got.Verdict != tc.verdict || got.StartMissing != tc.startMissing {
				t.Fatalf("verdict %s (start missing %v), want %s (%v); reason: %s", got.Verdict, got.StartMissing, tc.verdict, tc.startMissing, got.Reason)
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", got.Reason, tc.reason)
			}
			checkResult(t, got)
		})
	}
}
