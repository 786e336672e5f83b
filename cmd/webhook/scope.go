package main

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// scopeFlags limit pdguard to some namespaces, for a chart installed with Roles there
// instead of a ClusterRole.
type scopeFlags struct {
	namespaces []string
}

func (f *scopeFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.namespaces, "watch-namespaces", nil, "only watch and act on StatefulSets and pods in these namespaces (the chart's rbac.namespaces); empty: every namespace")
}

func (f *scopeFlags) validate() error {
	seen := map[string]bool{}
	for _, ns := range f.namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("--watch-namespaces: %q is not a namespace name: %s", ns, errs[0])
		}
		if seen[ns] {
			return fmt.Errorf("--watch-namespaces: %q is listed twice", ns)
		}
		seen[ns] = true
	}
	return nil
}

// cacheNamespaces is the manager cache's DefaultNamespaces: nil for the whole cluster.
func (f *scopeFlags) cacheNamespaces() map[string]cache.Config {
	if len(f.namespaces) == 0 {
		return nil
	}
	m := make(map[string]cache.Config, len(f.namespaces))
	for _, ns := range f.namespaces {
		m[ns] = cache.Config{}
	}
	return m
}
