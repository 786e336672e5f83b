package webhook

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/policy"
)

// BenchmarkDecision is the webhook's share of one admission of a helm upgrade that
// changes the tag of a chart-shaped StatefulSet: the mutating decision on the request,
// then the validating decision on the object the API server patched.
func BenchmarkDecision(b *testing.B) {
	g := newGuard(b, nil)
	req, patched := decisionRequests(b, g)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Mutate(ctx, req); err != nil {
			b.Fatal(err)
		}
		if _, err := g.Validate(ctx, patched); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck is `webhook check` on the same change: both decisions and the patch
// applied in between, as the API server would.
func BenchmarkCheck(b *testing.B) {
	g := newGuard(b, nil)
	req, _ := decisionRequests(b, g)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func decisionRequests(b *testing.B, g *Guard) (req, patched *policy.Request) {
	req = &policy.Request{Operation: "UPDATE", Old: fixture.Live(), New: fixture.WithTag(fixture.Live(), "9.1.0.0-latest"), User: admin}
	m, err := g.Mutate(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	obj, err := ApplyPatch(req.New, m.Patch)
	if err != nil {
		b.Fatal(err)
	}
	p := *req
	p.New = obj
	return req, &p
}

// BenchmarkPromotionGate is the validating decision of a promotion during an open canary
// with two pods and a Succeeded verdict: the path with the most evidence to read.
func BenchmarkPromotionGate(b *testing.B) {
	g := newGuard(b, nil)
	live := openCanary()
	pods := canaryPods(live, time.Hour, nil)
	pods = canaryPods(live, time.Hour, succeededFor(canaryRev, containerID(pods[1])))
	req := &policy.Request{Operation: "UPDATE", Old: live, New: withPartition(openCanaryNoStatus(), 0), Pods: pods, User: admin}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Validate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecisionLatency reports the p50 and p99 of single mutate+validate decisions.
func BenchmarkDecisionLatency(b *testing.B) {
	g := newGuard(b, nil)
	req, patched := decisionRequests(b, g)
	ctx := context.Background()
	samples := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if _, err := g.Mutate(ctx, req); err != nil {
			b.Fatal(err)
		}
		if _, err := g.Validate(ctx, patched); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	if n := len(samples); n > 0 {
		b.ReportMetric(float64(samples[n/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(samples[n*99/100].Nanoseconds()), "p99-ns")
	}
}
