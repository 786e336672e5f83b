// Package logscan reads a PingDirectory container log and decides whether the
// last manage-profile replace-profile attempt proved the version migration a
// rollout expects.
//
// The image's restart hook pipes replace-profile through tee, so a failed
// migration often does not stop the container: the server can start on the
// old instance and pass its readiness probe. A Ready pod therefore proves
// nothing; only the tool's own output in the log does.
package logscan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pdguard/pdguard/internal/rollout"
)

// Verdict is the outcome of the last replace-profile attempt in a log. Its values are
// the rollout model's verdict words (internal/rollout), so a scan's verdict is the one
// the evidence controller records.
type Verdict string

const (
	// Succeeded: replace-profile finished, updated the server version as
	// expected, the server started, and no failure marker appeared.
	Succeeded Verdict = rollout.VerdictSucceeded
	// Failed: the last attempt printed a failure marker, even if the server
	// started afterwards.
	Failed Verdict = rollout.VerdictFailed
	// InProgress: replace-profile is planned or running but has not finished
	// in this log.
	InProgress Verdict = rollout.VerdictInProgress
	// NotUpgraded: replace-profile finished without the expected
	// "Updating the server version from <from> to <to>".
	NotUpgraded Verdict = rollout.VerdictNotUpgraded
	// Unknown: the log holds no replace-profile run at all.
	Unknown Verdict = rollout.VerdictUnknown
)

// Valid reports whether v is one of the five verdicts.
func (v Verdict) Valid() bool {
	switch v {
	case Succeeded, Failed, InProgress, NotUpgraded, Unknown:
		return true
	}
	return false
}

// Expect names the product versions the rollout moves between, such as
// From "9.0.0.1" and To "9.1.0.0". An empty From, or a From equal to To, means
// no version change is expected; an empty To as well means any target is fine.
type Expect struct {
	From, To string
}

// Result is what the scanner concluded from a log.
type Result struct {
	Verdict Verdict
	// From and To are the versions printed on the last
	// "Updating the server version from <from> to <to>" line of the deciding
	// attempt, empty when there was none.
	From, To string
	// Evidence holds the ANSI-stripped lines that decided, in log order, with
	// runs of blanks squeezed; at most MaxEvidence of them, each cut to
	// MaxEvidenceLineBytes. Lines replayed from a ".prev" tool log never
	// appear.
	Evidence []string
	// Reason is one sentence saying what happened and what to do next.
	Reason string
	// StartMissing: the log does not begin where the deciding attempt began (its first
	// lines were rotated away or cut), so whatever the attempt printed there cannot be
	// ruled out and the log proves nothing. Verdict is then Unknown.
	StartMissing bool
}

const (
	// MaxLineBytes is the longest line Scan looks at; the rest of a longer
	// line is dropped rather than failing the scan, because a stray binary
	// dump in a container log must not hide the verdict.
	MaxLineBytes = 1 << 20
	// MaxEvidence bounds Result.Evidence so the result fits in an event or
	// annotation.
	MaxEvidence = 20
	// MaxEvidenceLineBytes bounds each evidence line for the same reason.
	MaxEvidenceLineBytes = 300
)

// Scan reads a container log from r, line by line, and judges the last
// replace-profile attempt in it against want. The error is non-nil only for an
// invalid want or a failing reader; whatever the log holds yields a Result.
func Scan(r io.Reader, want Expect) (Result, error) {
	return scan(r, want, MaxLineBytes)
}

// ScanString is Scan over a log held in memory.
func ScanString(log string, want Expect) (Result, error) {
	return Scan(strings.NewReader(log), want)
}

func scan(r io.Reader, want Expect, maxLine int) (Result, error) {
	if r == nil {
		return Result{}, errors.New("logscan: no log to read (nil reader)")
	}
	exp, err := want.parse()
	if err != nil {
		return Result{}, err
	}

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, min(64<<10, maxLine)), maxLine)
	split := lineSplitter{max: maxLine}
	sc.Split(split.split)

	var s scanState
	s.cur = &attempt{}
	for sc.Scan() {
		s.line(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return Result{}, fmt.Errorf("logscan: reading log: %w", err)
	}
	return s.result(exp), nil
}

// expectation is Expect after validation.
type expectation struct {
	from, to       string
	toV            version
	hasTo          bool
	changeExpected bool
}

func (e Expect) parse() (expectation, error) {
	x := expectation{from: e.From, to: e.To}
	if e.To == "" {
		if e.From != "" {
			return x, fmt.Errorf("logscan: expected source version %q given without a target version", e.From)
		}
		return x, nil
	}
	to, err := parseVersion(e.To)
	if err != nil {
		return x, fmt.Errorf("logscan: expected target version: %w", err)
	}
	x.toV, x.hasTo = to, true
	if e.From == "" {
		return x, nil
	}
	from, err := parseVersion(e.From)
	if err != nil {
		return x, fmt.Errorf("logscan: expected source version: %w", err)
	}
	x.changeExpected = from != to
	return x, nil
}

// lineSplitter is a bufio.SplitFunc that cuts lines longer than max instead of
// failing with bufio.ErrTooLong.
type lineSplitter struct {
	max        int
	discarding bool
}

func (s *lineSplitter) split(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexByte(data, '\n')
	if s.discarding {
		if i < 0 {
			return len(data), nil, nil
		}
		s.discarding = false
		return i + 1, nil, nil
	}
	switch {
	case i >= 0:
		return i + 1, data[:i], nil
	case atEOF && len(data) > 0:
		return len(data), data, nil
	case len(data) >= s.max:
		s.discarding = true
		return len(data), data[:s.max], nil
	}
	return 0, nil, nil
}

type evidenceRank uint8

const (
	rankFailure evidenceRank = iota
	rankMilestone
	rankStep
)

type evidence struct {
	seq  int
	rank evidenceRank
	text string
}

type milestone uint8

const (
	msRunPlan milestone = iota
	msPlanReplace
	msRestarting
	msMerging
	msCommand
	msVersion
	msNoChanges
	msServerStarting
	msAvailable
	msCount
)

const (
	maxFailureEvidence = 12
	maxStepEvidence    = 6
)

// attempt is one container start as far as the log shows it. Only the last
// attempt that touched replace-profile decides, because the startup probe may
// kill a slow migration and the next start runs it again.
type attempt struct {
	// begun: the log shows where this attempt began, a RUN_PLAN banner or "Restarting
	// container" (for the first attempt, also any hook start as the log's first line).
	begun       bool
	planRestart bool
	planStart   bool
	planReplace bool
	restarting  bool
	merging     bool
	command     bool
	toolOutput  bool
	noChanges   bool
	// serverAfterTool is a server start seen after replace-profile began;
	// serverWithoutTool is one seen before it ever did.
	serverAfterTool   bool
	serverWithoutTool bool
	available         bool

	sawVersion        bool
	versionFrom       string
	versionTo         string
	failures          int
	firstFailure      string
	firstFailurePhase phase
	milestones        [msCount]int // index into evidence plus one
	failureEvidence   int
	stepEvidence      int
	evidence          []evidence
}

type phase uint8

const (
	phaseBeforeTool phase = iota
	phaseTool
	phaseServer
)

func (a *attempt) started() bool { return a.merging || a.command || a.toolOutput }

func (a *attempt) progressed() bool {
	return a.restarting || a.started() || a.serverAfterTool || a.serverWithoutTool ||
		a.available || a.failures > 0
}

// relevant reports whether the attempt says anything about replace-profile.
// A failure counts too, so a later start that died early is not hidden
// behind an older success.
func (a *attempt) relevant() bool {
	return a.planRestart || a.planReplace || a.restarting || a.started() || a.failures > 0
}

func (a *attempt) currentPhase() phase {
	switch {
	case a.serverAfterTool || a.available:
		return phaseServer
	case a.started():
		return phaseTool
	}
	return phaseBeforeTool
}

func (a *attempt) mark(m milestone, seq int, text string) {
	if a.milestones[m] != 0 && m != msVersion {
		return
	}
	text = evidenceText(text)
	if a.milestones[m] != 0 {
		// The last version line is the one that reports what happened.
		a.evidence[a.milestones[m]-1] = evidence{seq: seq, rank: rankMilestone, text: text}
		return
	}
	a.evidence = append(a.evidence, evidence{seq: seq, rank: rankMilestone, text: text})
	a.milestones[m] = len(a.evidence)
}

func (a *attempt) addFailure(seq int, text string) {
	if a.failures > 0 && a.failureEvidence >= maxFailureEvidence {
		a.failures++
		return
	}
	text = evidenceText(text)
	if a.failures == 0 {
		a.firstFailure = text
		a.firstFailurePhase = a.currentPhase()
	}
	a.failures++
	if a.failureEvidence < maxFailureEvidence && !a.hasEvidence(text) {
		a.evidence = append(a.evidence, evidence{seq: seq, rank: rankFailure, text: text})
		a.failureEvidence++
	}
}

func (a *attempt) addStep(seq int, text string) {
	if a.stepEvidence >= maxStepEvidence {
		return
	}
	text = evidenceText(text)
	if !a.hasEvidence(text) {
		a.evidence = append(a.evidence, evidence{seq: seq, rank: rankStep, text: text})
		a.stepEvidence++
	}
}

// hasEvidence keeps the tee'd tool output and the hook's cat of the same tool
// log from filling the evidence twice.
func (a *attempt) hasEvidence(text string) bool {
	for _, e := range a.evidence {
		if e.text == text {
			return true
		}
	}
	return false
}

func (a *attempt) evidenceLines() []string {
	ev := slices.Clone(a.evidence)
	slices.SortStableFunc(ev, func(x, y evidence) int { return int(x.rank) - int(y.rank) })
	if len(ev) > MaxEvidence {
		ev = ev[:MaxEvidence]
	}
	slices.SortFunc(ev, func(x, y evidence) int { return x.seq - y.seq })
	lines := make([]string, len(ev))
	for i, e := range ev {
		lines[i] = e.text
	}
	return lines
}

type scanState struct {
	seq      int
	nonBlank int
	cur      *attempt
	// opened: the log's first line has been seen.
	opened bool
	// last is the most recent finished attempt that was relevant, kept for
	// when the log ends with a start that never got to replace-profile.
	last *attempt
}

func (s *scanState) line(raw []byte) {
	// A bare carriage return redraws a progress line in place; each piece
	// is what a terminal would have shown at some point.
	for len(raw) > 0 {
		piece := raw
		if i := bytes.IndexByte(raw, '\r'); i >= 0 {
			piece, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		s.piece(piece)
	}
}

func (s *scanState) piece(b []byte) {
	text := strings.TrimSpace(StripANSI(string(b)))
	if text == "" {
		return
	}
	s.seq++
	s.nonBlank++
	body, replay := cutSource(text)
	if replay || body == "" {
		return
	}
	a := s.cur
	if !s.opened {
		// Only the log's first line can show that the log begins with the container.
		s.opened = true
		a.begun = opensContainer(body)
	}

	outcome := stepOutcome(body)
	if isFailure(body, outcome) {
		if outcome != "" {
			a.toolOutput = true
		}
		a.addFailure(s.seq, text)
		return
	}
	if from, to, ok := versionUpdate(body); ok {
		a.toolOutput = true
		a.sawVersion, a.versionFrom, a.versionTo = true, from, to
		a.mark(msVersion, s.seq, text)
		return
	}
	if strings.Contains(body, "there are no changes") ||
		strings.Contains(body, "Indexes will not be rebuilt since there were no profile changes") {
		a.toolOutput = true
		a.noChanges = true
		a.mark(msNoChanges, s.seq, text)
		return
	}
	if outcome == "done" {
		if a.started() {
			a.toolOutput = true
			a.addStep(s.seq, text)
		}
		return
	}
	if strings.Contains(body, "Setting Server to Available") {
		a.available = true
		if a.started() {
			a.serverAfterTool = true
		}
		a.mark(msAvailable, s.seq, text)
		return
	}
	if strings.Contains(body, "Setting Server to Unavailable") || strings.Contains(body, "Starting server in foreground") {
		if a.started() {
			a.serverAfterTool = true
		} else {
			a.serverWithoutTool = true
		}
		a.mark(msServerStarting, s.seq, text)
		return
	}

	plan := strings.TrimLeft(body, "# \t")
	switch {
	case strings.HasPrefix(plan, "RUN_PLAN:"):
		if a.progressed() {
			a = s.next()
		}
		a.begun = true
		switch strings.TrimSpace(strings.TrimPrefix(plan, "RUN_PLAN:")) {
		case "RESTART":
			a.planRestart = true
		case "START":
			a.planStart = true
		}
		a.mark(msRunPlan, s.seq, text)
	case strings.HasPrefix(plan, "- manage-profile replace-profile"):
		a.planReplace = true
		a.mark(msPlanReplace, s.seq, text)
	case strings.HasPrefix(body, "Restarting container"):
		if a.progressed() {
			a = s.next()
		}
		a.restarting = true
		a.begun = true
		a.mark(msRestarting, s.seq, text)
	case strings.HasPrefix(body, "Merging changes from new server profile") ||
		strings.HasPrefix(body, "Forcing replace-profile"):
		if a.merging || a.command || a.serverAfterTool || a.serverWithoutTool || a.available {
			a = s.next()
		}
		a.merging = true
		a.mark(msMerging, s.seq, text)
	case isReplaceProfileCommand(body):
		if a.command || a.serverAfterTool || a.serverWithoutTool || a.available {
			a = s.next()
		}
		a.command = true
		a.mark(msCommand, s.seq, text)
	}
}

// next starts a new attempt, remembering the current one if it mattered.
func (s *scanState) next() *attempt {
	if s.cur.relevant() {
		s.last = s.cur
	}
	s.cur = &attempt{}
	return s.cur
}

func (s *scanState) result(exp expectation) Result {
	a := s.cur
	if !a.relevant() && s.last != nil {
		a = s.last
	}
	r := Result{From: a.versionFrom, To: a.versionTo, Evidence: a.evidenceLines()}
	r.Verdict, r.Reason = s.judge(a, exp)
	if startMissing(s, a, r.Verdict) {
		r.Verdict, r.Reason, r.StartMissing = Unknown, startMissingReason(a), true
	}
	return r
}

// startMissing: a log whose first lines are gone cannot prove a migration, nor show
// that none was attempted: an error printed there would be lost. A failure still
// visible stands, and an unfinished attempt is not proof anyway.
func startMissing(s *scanState, a *attempt, v Verdict) bool {
	if s.nonBlank == 0 || a.begun {
		return false
	}
	return v == Succeeded || v == NotUpgraded || !a.relevant()
}

func startMissingReason(a *attempt) string {
	if !a.relevant() {
		return "The log has no manage-profile replace-profile output and does not begin at the container's start (no RUN_PLAN or hook line first), so pdguard cannot see the start of the attempt: its first lines were rotated away or cut (--tail, a size limit), or it is not the PingDirectory container's log. Check /opt/out/instance/logs/tools/manage-profile.log in the canary pod; if it proves the migration, promote with pdguard.io/override-reason."
	}
	return "The log does not begin where the last replace-profile attempt began (no RUN_PLAN or \"Restarting container\" line before its output), so pdguard cannot see the start of the attempt and errors printed there cannot be ruled out: its first lines were rotated away or cut (--tail, a size limit). Check /opt/out/instance/logs/tools/manage-profile.log in the canary pod; if it proves the migration, promote with pdguard.io/override-reason."
}

// opensContainer reports whether a log's first line is one a container start prints
// first: a hook starting, the run plan, or the restart banner.
func opensContainer(body string) bool {
	plan := strings.TrimLeft(body, "# \t")
	return strings.Contains(body, "Starting hook:") || strings.HasPrefix(plan, "RUN_PLAN:") || strings.HasPrefix(body, "Restarting container")
}

func (s *scanState) judge(a *attempt, exp expectation) (Verdict, string) {
	switch {
	case s.nonBlank == 0:
		return Unknown, "The log is empty, so it shows no replace-profile run; fetch the PingDirectory container's log from the canary pod."
	case !a.relevant() && a.planStart:
		return Unknown, "The log shows a first start (RUN_PLAN: START), which builds a new instance and never runs manage-profile replace-profile; check that the canary pod kept its persistent volume."
	case !a.relevant():
		return Unknown, "The log has no manage-profile replace-profile output; check that it is the PingDirectory container's log from the canary pod and was not cut short with --tail."
	case a.failures > 0:
		return Failed, failureReason(a)
	case !a.started() && (a.serverWithoutTool || a.available):
		return Unknown, "The last restart started the server without any manage-profile replace-profile output, so the log proves no migration; check that the log was not cut short with --tail."
	case !a.started():
		return InProgress, `The container is restarting and has not run manage-profile replace-profile yet; scan again after the pod logs "Setting Server to Available".`
	case !a.serverAfterTool:
		under := ""
		if a.sawVersion {
			under = fmt.Sprintf(" (migration from %s to %s under way)", a.versionFrom, a.versionTo)
		}
		return InProgress, fmt.Sprintf(`replace-profile has not finished in this log%s; scan again after "Setting Server to Available". If the startup probe restarts the pod, raise pingdirectory.container.probes.startupProbe.failureThreshold.`, under)
	}

	server := "started"
	if a.available {
		server = "reported Available"
	}
	if exp.changeExpected {
		switch {
		case !a.sawVersion && a.noChanges:
			return NotUpgraded, fmt.Sprintf("replace-profile found no changes to apply, so the server was not updated from %s to %s; check that the canary pod runs the new image.", exp.from, exp.to)
		case !a.sawVersion:
			return NotUpgraded, fmt.Sprintf("replace-profile finished without updating the server version from %s to %s; check that the canary pod runs the new image.", exp.from, exp.to)
		case !sameVersion(a.versionFrom, mustParse(exp.from)) || !sameVersion(a.versionTo, exp.toV):
			return NotUpgraded, fmt.Sprintf("replace-profile updated the server version from %s to %s, but the rollout expects %s to %s; check the canary pod's image tag against the rollout's versions.", a.versionFrom, a.versionTo, exp.from, exp.to)
		}
		return Succeeded, fmt.Sprintf("manage-profile replace-profile updated the server version from %s to %s without errors and the server %s; this pod's migration is proven.", a.versionFrom, a.versionTo, server)
	}
	if a.sawVersion {
		if exp.hasTo && !sameVersion(a.versionTo, exp.toV) {
			return NotUpgraded, fmt.Sprintf("replace-profile updated the server version from %s to %s, but the rollout expects the server at %s; check the canary pod's image tag.", a.versionFrom, a.versionTo, exp.to)
		}
		return Succeeded, fmt.Sprintf("manage-profile replace-profile updated the server version from %s to %s without errors and the server %s.", a.versionFrom, a.versionTo, server)
	}
	return Succeeded, fmt.Sprintf("manage-profile replace-profile finished without errors and without a version change, as expected, and the server %s.", server)
}

func failureReason(a *attempt) string {
	first := a.firstFailure
	if len(first) > 160 {
		first = cutUTF8(first, 160) + "…"
	}
	switch a.firstFailurePhase {
	case phaseBeforeTool:
		return fmt.Sprintf("The container failed before manage-profile replace-profile ran (%q); fix that and restart the canary pod before promoting.", first)
	case phaseServer:
		return fmt.Sprintf("The container failed after replace-profile, while starting the server (%q); fix that and restart the canary pod before promoting.", first)
	}
	return fmt.Sprintf("manage-profile replace-profile failed in the last attempt (%q) even if the pod looks Ready; read /opt/out/instance/logs/tools/manage-profile.log in the canary pod and fix the profile or image before promoting.", first)
}

// mustParse is for versions already validated by Expect.parse.
func mustParse(s string) version {
	v, _ := parseVersion(s)
	return v
}

// cutSource strips the prefixes other tools put in front of the hook's own
// text: a kubectl --timestamps stamp, and the "path:" a log tail adds. Lines
// replayed from a ".prev" tool log belong to an earlier attempt and are
// reported as replay so they are ignored.
func cutSource(text string) (body string, replay bool) {
	text = cutTimestamp(text)
	if strings.HasPrefix(text, "/") {
		if i := strings.IndexByte(text, ':'); i > 0 && !strings.ContainsAny(text[:i], " \t") {
			if strings.HasSuffix(text[:i], ".prev") {
				return "", true
			}
			return strings.TrimSpace(text[i+1:]), false
		}
	}
	return text, false
}

func cutTimestamp(text string) string {
	if len(text) < 20 || text[4] != '-' || text[10] != 'T' {
		return text
	}
	end := strings.IndexByte(text, ' ')
	if end < 0 {
		end = len(text)
	}
	if _, err := time.Parse(time.RFC3339Nano, text[:end]); err != nil {
		return text
	}
	return strings.TrimSpace(text[end:])
}

func isFailure(body, outcome string) bool {
	if outcome == "error" || outcome == "failed" {
		return true
	}
	if strings.Contains(body, "CONTAINER FAILURE") || strings.HasPrefix(body, "An error occurred") {
		return true
	}
	// The hook's UNSAFE_CONTINUE_ON_ERROR banner prints "#  ERROR (20): ...".
	e := strings.TrimLeft(body, "# \t")
	if rest, ok := strings.CutPrefix(e, "ERROR"); ok {
		return rest == "" || !isLetter(rest[0])
	}
	return false
}

func isLetter(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
}

// stepOutcome returns "done", "error" or "failed" for a tool step line such as
// "Running the update tool ..... Done", and "" for anything else.
func stepOutcome(body string) string {
	// Looking from the end keeps this cheap on the long server lines that
	// make up most of a log.
	t := strings.TrimSuffix(strings.TrimRight(body, " \t"), ".")
	start := len(t)
	for start > 0 && isLetter(t[start-1]) {
		start--
	}
	word := t[start:]
	if word == "" || !strings.HasSuffix(strings.TrimRight(t[:start], " \t"), "..") {
		return ""
	}
	switch {
	case strings.EqualFold(word, "done"):
		return "done"
	case strings.EqualFold(word, "error"):
		return "error"
	case strings.EqualFold(word, "failed"):
		return "failed"
	}
	return ""
}

// versionUpdate parses "Updating the server version from X to Y."
func versionUpdate(body string) (from, to string, ok bool) {
	const marker = "Updating the server version from "
	i := strings.Index(body, marker)
	if i < 0 {
		return "", "", false
	}
	f := strings.Fields(body[i+len(marker):])
	if len(f) < 3 || f[1] != "to" {
		return "", "", false
	}
	trim := func(s string) string { return strings.TrimRight(s, ".,;:") }
	return trim(f[0]), trim(f[2]), true
}

// isReplaceProfileCommand recognises the hook echoing the command it is about
// to run, "/opt/server/bin/manage-profile replace-profile --serverRoot ...".
func isReplaceProfileCommand(body string) bool {
	if !strings.Contains(body, "replace-profile") {
		return false
	}
	f := strings.Fields(body)
	if len(f) < 2 || f[1] != "replace-profile" {
		return false
	}
	return f[0] == "manage-profile" || strings.HasSuffix(f[0], "/manage-profile")
}

// evidenceText prepares a line for people to read. Runs of blanks are
// squeezed because the hook echoes the replace-profile command with its shell
// line continuations, which would otherwise push its flags past the cut.
func evidenceText(text string) string {
	if strings.Contains(text, "  ") || strings.Contains(text, "\t") {
		text = strings.Join(strings.Fields(text), " ")
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	if len(text) > MaxEvidenceLineBytes {
		return cutUTF8(text, MaxEvidenceLineBytes-len("…")) + "…"
	}
	return text
}

// cutUTF8 shortens s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
