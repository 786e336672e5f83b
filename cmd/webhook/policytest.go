package main

import (
	"errors"

	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"

	"github.com/pdguard/pdguard/policy"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with site policy modules (the --policy-dir of serve)",
	}
	cmd.AddCommand(newPolicyTestCommand())
	return cmd
}

func newPolicyTestCommand() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the Rego tests in DIR against pdguard's built-in policy",
		Long: `Run the Rego tests in DIR against pdguard's built-in policy, as opa test would.

Every .rego file directly in DIR, its _test.rego files included, is compiled together
with the built-in modules (data.pdguard.lib, data.pdguard.framework, ...) and the
built-in test inputs (data.pdguard.fixtures), with the builtins serve allows. Only DIR's
tests run. Exit code 0: every test passed; 1: a test failed; 2: DIR cannot be read, does
not compile, or holds no test.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			results, err := policy.TestDir(cmd.Context(), args[0])
			if err != nil {
				return badInput(err)
			}
			if len(results) == 0 {
				return badInput(errors.New("no tests found in " + args[0] + " (test rules are named test_...)"))
			}
			ch := make(chan *tester.Result, len(results))
			failed := false
			for _, r := range results {
				failed = failed || r.Fail || r.Error != nil
				ch <- r
			}
			close(ch)
			reporter := tester.PrettyReporter{Output: cmd.OutOrStdout(), Verbose: verbose}
			if err := reporter.Report(ch); err != nil {
				return err
			}
			if failed {
				return &exitCodeError{Code: exitDenied}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, not only the failures")
	return cmd
}
