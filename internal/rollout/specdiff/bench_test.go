package specdiff

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// BenchmarkConfigChanges is the admission path: a stored object against an update that
// brings a new version and a config change, both already defaulted by the API server.
func BenchmarkConfigChanges(b *testing.B) {
	old := fixture.Live()
	updated := fixture.WithTag(fixture.Live(), "2602-10.3.0.3")
	product(updated).Env = []corev1.EnvVar{{Name: "MAX_HEAP_SIZE", Value: "4g"}}
	opts := DefaultOptions()
	if got, want := ConfigChanges(old, updated, opts), []string{"spec.template.spec.containers[pingdirectory].env"}; !slices.Equal(got, want) {
		b.Fatalf("ConfigChanges = %q, want %q", got, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		ConfigChanges(old, updated, opts)
	}
}

// BenchmarkConfigChangesHelmTemplate is `webhook check` with chart output on one side: the
// comparison copies the parts that lack defaults.
func BenchmarkConfigChangesHelmTemplate(b *testing.B) {
	old, updated := fixture.Live(), fixture.WithTag(fixture.HelmTemplate(), "2602-10.3.0.3")
	opts := DefaultOptions()
	b.ReportAllocs()
	for b.Loop() {
		ConfigChanges(old, updated, opts)
	}
}

// BenchmarkNormalizedCopies is what ConfigChanges would cost if it normalized deep copies
// of both objects before comparing: the price its copy-on-write defaulting avoids.
func BenchmarkNormalizedCopies(b *testing.B) {
	old, updated := fixture.Live(), fixture.WithTag(fixture.HelmTemplate(), "2602-10.3.0.3")
	opts := DefaultOptions()
	b.ReportAllocs()
	for b.Loop() {
		a, c := old.DeepCopy(), updated.DeepCopy()
		Normalize(a)
		Normalize(c)
		ConfigChanges(a, c, opts)
	}
}

func BenchmarkVersionChanged(b *testing.B) {
	old, updated := fixture.Live(), fixture.WithTag(fixture.Live(), "2602-10.3.0.3")
	opts := DefaultOptions()
	b.ReportAllocs()
	for b.Loop() {
		VersionChanged(old, updated, opts)
	}
}
