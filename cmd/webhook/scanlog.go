package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pdguard/pdguard/internal/evidence/logscan"
)

// scanLogOutput is the JSON shape of scan-log -o json.
type scanLogOutput struct {
	Verdict  logscan.Verdict `json:"verdict"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Reason   string          `json:"reason"`
	Evidence []string        `json:"evidence"`
}

func newScanLogCommand() *cobra.Command {
	var from, to, file, output string
	cmd := &cobra.Command{
		Use:   "scan-log --to VERSION [--from VERSION] [--file LOG] [-o json|text]",
		Short: "Judge a PingDirectory container log: did replace-profile prove the upgrade?",
		Long: `scan-log reads a PingDirectory container log (kubectl logs, optionally with
--previous or --timestamps) from --file or stdin and judges the last
manage-profile replace-profile attempt in it.

The restart hook pipes replace-profile through tee, so a failed migration
can still end with a Ready pod; scan-log looks at the tool's own output
instead. Lines replayed from manage-profile.log.prev are ignored.

Verdicts: Succeeded, Failed, InProgress, NotUpgraded, Unknown.
Exit codes: 0 Succeeded, 1 any other verdict, 2 bad input.`,
		Example: `  kubectl logs pingdirectory-2 -c pingdirectory | webhook scan-log --from 9.0.0.1 --to 9.1.0.0
  webhook scan-log --to 9.1.0.0 --file canary.log -o json`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput(fmt.Errorf("unexpected argument %q: pass the log with --file or on stdin", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "json" && output != "text" {
				return badInput(fmt.Errorf("--output %q is not supported: use json or text", output))
			}
			if to == "" {
				return badInput(errors.New("--to is required: give the product version the canary should reach, like 9.1.0.0"))
			}
			if err := logscan.CheckVersion(to); err != nil {
				return badInput(fmt.Errorf("--to: %w", err))
			}
			if from != "" {
				if err := logscan.CheckVersion(from); err != nil {
					return badInput(fmt.Errorf("--from: %w", err))
				}
			}

			in, name, closeIn, err := openLog(cmd, file)
			if err != nil {
				return badInput(err)
			}
			defer closeIn()

			res, err := logscan.Scan(in, logscan.Expect{From: from, To: to})
			if err != nil {
				return badInput(fmt.Errorf("reading %s: %w", name, err))
			}
			if err := writeResult(cmd.OutOrStdout(), output, res, logscan.Expect{From: from, To: to}); err != nil {
				return fmt.Errorf("writing the result: %w", err)
			}
			if res.Verdict != logscan.Succeeded {
				return &exitCodeError{Code: exitDenied}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "product version the canary ran before, like 9.0.0.1; omit or repeat --to when no version change is expected")
	cmd.Flags().StringVar(&to, "to", "", "product version the canary must reach, like 9.1.0.0 (required)")
	cmd.Flags().StringVarP(&file, "file", "f", "", `container log to read; "-" or omitted reads stdin`)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return badInput(err)
	})
	return cmd
}

// openLog returns the log to read and a name for it in messages.
func openLog(cmd *cobra.Command, file string) (io.Reader, string, func(), error) {
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", nil, fmt.Errorf("--file: %w", err)
		}
		return f, fmt.Sprintf("--file %q", file), func() { f.Close() }, nil
	}
	in := cmd.InOrStdin()
	// Waiting on a terminal would look like a hang; say what is missing.
	if f, ok := in.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return nil, "", nil, errors.New("stdin is a terminal or device, not a log: pipe the log in or pass --file")
		}
	}
	return in, "stdin", func() {}, nil
}

func writeResult(w io.Writer, format string, res logscan.Result, want logscan.Expect) error {
	evidence := res.Evidence
	if evidence == nil {
		evidence = []string{}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(scanLogOutput{
			Verdict: res.Verdict, From: res.From, To: res.To, Reason: res.Reason, Evidence: evidence,
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "verdict:  %s\n", res.Verdict)
	if want.From != "" && want.From != want.To {
		fmt.Fprintf(&b, "expected: %s -> %s\n", want.From, want.To)
	} else {
		fmt.Fprintf(&b, "expected: %s (no version change)\n", want.To)
	}
	if res.From != "" || res.To != "" {
		fmt.Fprintf(&b, "log:      %s -> %s\n", res.From, res.To)
	} else {
		b.WriteString("log:      no server version update\n")
	}
	fmt.Fprintf(&b, "reason:   %s\n", res.Reason)
	if len(evidence) > 0 {
		b.WriteString("evidence:\n")
		for _, line := range evidence {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
