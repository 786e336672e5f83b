// Command webhook is pdguard: the admission webhook and evidence controller (`serve`),
// the same decisions offline (`check`), the canary log scanner (`scan-log`), the
// audit report (`report`), and the unit tests of site policy modules (`policy test`).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var coded *exitCodeError
	if errors.As(err, &coded) {
		if coded.Err != nil {
			fmt.Fprintln(os.Stderr, "webhook:", coded.Err)
		}
		return coded.Code
	}
	fmt.Fprintln(os.Stderr, "webhook:", err)
	return 2
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "webhook",
		Short:         "pdguard keeps PingDirectory upgrades on Kubernetes to the vendor's canary procedure",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var kubeconfig string
	root.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file for serve and report (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if kubeconfig != "" {
			// controller-runtime's config loader reads KUBECONFIG when its own Go flag is unset.
			return os.Setenv("KUBECONFIG", kubeconfig)
		}
		return nil
	}
	root.AddCommand(newServeCommand(), newCheckCommand(), newScanLogCommand(), newCertsCommand(), newReportCommand(), newPolicyCommand(), newVersionCommand(), newStatusCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version)
			return err
		},
	}
}
