// Command webhook is pdguard: the admission webhook and evidence controller (`serve`),
// the same decisions offline (`check`), the canary log scanner (`scan-log`), the
// audit report (`report`), and the unit tests of site policy modules (`policy test`).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
)

func main() {
	// SIGTERM or SIGINT cancels the context; a second one exits at once.
	os.Exit(run(ctrl.SetupSignalHandler(), filepath.Base(os.Args[0]), os.Args[1:]))
}

// pluginName is the name kubectl finds the binary by on PATH: `kubectl pdguard ARGS` runs
// kubectl-pdguard ARGS.
const pluginName = "kubectl-pdguard"

func run(ctx context.Context, self string, args []string) int {
	root := newRootCommand()
	if strings.TrimSuffix(self, ".exe") == pluginName {
		asPlugin(root)
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var coded *exitCodeError
	if errors.As(err, &coded) {
		if coded.Err != nil {
			fmt.Fprintln(os.Stderr, root.Name()+":", coded.Err)
		}
		return coded.Code
	}
	fmt.Fprintln(os.Stderr, root.Name()+":", err)
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
	root.AddCommand(newServeCommand(), newCheckCommand(), newScanLogCommand(), newCertsCommand(), newReportCommand(), newAuditCommand(), newPolicyCommand(), newVersionCommand(), newStatusCommand(), newSelftestCommand())
	return root
}

// asPlugin names the commands as kubectl shows them. Every subcommand stays: the plugin is
// the same binary, so whatever `webhook X` does, `kubectl pdguard X` does.
func asPlugin(root *cobra.Command) {
	root.Use = "pdguard"
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	// Help and usage then say "kubectl pdguard status", as the user typed it.
	root.Annotations[cobra.CommandDisplayNameAnnotation] = "kubectl pdguard"
	root.Short = "pdguard for operators: status of guarded rollouts, check a release, read the audit, scan a canary log"
}
