package main

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeFlags are kubectl's connection flags (--kubeconfig, --context, -n, --as, ...), from
// client-go's clientcmd, so the commands that talk to a cluster read the kubeconfig as
// kubectl does, also when run as `kubectl pdguard`.
//
// Not cli-runtime's ConfigFlags: its package imports cli-runtime's resource builder and,
// through it, kustomize's plugin loader, which links Go's plugin package. Built with cgo,
// a binary that links plugin is dynamically linked and exports every symbol: 36 MB more
// binary, and 20 MiB more of it resident.
type kubeFlags struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides *clientcmd.ConfigOverrides
	names     clientcmd.ConfigOverrideFlags
}

// newKubeFlags leaves out kubectl's --user (a kubeconfig user) when the command has a
// --user of its own.
func newKubeFlags(withUser bool) kubeFlags {
	names := clientcmd.RecommendedConfigOverrideFlags("")
	names.ClusterOverrideFlags.APIServer.ShortName = "s"
	if !withUser {
		names.ContextOverrideFlags.AuthInfoName = clientcmd.FlagInfo{}
	}
	return kubeFlags{loading: clientcmd.NewDefaultClientConfigLoadingRules(), overrides: &clientcmd.ConfigOverrides{}, names: names}
}

// AddFlags registers the flags on fs.
func (f kubeFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.loading.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "", "Path to the kubeconfig file to use for CLI requests.")
	clientcmd.BindOverrideFlags(f.overrides, fs, f.names)
}

func (f kubeFlags) clientConfig() clientcmd.ClientConfig {
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(f.loading, f.overrides)
}

// namespace is -n, else the current context's namespace, else default; explicit says
// whether -n was given.
func (f kubeFlags) namespace() (ns string, explicit bool, err error) {
	ns, explicit, err = f.clientConfig().Namespace()
	if err != nil {
		return "", false, fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	return ns, explicit, nil
}

func (f kubeFlags) restConfig() (*rest.Config, error) {
	cfg, err := f.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes client configuration (--kubeconfig, KUBECONFIG or ~/.kube/config, --context): %w", err)
	}
	return cfg, nil
}

func (f kubeFlags) clientset() (kubernetes.Interface, error) {
	cfg, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
