package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkMutateValidate measures one admission round of a version change on two
// replicas: the mutating webhook's decision, then the validating webhook's on the mutated
// object. Besides ns/op it reports the p50 and p99 of the individual rounds, which is what
// the API server's webhook timeout sees; run it with -benchtime=20000x for a stable p99.
func BenchmarkMutateValidate(b *testing.B) {
	e := newEngine(b, Options{})
	ctx := context.Background()
	in := versionChange()
	var validateInput *Input

	round := func() {
		m, err := e.Mutate(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if validateInput == nil {
			validateInput = mutated(in, m)
		}
		v, err := e.Validate(ctx, validateInput)
		if err != nil {
			b.Fatal(err)
		}
		if m.Partition == nil || *m.Partition != 1 || !v.Allowed {
			b.Fatalf("unexpected decision: %+v %+v", m, v)
		}
	}

	latencies := make([]time.Duration, 0, 20000)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		round()
		latencies = append(latencies, time.Since(start))
	}

	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))].Nanoseconds())
	}
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}
