package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/audit/openreports"
	"github.com/pdguard/pdguard/internal/rollout"
)

// Audit is what `webhook audit` prints: every audit record of the guarded StatefulSets,
// newest first, and a summary per StatefulSet.
type Audit struct {
	GeneratedAt time.Time      `json:"generatedAt"`
	Since       string         `json:"since,omitempty"`
	Summaries   []AuditSummary `json:"statefulSets"`
	Entries     []AuditEntry   `json:"records"`
}

// AuditSummary is one StatefulSet's audit at a glance.
type AuditSummary struct {
	Namespace   string `json:"namespace"`
	StatefulSet string `json:"statefulSet"`
	// OpenCanary describes the canary open now, empty when none is.
	OpenCanary     string    `json:"openCanary,omitempty"`
	LastVerdict    string    `json:"lastVerdict,omitempty"`
	LastVerdictAt  time.Time `json:"lastVerdictAt,omitzero"`
	Blocked        int       `json:"blocked"`
	Warned         int       `json:"warned"`
	LastOverride   string    `json:"lastOverride,omitempty"`
	LastOverrideBy string    `json:"lastOverrideBy,omitempty"`
	LastOverrideAt time.Time `json:"lastOverrideAt,omitzero"`
}

// AuditEntry is one record, from a Report result or, for a StatefulSet with no Report,
// from an Event.
type AuditEntry struct {
	Time        time.Time `json:"time"`
	Namespace   string    `json:"namespace"`
	StatefulSet string    `json:"statefulSet"`
	Result      string    `json:"result"`
	Rule        string    `json:"rule"`
	Kind        string    `json:"kind"`
	User        string    `json:"user,omitempty"`
	FromImage   string    `json:"fromImage,omitempty"`
	ToImage     string    `json:"toImage,omitempty"`
	Pod         string    `json:"pod,omitempty"`
	Verdict     string    `json:"verdict,omitempty"`
	Override    bool      `json:"override,omitempty"`
	Message     string    `json:"message"`
	Source      string    `json:"source"` // report or event
}

// Attention: blocked, warned about, overridden, or a failed verdict.
func (e AuditEntry) Attention() bool { return e.Result != audit.ResultPass }

// AuditInput is what `webhook audit` read from the cluster.
type AuditInput struct {
	Reports      []reportsv1alpha1.Report
	Events       []eventsv1.Event
	StatefulSets []appsv1.StatefulSet
	// StatefulSet limits the audit to one name; Since to recent records (0: all).
	StatefulSet string
	Since       time.Duration
}

// BuildAudit merges Reports, Events and the live StatefulSets into one audit.
func BuildAudit(now time.Time, in AuditInput) Audit {
	a := Audit{GeneratedAt: now.UTC(), Summaries: []AuditSummary{}, Entries: []AuditEntry{}}
	if in.Since > 0 {
		a.Since = in.Since.String()
	}
	keep := func(ns, name string, at time.Time) bool {
		return (in.StatefulSet == "" || name == in.StatefulSet) && (in.Since <= 0 || now.Sub(at) <= in.Since)
	}
	reported := map[string]bool{}
	for _, rep := range in.Reports {
		if rep.Source != openreports.Source || rep.Scope == nil {
			continue
		}
		reported[rep.Namespace+"/"+rep.Scope.Name] = true
		for _, r := range rep.Results {
			at := time.Unix(r.Timestamp.Seconds, int64(r.Timestamp.Nanos)).UTC()
			if !keep(rep.Namespace, rep.Scope.Name, at) {
				continue
			}
			p := r.Properties
			a.Entries = append(a.Entries, AuditEntry{
				Time: at, Namespace: rep.Namespace, StatefulSet: rep.Scope.Name, Result: string(r.Result), Rule: r.Rule,
				Kind: p["kind"], User: p["user"], FromImage: p["fromImage"], ToImage: p["toImage"], Pod: p["pod"],
				Verdict: p["verdict"], Override: p["override"] == "true", Message: r.Description, Source: "report",
			})
		}
	}
	for i := range in.Events {
		e := &in.Events[i]
		if e.Regarding.Kind != "StatefulSet" || reported[e.Namespace+"/"+e.Regarding.Name] || !slices.Contains(ReportedReasons, e.Reason) {
			continue
		}
		at := eventTime(e).UTC()
		if !keep(e.Namespace, e.Regarding.Name, at) {
			continue
		}
		a.Entries = append(a.Entries, entryFromEvent(e, at))
	}
	slices.SortStableFunc(a.Entries, func(x, y AuditEntry) int {
		return cmp.Or(y.Time.Compare(x.Time), strings.Compare(x.Namespace+"/"+x.StatefulSet, y.Namespace+"/"+y.StatefulSet), strings.Compare(x.Message, y.Message))
	})

	byName := map[string]*AuditSummary{}
	summary := func(ns, name string) *AuditSummary {
		k := ns + "/" + name
		if s, ok := byName[k]; ok {
			return s
		}
		s := &AuditSummary{Namespace: ns, StatefulSet: name}
		byName[k] = s
		return s
	}
	for i := range in.StatefulSets {
		sts := &in.StatefulSets[i]
		if in.StatefulSet != "" && sts.Name != in.StatefulSet {
			continue
		}
		s := summary(sts.Namespace, sts.Name)
		if rollout.CanaryOpen(sts) {
			if c, err := rollout.ReadCanaryRecord(sts); err == nil && c != nil {
				s.OpenCanary = fmt.Sprintf("%s -> %s from ordinal %d, since %s", c.FromImage, c.ToImage, c.Partition, c.Started.UTC().Format(time.RFC3339))
			} else {
				s.OpenCanary = "open"
			}
		}
	}
	// Entries are newest first, so the first verdict or override seen is the last one.
	for _, e := range a.Entries {
		s := summary(e.Namespace, e.StatefulSet)
		switch {
		case e.Override:
			s.Warned++
			if s.LastOverrideAt.IsZero() {
				s.LastOverride, s.LastOverrideBy, s.LastOverrideAt = e.Message, e.User, e.Time
			}
		case e.Kind == audit.KindAdmission && e.Result == audit.ResultFail:
			s.Blocked++
		case e.Kind == audit.KindAdmission && e.Result == audit.ResultWarn:
			s.Warned++
		case e.Kind == audit.KindVerdict && s.LastVerdictAt.IsZero():
			s.LastVerdict, s.LastVerdictAt = e.Verdict+" ("+e.Pod+")", e.Time
		}
	}
	for _, s := range byName {
		a.Summaries = append(a.Summaries, *s)
	}
	slices.SortFunc(a.Summaries, func(x, y AuditSummary) int {
		return strings.Compare(x.Namespace+"/"+x.StatefulSet, y.Namespace+"/"+y.StatefulSet)
	})
	return a
}

// entryFromEvent reads what an Event keeps of a record: its reason and note.
func entryFromEvent(e *eventsv1.Event, at time.Time) AuditEntry {
	en := AuditEntry{Time: at, Namespace: e.Namespace, StatefulSet: e.Regarding.Name, Message: e.Note, Source: "event", Result: audit.ResultPass, Kind: audit.KindAdmission, Rule: e.Reason}
	if e.Type == "Warning" {
		en.Result = audit.ResultWarn
	}
	switch e.Reason {
	case audit.ReasonRolloutBlocked:
		en.Result = audit.ResultFail
	case audit.ReasonOverride:
		en.Override = true
	case audit.ReasonVerdict:
		en.Kind = audit.KindVerdict
		for _, v := range []string{rollout.VerdictSucceeded, rollout.VerdictFailed, rollout.VerdictNotUpgraded, rollout.VerdictInProgress, rollout.VerdictUnknown} {
			if strings.Contains(e.Note, "replace-profile "+v) {
				en.Verdict = v
				break
			}
		}
		if e.Related != nil {
			en.Pod = e.Related.Name
		}
	case audit.ReasonPromoted, audit.ReasonPromotionHalted, audit.ReasonBrokenPodReplaced, audit.ReasonForgedVerdict:
		en.Kind = e.Reason
	}
	// Admission notes start "[rules] by user: ".
	if rest, ok := strings.CutPrefix(e.Note, "["); ok {
		if rules, after, ok := strings.Cut(rest, "] by "); ok {
			if user, msg, ok := strings.Cut(after, ": "); ok {
				en.Rule, _, _ = strings.Cut(rules, ",")
				en.User, en.Message = user, msg
			}
		}
	}
	return en
}

// Write prints the audit in one of the formats `webhook audit -o` takes.
func (a Audit) Write(w io.Writer, format string) error {
	switch format {
	case "table":
		return a.writeTable(w)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(a)
	case "markdown":
		return a.writeMarkdown(w)
	case "html":
		return a.writeHTML(w)
	}
	return fmt.Errorf("unknown output format %q: use table, json, markdown or html", format)
}

// AuditFormats are the formats Write takes.
var AuditFormats = []string{"table", "json", "markdown", "html"}

func (a Audit) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATEFULSET\tOPEN CANARY\tLAST VERDICT\tBLOCKED\tWARNED\tLAST OVERRIDE")
	for _, s := range a.Summaries {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\t%d\t%s\n", s.Namespace, s.StatefulSet, orDash(s.OpenCanary), orDash(s.LastVerdict), s.Blocked, s.Warned, overrideText(s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d blocked, warned or overridden\n", a.attentionCount())
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTATEFULSET\tRESULT\tRULE\tUSER\tMESSAGE")
	for _, e := range a.Entries {
		if e.Attention() {
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Namespace, e.StatefulSet, resultWord(e), e.Rule, orDash(e.User), shorten(e.Message, 160))
		}
	}
	return tw.Flush()
}

func (a Audit) writeMarkdown(w io.Writer) error {
	fmt.Fprintf(w, "# pdguard audit\n\nGenerated %s", a.GeneratedAt.Format(time.RFC3339))
	if a.Since != "" {
		fmt.Fprintf(w, ", records of the last %s", a.Since)
	}
	fmt.Fprint(w, ".\n\n| StatefulSet | Open canary | Last verdict | Blocked | Warned | Last override |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, s := range a.Summaries {
		fmt.Fprintf(w, "| %s/%s | %s | %s | %d | %d | %s |\n", s.Namespace, s.StatefulSet, md(orDash(s.OpenCanary)), md(orDash(s.LastVerdict)), s.Blocked, s.Warned, md(overrideText(s)))
	}
	fmt.Fprintf(w, "\n## Blocked, warned or overridden (%d)\n\n| Time | StatefulSet | Result | Rule | User | Message |\n| --- | --- | --- | --- | --- | --- |\n", a.attentionCount())
	for _, e := range a.Entries {
		if e.Attention() {
			fmt.Fprintf(w, "| %s | %s/%s | %s | %s | %s | %s |\n", e.Time.Format(time.RFC3339), e.Namespace, e.StatefulSet, resultWord(e), e.Rule, md(orDash(e.User)), md(e.Message))
		}
	}
	return nil
}

func (a Audit) attentionCount() int {
	n := 0
	for _, e := range a.Entries {
		if e.Attention() {
			n++
		}
	}
	return n
}

// resultWord is the result as a person says it.
func resultWord(e AuditEntry) string {
	switch {
	case e.Override:
		return "overridden"
	case e.Kind == audit.KindAdmission && e.Result == audit.ResultFail:
		return "blocked"
	case e.Kind == audit.KindAdmission && e.Result == audit.ResultWarn:
		return "warned"
	case e.Kind == audit.KindVerdict:
		return "verdict " + orDash(e.Verdict)
	}
	return e.Result
}

func overrideText(s AuditSummary) string {
	if s.LastOverrideAt.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s by %s: %s", s.LastOverrideAt.Format(time.RFC3339), orDash(s.LastOverrideBy), shorten(s.LastOverride, 80))
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func md(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
