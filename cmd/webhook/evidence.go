package main

import (
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/evidence"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/policy"
)

type evidenceFlags struct {
	disabled      bool
	autoPromote   bool
	logLimitBytes int64
	recheck       time.Duration
}

func (f *evidenceFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.disabled, "disable-evidence-controller", false, "serve admission only; another replica or process writes canary verdicts")
	fs.BoolVar(&f.autoPromote, "auto-promote", false, "promote every proven canary one ordinal at a time (a StatefulSet opts in alone with pdguard.io/auto-promote: \"true\")")
	fs.Int64Var(&f.logLimitBytes, "log-limit-bytes", 4<<20, "most bytes of a canary container's log read per evaluation")
	fs.DurationVar(&f.recheck, "evidence-recheck", 10*time.Second, "how often a canary whose replace-profile is still running is read again")
}

func (f *evidenceFlags) validate() error {
	if f.logLimitBytes < 4096 {
		return fmt.Errorf("--log-limit-bytes must be at least 4096, got %d", f.logLimitBytes)
	}
	if f.recheck < time.Second {
		return fmt.Errorf("--evidence-recheck must be at least 1s, got %s", f.recheck)
	}
	return nil
}

func setupEvidence(mgr ctrl.Manager, f *evidenceFlags, opts policy.Config, sel labels.Selector, key rollout.VerdictKey, log logr.Logger, rec *audit.Pipeline) error {
	if f.disabled {
		log.Info("evidence controller disabled: verdicts must come from elsewhere")
		return nil
	}
	return evidence.SetupWithManager(mgr, key, evidence.Options{
		Selector:       sel,
		Container:      opts.Diff.Container,
		LogLimitBytes:  f.logLimitBytes,
		Recheck:        f.recheck,
		AutoPromote:    f.autoPromote,
		Soak:           opts.Soak,
		CanaryReplicas: opts.CanaryReplicas,
	}, rec, rec.Metrics())
}
