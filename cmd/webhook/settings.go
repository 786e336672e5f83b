package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pdguard/pdguard/internal/rollout/specdiff"
	"github.com/pdguard/pdguard/policy"
)

// guardFlags are the decision settings shared by `serve` and `check`, so an offline check
// decides exactly as the server configured with the same flags.
type guardFlags struct {
	selector          string
	container         string
	canaryReplicas    int32
	singleReplica     string
	enforcement       string
	overrideGroups    []string
	soak              time.Duration
	policyDir         string
	ignoreLabels      []string
	ignoreAnnotations []string
}

func (f *guardFlags) register(fs *pflag.FlagSet) {
	d := policy.DefaultConfig()
	fs.StringVar(&f.selector, "selector", "app.kubernetes.io/name=pingdirectory", "label selector of the StatefulSets (and their pods) that pdguard guards")
	fs.StringVar(&f.container, "container", d.Diff.Container, "name of the PingDirectory container in the pod template")
	fs.Int32Var(&f.canaryReplicas, "canary-replicas", d.CanaryReplicas, "how many of the highest ordinals a version change updates first")
	fs.StringVar(&f.singleReplica, "single-replica", d.SingleReplica, "what to do with a version change on a 1-replica StatefulSet, where no canary is possible: warn or deny")
	fs.StringVar(&f.enforcement, "enforcement", d.Enforcement, "enforce (deny unsafe changes, pin the canary), warn (allow what enforce would deny, with a warning, and still pin the canary: pinning refuses nothing) or dryrun (change and refuse nothing, log and audit only); a StatefulSet's pdguard.io/enforcement annotation can only make it stricter")
	fs.StringSliceVar(&f.overrideGroups, "override-groups", d.OverrideGroups, "users or groups whose pdguard.io/override-reason annotation lifts the rules")
	fs.DurationVar(&f.soak, "soak", d.Soak, "how long a canary pod must have been Ready before its verdict can promote the rollout")
	fs.StringVar(&f.policyDir, "policy-dir", "", "directory of extra Rego modules (package pdguard.validate: violation / advisory rules), reloaded on change")
	fs.StringSliceVar(&f.ignoreLabels, "ignore-template-labels", d.Diff.IgnoreLabels, "pod template labels whose change is not a configuration change")
	fs.StringSliceVar(&f.ignoreAnnotations, "ignore-template-annotations", d.Diff.IgnoreAnnotations, "pod template annotations whose change is not a configuration change")
}

func (f *guardFlags) options() (policy.Config, labels.Selector, error) {
	sel, err := labels.Parse(f.selector)
	if err != nil {
		return policy.Config{}, nil, fmt.Errorf("--selector %q: %w", f.selector, err)
	}
	if sel.Empty() {
		return policy.Config{}, nil, fmt.Errorf("--selector must not be empty: pdguard would guard every StatefulSet")
	}
	diff := specdiff.DefaultOptions()
	diff.Container = f.container
	diff.IgnoreLabels = f.ignoreLabels
	diff.IgnoreAnnotations = f.ignoreAnnotations
	opts := policy.Config{
		CanaryReplicas: f.canaryReplicas,
		SingleReplica:  strings.ToLower(f.singleReplica),
		Enforcement:    strings.ToLower(f.enforcement),
		OverrideGroups: f.overrideGroups,
		Soak:           f.soak,
		Diff:           diff,
	}
	if err := opts.Validate(); err != nil {
		return policy.Config{}, nil, err
	}
	return opts, sel, nil
}

func (f *guardFlags) engine() (*policy.Engine, error) {
	return policy.New(policy.Options{PolicyDir: f.policyDir})
}
