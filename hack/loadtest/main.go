// Command loadtest measures the admission latency of the real `webhook serve` process as
// the API server sees it: AdmissionReview requests over TLS with HTTP/1.1 keep-alive, timed
// on the client, next to the server's own pdguard_admission_duration_seconds histogram.
//
// It starts etcd and kube-apiserver (the webhook needs them only for its informer caches),
// builds and starts pdguard, and sends it helm-upgrade-shaped changes of the fixture
// StatefulSet directly: each change is a mutate followed by a validate of the patched
// object, the way the API server calls the two webhooks. Most changes are a plain tag
// change (allowed, canary partition pinned); one in ten bundles a config change with it
// and must be denied. Every answer is checked, and any mismatch makes the exit code 1.
//
//	make load    (or: go run ./hack/loadtest --rate 200 --out load.json after make tools)
//
// With --mode bench-load it instead compares pdguard, case by case, with a
// controller-runtime webhook that allows everything (bench.go); with --mode bench-scale it
// measures pdguard's memory with a thousand guarded StatefulSets in the cache (scale.go).
//
//	make bench-load
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// The closed-loop burst is fixed so its throughput figures compare across runs.
const (
	burstConcurrency = 4
	burstDuration    = 5 * time.Second
)

type config struct {
	rate        float64
	duration    time.Duration
	concurrency int
	warmup      time.Duration
	out         string
}

func main() { os.Exit(run()) }

func run() int {
	// pdguardproc installs the chart's RBAC with a controller-runtime client, which
	// otherwise prints a stack trace about a logger nobody set into the figures.
	ctrllog.SetLogger(logr.Discard())
	var cfg config
	var bench benchConfig
	var scale scaleConfig
	mode := flag.String("mode", "load", "load (helm-shaped changes at --rate), bench-load (side by side with a no-op webhook) or bench-scale (memory with many guarded StatefulSets)")
	flag.IntVar(&bench.runs, "runs", 3, "bench-load: interleaved runs per case")
	flag.DurationVar(&bench.duration, "phase", 4*time.Second, "bench-load: length of each saturation and fixed-rate phase")
	flag.Float64Var(&bench.rate, "fixed-rate", 1000, "bench-load: requests per second of the latency phase")
	flag.DurationVar(&bench.slice, "slice", 500*time.Millisecond, "bench-load: the latency phase gives the fixed rate to each server in turn for this long, until each has had --phase (--slice equal to --phase: one turn each)")
	flag.IntVar(&bench.connections, "connections", 8, "bench-load: connections of the saturation phase")
	flag.StringVar(&bench.profileDir, "profile", "", "bench-scale: save pdguard's live heap at each figure in this directory (<figure>.heap.pprof); bench-load: save pdguard's CPU and allocation profiles of each case's first saturation phase in this directory (<case>.cpu.pprof, <case>.allocs.pprof, the live heap after it in <case>.heap.pprof; read them with go tool pprof) and an execution trace and CPU profile of its fixed-rate phase, both servers' turns, whose latencies then carry the tracer's cost (<case>.trace, <case>.fixed-rate.cpu.pprof; go tool trace)")
	flag.StringVar(&bench.only, "cases", "", "bench-load: run only the cases whose name contains this text")
	scale.register()
	flag.Float64Var(&cfg.rate, "rate", 50, "admission requests per second in the open-loop phase (each change is a mutate and a validate, so changes start at rate/2)")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "length of the measured open-loop phase (at most 5m)")
	flag.IntVar(&cfg.concurrency, "concurrency", 4, "changes in flight at most in the open-loop phase")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "open-loop traffic before the measured phase, not counted")
	flag.StringVar(&cfg.out, "out", "", "also write the results as JSON to this file")
	flag.Parse()
	switch *mode {
	case "load":
	case "bench-load":
		return runMode(func(ctx context.Context) (int, error) { return runBench(ctx, bench, logf) }, bench.validate())
	case "bench-scale":
		scale.profileDir = bench.profileDir
		return runMode(func(ctx context.Context) (int, error) { return runScale(ctx, scale, logf) }, scale.validate())
	default:
		fmt.Fprintf(os.Stderr, "loadtest: --mode must be load, bench-load or bench-scale, got %q\n", *mode)
		return 2
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := measure(ctx, cfg)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "loadtest: interrupted")
		return 130
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 1
	}
	res.print(os.Stdout)
	if cfg.out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(cfg.out, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: writing results:", err)
			return 1
		}
	}
	if n := res.errors(); n > 0 {
		fmt.Fprintf(os.Stderr, "loadtest: %d requests failed or got the wrong answer\n", n)
		return 1
	}
	return 0
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// runMode runs one of the benchmark modes, which print their own tables; failures are
// wrong answers, which make the exit code 1.
func runMode(measure func(context.Context) (int, error), invalid error) int {
	if invalid != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", invalid)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failures, err := measure(ctx)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "loadtest: interrupted")
		return 130
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		return 1
	case failures > 0:
		fmt.Fprintf(os.Stderr, "loadtest: %d requests failed or got the wrong answer\n", failures)
		return 1
	}
	return 0
}

func (c benchConfig) validate() error {
	var errs []error
	if c.runs < 1 || c.runs > 9 {
		errs = append(errs, fmt.Errorf("--runs must be in [1, 9], got %d", c.runs))
	}
	if c.duration <= 0 || c.duration > time.Minute {
		errs = append(errs, fmt.Errorf("--phase must be in (0, 1m], got %s", c.duration))
	}
	if c.slice < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--slice must be at least 100ms, got %s", c.slice))
	}
	if c.rate <= 0 || c.rate > 5000 {
		errs = append(errs, fmt.Errorf("--fixed-rate must be in (0, 5000], got %v", c.rate))
	}
	if c.connections < 1 || c.connections > 64 {
		errs = append(errs, fmt.Errorf("--connections must be in [1, 64], got %d", c.connections))
	}
	return errors.Join(errs...)
}

func (c config) validate() error {
	var errs []error
	// The upper bounds keep a mistyped flag from flooding a shared machine.
	if c.rate <= 0 || c.rate > 2000 {
		errs = append(errs, fmt.Errorf("--rate must be in (0, 2000], got %v", c.rate))
	}
	if c.duration <= 0 || c.duration > 5*time.Minute {
		errs = append(errs, fmt.Errorf("--duration must be in (0, 5m], got %s", c.duration))
	}
	if c.concurrency < 1 || c.concurrency > 64 {
		errs = append(errs, fmt.Errorf("--concurrency must be in [1, 64], got %d", c.concurrency))
	}
	if c.warmup < 0 || c.warmup > time.Minute {
		errs = append(errs, fmt.Errorf("--warmup must be in [0, 1m], got %s", c.warmup))
	}
	if flag.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	return errors.Join(errs...)
}

// measure owns the control plane and the server: whatever happens, both are stopped
// before it returns.
func measure(ctx context.Context, cfg config) (res *results, err error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	// A work dir of our own: the control plane keeps its dir after a failed start, which
	// after Ctrl-C is litter, while after a wrong answer pdguard's log is worth keeping.
	workDir, err := os.MkdirTemp("", "pdguard-loadtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if ctx.Err() == nil && (err != nil || res.errors() > 0) {
			logf("loadtest: logs kept in %s", workDir)
			return
		}
		if rmErr := os.RemoveAll(workDir); rmErr != nil {
			logf("loadtest: %v", rmErr)
		}
	}()
	logf("loadtest: building pdguard")
	binary, err := pdguardproc.Build(ctx, root)
	if err != nil {
		return nil, err
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{WorkDir: workDir, Logf: logf})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			logf("loadtest: stopping the control plane: %v", err)
		}
	}()
	srv, err := pdguardproc.Start(ctx, cp, pdguardproc.Options{
		Binary: binary,
		// Info logs one line per decision; at these rates that is the disk being measured.
		Args:             []string{"--log-level=error"},
		SkipRegistration: true,
	})
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	logf("loadtest: pdguard serving at %s", srv.URL)

	c, err := newClient(srv, cfg.concurrency)
	if err != nil {
		return nil, err
	}
	defer c.close()
	mix, err := prepare(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("the first requests already went wrong, so no load was sent: %w", err)
	}

	res = &results{Rate: cfg.rate, Concurrency: cfg.concurrency, BundledEvery: bundledEvery}
	if cfg.warmup > 0 {
		logf("loadtest: warming up for %s", cfg.warmup)
		if err := res.warm(openLoop(ctx, c, mix, cfg.rate, cfg.warmup, cfg.concurrency)); err != nil {
			return nil, err
		}
	}
	logf("loadtest: open loop at %v requests/s for %s", cfg.rate, cfg.duration)
	res.Open, err = phase(ctx, c, srv.MetricsURL, func() (*recorder, error) {
		return openLoop(ctx, c, mix, cfg.rate, cfg.duration, cfg.concurrency)
	})
	if err != nil {
		return nil, err
	}
	if cfg.warmup > 0 {
		// The open loop rarely has more than one or two changes in flight, so the burst
		// would otherwise pay for the handshakes of its extra connections.
		if err := res.warm(closedLoop(ctx, c, mix, burstConcurrency, min(cfg.warmup, time.Second))); err != nil {
			return nil, err
		}
	}
	logf("loadtest: closed-loop burst, concurrency %d for %s", burstConcurrency, burstDuration)
	res.Burst, err = phase(ctx, c, srv.MetricsURL, func() (*recorder, error) {
		return closedLoop(ctx, c, mix, burstConcurrency, burstDuration)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// warm takes the outcome of warmup traffic: its latencies are not counted, its wrong
// answers are.
func (r *results) warm(rec *recorder, err error) error {
	if err != nil {
		return err
	}
	r.WarmupErrors += rec.errors[rowMutate] + rec.errors[rowValidate]
	r.WarmupErrorSamples = append(r.WarmupErrorSamples, rec.firstErrs...)
	return nil
}

// phase runs one load phase between two scrapes of the server's metrics, so the server's
// figures cover exactly the requests of that phase.
func phase(ctx context.Context, c *client, metricsURL string, load func() (*recorder, error)) (*phaseResult, error) {
	before, err := scrape(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	dials := c.dials.Load()
	began := time.Now()
	rec, err := load()
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(began)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	after, err := scrape(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	return summarize(rec, elapsed, c.dials.Load()-dials, after.minus(before)), nil
}

// repoRoot walks up from the working directory to pdguard's go.mod, so the tool runs
// from anywhere in the tree.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/pdguard/pdguard\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no pdguard go.mod above the working directory")
		}
		dir = parent
	}
}
