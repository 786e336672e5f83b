package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Printer writes a scenario for a person to follow: headings, the commands as typed,
// what the guard answered, and the pods afterwards, in lines short enough to read.
type Printer struct {
	W     io.Writer
	Width int
	step  int
}

// NewPrinter prints to w, wrapping prose at 92 columns.
func NewPrinter(w io.Writer) *Printer { return &Printer{W: w, Width: 92} }

func (p *Printer) printf(format string, args ...any) { fmt.Fprintf(p.W, format, args...) }

// Title opens the whole walk-through.
func (p *Printer) Title(title string) {
	line := strings.Repeat("=", min(len(title), p.Width))
	p.printf("\n%s\n%s\n%s\n", line, title, line)
}

// Section starts a part of the story; steps are numbered from 1 again.
func (p *Printer) Section(title string) {
	p.step = 0
	p.printf("\n## %s\n", title)
}

// Step announces the next thing that happens.
func (p *Printer) Step(format string, args ...any) {
	p.step++
	text := fmt.Sprintf(format, args...)
	prefix := fmt.Sprintf("\n%d. ", p.step)
	p.wrap(prefix, strings.Repeat(" ", len(prefix)-1), text)
}

// Say explains, indented under the current step.
func (p *Printer) Say(format string, args ...any) {
	p.wrap("   ", "   ", fmt.Sprintf(format, args...))
}

// Command shows a command as typed and what came of it: pdguard's warnings, its denial,
// or another error, and the time it took.
func (p *Printer) Command(r Result) {
	p.printf("\n   $ %s\n", r.CommandLine())
	for _, w := range r.Warnings() {
		p.wrap("     warning: ", "       ", w)
	}
	switch {
	case r.OK():
		p.printf("     -> exit 0 (%s)\n", shortDuration(r.Took))
	case r.Denial() != "":
		p.printf("     -> exit %d (%s): denied by pdguard's validating webhook:\n", r.ExitCode, shortDuration(r.Took))
		p.wrap("       ", "       ", r.Denial())
	default:
		p.printf("     -> exit %d (%s):\n", r.ExitCode, shortDuration(r.Took))
		msg := r.ErrorLine()
		if msg == "" {
			msg = r.Output()
		}
		p.wrap("       ", "       ", msg)
	}
}

// Output prints a command's standard output as it came, indented.
func (p *Printer) Output(out string) {
	for line := range strings.Lines(strings.TrimRight(out, "\n") + "\n") {
		p.printf("     %s", line)
	}
}

// JSON prints a JSON document indented for reading, or as it came if it is not JSON.
func (p *Printer) JSON(doc string) {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(doc), "", "  "); err != nil {
		p.Output(doc)
		return
	}
	p.Output(b.String())
}

// Pods prints each pod's image, revision, readiness and verdict.
func (p *Printer) Pods(pods []Pod) {
	p.printf("\n")
	tw := tabwriter.NewWriter(p.W, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "     POD\tIMAGE TAG\tREVISION\tREADY\tVERDICT")
	for _, pod := range pods {
		verdict := "-"
		if pod.Verdict != nil {
			verdict = pod.Verdict.Verdict
		}
		rev := pod.Revision
		if i := strings.LastIndex(rev, "-"); i >= 0 {
			rev = rev[i+1:]
		}
		fmt.Fprintf(tw, "     %s\t%s\t%s\t%v\t%s\n", pod.Name, pod.Tag(), rev, pod.Ready, verdict)
	}
	tw.Flush()
}

// Fact prints one observation as "name: value", wrapped.
func (p *Printer) Fact(name, value string) {
	p.wrap("     "+name+": ", "       ", value)
}

// OK marks a step that behaved as expected; Fail one that did not.
func (p *Printer) OK(format string, args ...any) {
	p.wrap("   ok: ", "       ", fmt.Sprintf(format, args...))
}

func (p *Printer) Fail(format string, args ...any) {
	p.wrap("   UNEXPECTED: ", "       ", fmt.Sprintf(format, args...))
}

// wrap prints text word-wrapped at the printer's width, the first line after first and
// the others after rest.
func (p *Printer) wrap(first, rest, text string) {
	width := p.Width
	for i, para := range strings.Split(text, "\n") {
		prefix := first
		if i > 0 {
			prefix = rest
		}
		if strings.TrimSpace(para) == "" {
			p.printf("\n")
			continue
		}
		line := prefix
		empty := true
		for _, word := range strings.Fields(para) {
			if !empty && len(line)+1+len(word) > width {
				p.printf("%s\n", line)
				line, empty = rest, true
			}
			if empty {
				line += word
				empty = false
			} else {
				line += " " + word
			}
		}
		p.printf("%s\n", line)
	}
}
