package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkMutateValidate measures one admission round of a version change on two
// replicas: the mutating webhook's decision, then the validating webhook's on the mutated
// object, as the server answers it (fast-path) and through the Rego policy (policy).
// Besides ns/op it reports the p50 and p99 of the individual rounds, which is what the API
// server's webhook timeout sees; run it with -benchtime=20000x for a stable p99.
func BenchmarkMutateValidate(b *testing.B) {
	e := newEngine(b, Options{})
	c := e.current.Load()
	b.Run("fast-path", func(b *testing.B) { benchmarkRound(b, e.Mutate, e.Validate) })
	b.Run("policy", func(b *testing.B) { benchmarkRound(b, c.evalMutate, c.evalValidate) })
}

func benchmarkRound(b *testing.B, mutate func(context.Context, *Input) (Mutation, error), validate func(context.Context, *Input) (Validation, error)) {
	ctx := context.Background()
	in := versionChange()
	var validateInput *Input

	round := func() {
		m, err := mutate(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if validateInput == nil {
			validateInput = mutated(in, m)
		}
		v, err := validate(ctx, validateInput)
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
