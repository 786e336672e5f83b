package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"

	"github.com/pdguard/pdguard/webhook"
)

func printCheckReport(w io.Writer, format string, rep *checkReport, verbose bool) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "junit":
		return printCheckJUnit(w, rep)
	case "markdown":
		return printCheckMarkdown(w, rep)
	}
	return printCheckText(w, rep, verbose)
}

func (r objectResult) verdict() string {
	switch {
	case !r.Guarded:
		return "NOT GUARDED"
	case r.Allowed:
		return "ALLOWED"
	}
	return "DENIED"
}

func (r objectResult) rules() []string {
	var out []string
	for _, f := range r.Findings {
		if !slices.Contains(out, f.Rule) {
			out = append(out, f.Rule)
		}
	}
	return out
}

func patchText(op struct {
	Operation string
	Path      string
	Value     any
}) string {
	if op.Operation == "remove" {
		return op.Operation + " " + op.Path
	}
	val, _ := json.Marshal(op.Value)
	return fmt.Sprintf("%s %s %s", op.Operation, op.Path, val)
}

func (r objectResult) patchLines() []string {
	out := make([]string, 0, len(r.Patch))
	for _, op := range r.Patch {
		out = append(out, patchText(struct {
			Operation string
			Path      string
			Value     any
		}{op.Operation, op.Path, op.Value}))
	}
	return out
}

func (rep *checkReport) counts() (allowed, denied, unguarded int) {
	for _, o := range rep.Objects {
		switch {
		case !o.Guarded:
			unguarded++
		case o.Allowed:
			allowed++
		default:
			denied++
		}
	}
	return
}

// ignoredSummary is "2 ConfigMap, 1 Service".
func (rep *checkReport) ignoredSummary() string {
	kinds := map[string]int{}
	for _, o := range rep.Ignored {
		kinds[o.Kind]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
	}
	return strings.Join(parts, ", ")
}

func (rep *checkReport) summary() string {
	allowed, denied, unguarded := rep.counts()
	s := fmt.Sprintf("%d StatefulSet(s): %d allowed, %d denied", len(rep.Objects), allowed, denied)
	if unguarded > 0 {
		s += fmt.Sprintf(", %d not guarded", unguarded)
	}
	if len(rep.Ignored) > 0 {
		s += fmt.Sprintf("; %d other object(s) ignored (%s)", len(rep.Ignored), rep.ignoredSummary())
	}
	return s
}

func severityWord(sev string) string {
	switch sev {
	case webhook.SeverityDeny:
		return "denied"
	case webhook.SeverityInfo:
		return "info"
	}
	return sev
}

func printCheckText(w io.Writer, rep *checkReport, verbose bool) error {
	var b strings.Builder
	for _, o := range rep.Objects {
		fmt.Fprintf(&b, "%s %s %s", o.verdict(), o.Operation, o.key())
		if rules := o.rules(); len(rules) > 0 {
			fmt.Fprintf(&b, " (rules: %s)", strings.Join(rules, ", "))
		}
		fmt.Fprintf(&b, "\n  from: %s\n", o.Source)
		for _, p := range o.patchLines() {
			fmt.Fprintf(&b, "  patch: %s\n", p)
		}
		for _, f := range o.Findings {
			fmt.Fprintf(&b, "  %s: [%s] %s\n", severityWord(f.Severity), f.Rule, f.Message)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if verbose {
		for _, i := range rep.Ignored {
			fmt.Fprintf(&b, "ignored: %s %s (%s)\n", i.Kind, identity(i.Namespace, i.Name), i.Source)
		}
	}
	b.WriteString(rep.summary())
	if len(rep.Ignored) > 0 && !verbose {
		b.WriteString("; -v lists them")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func identity(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// printCheckJUnit writes one test case per StatefulSet, for CI dashboards: a denial is a
// failure, a StatefulSet the webhooks are not called for is skipped.
func printCheckJUnit(w io.Writer, rep *checkReport) error {
	suite := junit.Testsuite{Name: "pdguard check", Time: "0"}
	for _, o := range rep.Objects {
		tc := junit.Testcase{Name: o.Operation + " " + o.key(), Classname: "pdguard.StatefulSet", Time: "0"}
		var out strings.Builder
		fmt.Fprintf(&out, "from: %s\n", o.Source)
		for _, p := range o.patchLines() {
			fmt.Fprintf(&out, "patch: %s\n", p)
		}
		var denials []string
		for _, f := range o.Findings {
			line := fmt.Sprintf("%s: [%s] %s", severityWord(f.Severity), f.Rule, f.Message)
			if f.Severity == webhook.SeverityDeny {
				denials = append(denials, line)
			} else {
				out.WriteString(line + "\n")
			}
		}
		switch {
		case !o.Guarded:
			tc.Skipped = &junit.Result{Message: "not guarded: the webhooks are not called for this StatefulSet"}
		case !o.Allowed:
			tc.Failure = &junit.Result{Message: "denied by " + strings.Join(o.rules(), ", "), Type: "denied", Data: strings.Join(denials, "\n")}
		}
		tc.SystemOut = &junit.Output{Data: out.String()}
		suite.AddTestcase(tc)
	}
	for _, n := range rep.Notes {
		suite.AddProperty("note", n)
	}
	if len(rep.Ignored) > 0 {
		suite.AddProperty("ignored", rep.ignoredSummary())
	}
	suites := junit.Testsuites{}
	suites.AddSuite(suite)
	return suites.WriteXML(w)
}

// printCheckMarkdown writes a pull-request comment.
func printCheckMarkdown(w io.Writer, rep *checkReport) error {
	var b strings.Builder
	title := "allowed"
	if !rep.Allowed {
		title = "denied"
	}
	fmt.Fprintf(&b, "### pdguard check: %s\n\n%s.\n\n", title, rep.summary())
	b.WriteString("| StatefulSet | operation | result | rules |\n| --- | --- | --- | --- |\n")
	for _, o := range rep.Objects {
		rules := "-"
		if r := o.rules(); len(r) > 0 {
			rules = "`" + strings.Join(r, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | **%s** | %s |\n", o.key(), o.Operation, strings.ToLower(o.verdict()), rules)
	}
	for _, o := range rep.Objects {
		if len(o.Findings) == 0 && len(o.Patch) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n#### `%s`: %s\n\n", o.key(), strings.ToLower(o.verdict()))
		for _, f := range o.Findings {
			fmt.Fprintf(&b, "- **%s** `%s`: %s\n", severityWord(f.Severity), f.Rule, markdownText(f.Message))
		}
		for _, p := range o.patchLines() {
			fmt.Fprintf(&b, "- patch: `%s`\n", p)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "\n> **note:** %s\n", markdownText(n))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// markdownText keeps a message on one list item: newlines would end it, and < > would be
// read as HTML.
func markdownText(s string) string {
	return strings.NewReplacer("\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}
