package main

import (
	"fmt"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// kubeFlags are kubectl's connection flags (--kubeconfig, --context, -n, --as, ...), from
// cli-runtime, so the commands that talk to a cluster read the kubeconfig as kubectl does,
// also when run as `kubectl pdguard`.
type kubeFlags struct {
	*genericclioptions.ConfigFlags
}

// newKubeFlags leaves out kubectl's --user (a kubeconfig user) when the command has a
// --user of its own.
func newKubeFlags(withUser bool) kubeFlags {
	f := genericclioptions.NewConfigFlags(true)
	if !withUser {
		f.AuthInfoName = nil
	}
	return kubeFlags{f}
}

// namespace is -n, else the current context's namespace, else default; explicit says
// whether -n was given.
func (f kubeFlags) namespace() (ns string, explicit bool, err error) {
	ns, explicit, err = f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", false, fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	return ns, explicit, nil
}

func (f kubeFlags) restConfig() (*rest.Config, error) {
	cfg, err := f.ToRESTConfig()
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
