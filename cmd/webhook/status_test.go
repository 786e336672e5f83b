package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/status"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/golden"
)

// TestStatusGolden prints an open canary with an InProgress verdict and a settled set in
// every format; -update rewrites testdata/status.
func TestStatusGolden(t *testing.T) {
	sts, pods := openCanary(&rollout.Verdict{Verdict: rollout.VerdictInProgress, ObservedAt: goldenNow.Add(-90 * time.Second)})
	settled := fixture.Live()
	settled.Namespace = "ping-b"
	opts := func(ns, name string) status.Options {
		return status.Options{Namespace: ns, Name: name, Soak: time.Minute, Now: goldenNow}
	}
	observe := rollout.ObserveOptions{Container: fixture.Container, Soak: time.Minute, Now: goldenNow}
	sets := []status.Status{
		status.Of(rollout.Observe(sts, []corev1.Pod{*pods[0], *pods[1]}, observe), opts(sts.Namespace, sts.Name)),
		status.Of(rollout.Observe(settled, []corev1.Pod{*fixture.Pod(settled, 0, fixture.Revision), *fixture.Pod(settled, 1, fixture.Revision)}, observe), opts(settled.Namespace, settled.Name)),
	}
	for _, format := range statusFormats {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			if err := printStatus(&out, format, sets, "verdicts are trusted unchecked: example", true); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata/status", "canary."+format+".golden"), out.String())
		})
	}
}
