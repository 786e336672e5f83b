package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pdguard/pdguard/certs"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// The bench-load mode sends the same AdmissionReviews to pdguard and to a
// controller-runtime webhook that allows everything (hack/noopwebhook), case by case,
// runs interleaved, and prints pdguard's figures as ratios to that baseline.

// Cores the two sides are pinned to when taskset exists: servers on one, this process and
// the control plane on the other, so neither takes the server's CPU.
const (
	serverCPU = "0"
	clientCPU = "1"
)

type benchConfig struct {
	runs        int
	duration    time.Duration
	rate        float64
	connections int
	profileDir  string
	only        string
	// slice is how long one server takes the fixed-rate load before the other's turn.
	slice time.Duration
	// settle waits for pdguard's audit sinks to finish the records of the phase before;
	// set by the run.
	settle func(context.Context) error
	// noise reads the servers' core in the fixed-rate turns; nil when they are not
	// pinned to one. Set by the run.
	noise *noiseMeter
}

// target is one server under test.
type target struct {
	name       string
	client     *client
	metricsURL string
	pid        int
	// pprofURL is the server's /debug/pprof/ when profiles are taken.
	pprofURL string
}

// benchCase is one kind of request; the baseline gets the same body and must allow it.
type benchCase struct {
	name    string
	pdguard request
}

// sample is one run of one case against one server.
type sample struct {
	saturation float64   // requests per second, closed loop
	p50, p99   float64   // ms at the fixed rate
	lagP99     float64   // ms the fixed-rate schedule started late
	noise      hostNoise // of the server's core in its fixed-rate turns
	noiseRead  bool
	latencies  []time.Duration // of the fixed-rate phase
	// stealFree are the fixed-rate latencies of the turns in which the hypervisor took
	// no tick of either core, of turns in all.
	stealFree             []time.Duration
	stealFreeTurns, turns int
	allocsPerReq          float64
	cpuPerReq             float64 // microseconds of the server's CPU, user and system
	rssMiB                float64
	fileMiB               float64 // of rssMiB, the pages mapped from the binary
	heapMiB               float64 // heap in use, read with rssMiB
	errors                int
	firstErr              string
}

func runBench(ctx context.Context, cfg benchConfig, logf func(string, ...any)) (failures int, err error) {
	env, err := startBenchEnv(ctx, logf)
	if err != nil {
		return 0, err
	}
	defer env.stop()
	if err := createCanaryPods(ctx, env.cp); err != nil {
		return 0, err
	}
	// The chart's memory limit, as bench-scale runs it: one GC setting for both.
	args, pprofURL, err := pprofServing(cfg.profileDir)
	if err != nil {
		return 0, err
	}
	pd, base, err := env.startServers(ctx, []string{"PDGUARD_MEMORY_LIMIT=" + chartMemoryLimit}, args, cfg.connections)
	if err != nil {
		return 0, err
	}
	pd.pprofURL = pprofURL
	if env.pinned {
		cfg.noise = &noiseMeter{cpu: serverCPU, clientCPU: clientCPU, pids: []int{pd.pid, base.pid}}
	}
	cfg.settle = func(ctx context.Context) error { return auditSettled(ctx, pd.metricsURL) }
	cases, err := prepareBenchCases(ctx, pd.client)
	if err != nil {
		return 0, fmt.Errorf("the first requests already went wrong, so no load was sent: %w", err)
	}
	cases = slices.DeleteFunc(cases, func(bc benchCase) bool { return !strings.Contains(bc.name, cfg.only) })
	if len(cases) == 0 {
		return 0, fmt.Errorf("--cases %q matches no case", cfg.only)
	}
	targets := []*target{base, pd}
	logf("loadtest: warming up")
	for _, bc := range cases {
		for _, t := range targets {
			r := bc.forTarget(t)
			if _, errs, first := saturate(ctx, t.client, &r, cfg.connections, time.Second); errs > 0 {
				return 0, fmt.Errorf("warmup %s on %s: %d wrong answers, first: %s", bc.name, t.name, errs, first)
			}
		}
	}
	results := map[string]map[string][]sample{}
	for run := range cfg.runs {
		for _, bc := range cases {
			order := targets
			if run%2 == 1 {
				order = []*target{pd, base}
			}
			profile := ""
			if run == 0 && pd.pprofURL != "" {
				profile = filepath.Join(cfg.profileDir, strings.ReplaceAll(bc.name, " ", "-"))
			}
			samples := map[*target]*sample{}
			for _, t := range order {
				logf("loadtest: run %d/%d, %s on %s", run+1, cfg.runs, bc.name, t.name)
				s, err := measureSaturation(ctx, cfg, t, bc, profile)
				if err != nil {
					return 0, err
				}
				samples[t] = &s
			}
			logf("loadtest: run %d/%d, %s, latency at %v requests/s on both in turn", run+1, cfg.runs, bc.name, cfg.rate)
			if err := measureLatency(ctx, cfg, order, bc, samples, profile); err != nil {
				return 0, err
			}
			if results[bc.name] == nil {
				results[bc.name] = map[string][]sample{}
			}
			for _, t := range order {
				results[bc.name][t.name] = append(results[bc.name][t.name], *samples[t])
				failures += samples[t].errors
			}
		}
	}
	printBench(os.Stdout, cfg, cases, results)
	return failures, nil
}

func (bc benchCase) forTarget(t *target) request {
	r := bc.pdguard
	if t.name == baselineName {
		r.check = checkAllowed
	}
	return r
}

// measureSaturation runs one case back to back against one server and reads its
// allocations and memory after; with profile set and t being pdguard, it also saves the
// server's CPU and allocation profiles of the phase (profile.cpu.pprof,
// profile.allocs.pprof) and the live heap after it (profile.heap.pprof).
func measureSaturation(ctx context.Context, cfg benchConfig, t *target, bc benchCase, profile string) (sample, error) {
	r := bc.forTarget(t)
	var s sample
	if t.pprofURL == "" {
		profile = ""
	}
	if err := cfg.settle(ctx); err != nil {
		return s, err
	}
	before, err := scrapeCounter(ctx, t.metricsURL, mallocsMetric)
	if err != nil {
		return s, err
	}
	cpuBefore, err := scrapeCounter(ctx, t.metricsURL, cpuMetric)
	if err != nil {
		return s, err
	}
	secs := "?seconds=" + strconv.Itoa(max(1, int(cfg.duration.Seconds())))
	saved := capture(ctx, t, profile, map[string]string{"profile" + secs: ".cpu.pprof", "allocs" + secs: ".allocs.pprof"})
	n, errs, first := saturate(ctx, t.client, &r, cfg.connections, cfg.duration)
	if err := saved(); err != nil {
		return s, fmt.Errorf("profiling %s: %w", bc.name, err)
	}
	if err := capture(ctx, t, profile, map[string]string{"heap?gc=1": ".heap.pprof"})(); err != nil {
		return s, fmt.Errorf("profiling %s: %w", bc.name, err)
	}
	after, err := scrapeCounter(ctx, t.metricsURL, mallocsMetric)
	if err != nil {
		return s, err
	}
	cpuAfter, err := scrapeCounter(ctx, t.metricsURL, cpuMetric)
	if err != nil {
		return s, err
	}
	s.saturation = float64(n) / cfg.duration.Seconds()
	if n > 0 {
		s.allocsPerReq = (after - before) / float64(n)
		s.cpuPerReq = (cpuAfter - cpuBefore) / float64(n) * 1e6
	}
	s.errors, s.firstErr = errs, first
	if s.rssMiB, err = rssMiB(t.pid); err != nil {
		return s, err
	}
	if s.fileMiB, err = fileRSSMiB(t.pid); err != nil {
		return s, err
	}
	// RSS also holds freed pages the runtime has not yet returned and the binary's
	// text; the heap in use says how much of it the live objects and garbage are.
	heap, err := scrapeCounter(ctx, t.metricsURL, "go_memstats_heap_inuse_bytes")
	if err != nil {
		return s, err
	}
	s.heapMiB = heap / (1 << 20)
	return s, ctx.Err()
}

// measureLatency sends the case at the fixed rate to the servers in turn, a slice at a
// time, until each has had cfg.duration, and adds p50, p99 and the schedule's lag to
// their samples. Taking turns puts both under the same conditions of a shared host: a
// stall of a few seconds, which a phase of its own would give to one server alone, now
// falls on both. With profile set, it saves an execution trace and a CPU profile of
// pdguard over the whole phase, its turns and the baseline's (profile.trace,
// profile.fixed-rate.cpu.pprof); the two servers share a core, so that run's latencies
// carry the tracer's cost on both and say nothing.
func measureLatency(ctx context.Context, cfg benchConfig, order []*target, bc benchCase, samples map[*target]*sample, profile string) (err error) {
	if err := cfg.settle(ctx); err != nil {
		return err
	}
	recs := map[*target]*recorder{}
	for _, t := range order {
		recs[t] = newRecorder()
	}
	slice := min(cfg.slice, cfg.duration)
	turns := int((cfg.duration + slice - 1) / slice)
	var wait []func() error
	for _, t := range order {
		if t.pprofURL != "" && profile != "" {
			secs := "?seconds=" + strconv.Itoa(max(1, int((time.Duration(turns)*slice*time.Duration(len(order))).Seconds())))
			wait = append(wait, capture(ctx, t, profile, map[string]string{"trace" + secs: ".trace", "profile" + secs: ".fixed-rate.cpu.pprof"}))
		}
	}
	for turn := range turns {
		took := time.Duration(turn) * slice
		d := min(slice, cfg.duration-took)
		for _, t := range order {
			r := bc.forTarget(t)
			var before noiseReading
			if cfg.noise != nil {
				if before, err = cfg.noise.read(); err != nil {
					return err
				}
			}
			// fixedRate has returned with all its requests answered when the turn's
			// latencies are read, so the slice is the turn's alone.
			path := bc.pdguard.path
			first := len(recs[t].latencies[path])
			fixedRate(ctx, t.client, &r, cfg.rate, d, recs[t])
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if cfg.noise != nil {
				after, err := cfg.noise.read()
				if err != nil {
					return err
				}
				s := samples[t]
				s.noise.since(before, after)
				s.noiseRead = true
				s.turns++
				if stealFree(before, after) {
					s.stealFreeTurns++
					s.stealFree = append(s.stealFree, recs[t].latencies[path][first:]...)
				}
			}
		}
	}
	for _, w := range wait {
		if err := w(); err != nil {
			return fmt.Errorf("tracing %s: %w", bc.name, err)
		}
	}
	for _, t := range order {
		s, rec, path := samples[t], recs[t], bc.pdguard.path
		s.latencies = rec.latencies[path]
		if q := quantiles(s.latencies); q != nil {
			s.p50, s.p99 = q.P50, q.P99
		}
		if q := quantiles(rec.lags); q != nil {
			s.lagP99 = q.P99
		}
		s.errors += rec.errors[path]
		if s.firstErr == "" && len(rec.firstErrs) > 0 {
			s.firstErr = rec.firstErrs[0]
		}
	}
	return nil
}

// auditSettled waits until pdguard's audit queue is empty and its sinks have written
// nothing for a while. A saturation phase of reported requests leaves up to a queue's worth
// of Events and Reports to write to the API server, which shares these cores: without this
// that backlog landed on whichever phase came next, often another server's.
func auditSettled(ctx context.Context, metricsURL string) error {
	const quiet, most = 300 * time.Millisecond, 30 * time.Second
	deadline := time.Now().Add(most)
	last := -1.0
	for {
		queued, err := scrapeCounter(ctx, metricsURL, "pdguard_audit_queue_length")
		if err != nil {
			return err
		}
		written, err := scrapeCounter(ctx, metricsURL, "pdguard_audit_records_written_total")
		if err != nil {
			return err
		}
		if queued == 0 && written == last {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pdguard's audit sinks were still writing after %s (%.0f records queued)", most, queued)
		}
		last = written
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quiet):
		}
	}
}

// pprofServing is the serve flag that turns on /debug/pprof/ on a free loopback port, and
// its URL, when profiles are to be saved in dir (none when dir is empty).
func pprofServing(dir string) (args []string, url string, err error) {
	if dir == "" {
		return nil, "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	ports, err := controlplane.FreePorts(1)
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	return []string{"--pprof-bind-address", addr}, "http://" + addr + "/debug/pprof/", nil
}

// capture starts saving the server's /debug/pprof endpoints (name and query) into
// profile plus each suffix, and returns a wait for them all; with no profile it saves
// nothing.
func capture(ctx context.Context, t *target, profile string, endpoints map[string]string) (wait func() error) {
	if profile == "" {
		return func() error { return nil }
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(endpoints))
	for endpoint, suffix := range endpoints {
		wg.Go(func() { errs <- fetchProfile(ctx, t.pprofURL+endpoint, profile+suffix) })
	}
	return func() error {
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		return errors.Join(all...)
	}
}

// fetchProfile saves one /debug/pprof answer; the server takes the profile over the
// seconds the URL names, so this returns when the phase it covers has ended.
func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// saturate sends r back to back from workers connections for d: the server's ceiling.
func saturate(ctx context.Context, c *client, r *request, workers int, d time.Duration) (ok, errs int, first string) {
	deadline := time.Now().Add(d)
	var nOK, nErr atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if _, err := c.call(ctx, r); err != nil {
					if ctx.Err() == nil {
						nErr.Add(1)
						once.Do(func() { first = err.Error() })
					}
					continue
				}
				nOK.Add(1)
			}
		})
	}
	wg.Wait()
	return int(nOK.Load()), int(nErr.Load()), first
}

// fixedRateWorkers bounds the requests the fixed-rate phase has in flight. The clients keep
// that many idle connections: with fewer, every burst above the pool opened connections
// that the pool then closed, and the TLS handshakes of that churn (371 in one 4 s phase
// with 12 kept) were measured as admission cost. kube-apiserver multiplexes its webhook
// calls over HTTP/2, and client-go keeps 25 HTTP/1.1 connections per host.
const fixedRateWorkers = 64

// fixedRate starts requests on a fixed schedule whatever the server's speed, for d, into
// rec; a start the workers cannot take on time is recorded as lag.
func fixedRate(ctx context.Context, c *client, r *request, rate float64, d time.Duration, rec *recorder) {
	jobs := make(chan time.Time, 1024)
	var wg sync.WaitGroup
	for range fixedRateWorkers {
		wg.Go(func() {
			for due := range jobs {
				rec.lag(time.Since(due))
				took, err := c.call(ctx, r)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					rec.fail(r.path, err)
					continue
				}
				rec.ok(r.path, took)
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	began := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		due := began.Add(time.Duration(i) * interval)
		if due.Sub(began) >= d {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- due
	}
	close(jobs)
	wg.Wait()
}

const baselineName = "baseline"

// benchEnv is the control plane and the servers started against it; stop ends them all.
type benchEnv struct {
	root, workDir string
	cp            *controlplane.ControlPlane
	stops         []func()
	logf          func(string, ...any)
	pinned        bool
}

func startBenchEnv(ctx context.Context, logf func(string, ...any)) (*benchEnv, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	workDir, err := os.MkdirTemp("", "pdguard-bench-")
	if err != nil {
		return nil, err
	}
	env := &benchEnv{root: root, workDir: workDir, logf: logf}
	env.stops = append(env.stops, func() { _ = os.RemoveAll(workDir) })
	cp, err := controlplane.Start(ctx, controlplane.Options{WorkDir: filepath.Join(workDir, "cp"), Logf: logf})
	if err != nil {
		env.stop()
		return nil, err
	}
	env.cp = cp
	env.stops = append(env.stops, func() {
		if err := cp.Stop(); err != nil {
			logf("loadtest: stopping the control plane: %v", err)
		}
	})
	return env, nil
}

func (e *benchEnv) stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
}

// build compiles a command of this module into the work dir: bin/ may be shared by other
// checkouts of the repository, and the server measured must be this tree's.
func (e *benchEnv) build(ctx context.Context, pkg, name string) (string, error) {
	// pdguardproc finds the chart (its ServiceAccount and RBAC) beside the binary's
	// directory, as in the repository: <dir>/bin/pdguard and <dir>/charts.
	out := filepath.Join(e.workDir, "bin", name)
	charts := filepath.Join(e.workDir, "charts")
	if _, err := os.Lstat(charts); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join(e.root, "charts"), charts); err != nil {
			return "", err
		}
	}
	// As the Dockerfile builds the image's binary, so that RSS is the shipped binary's.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = e.root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// startServers starts pdguard (with env added to its environment and args to its
// flags) and, when connections is above zero, the baseline, each with one core's worth
// of Go scheduler, pinned to serverCPU, and pins this process to clientCPU.
func (e *benchEnv) startServers(ctx context.Context, env, args []string, connections int) (pd, base *target, err error) {
	e.logf("loadtest: building pdguard and the baseline")
	pdBin, err := e.build(ctx, "./cmd/webhook", "pdguard")
	if err != nil {
		return nil, nil, err
	}
	_, haveTaskset := exec.LookPath("taskset")
	e.pinned = haveTaskset == nil && runtime.NumCPU() > 1
	// Children inherit the environment; GOMAXPROCS is read when they start.
	for _, kv := range append([]string{"GOMAXPROCS=1"}, env...) {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return nil, nil, err
		}
	}
	// With the Report CRD the chart can install, so the audit pipeline is the one a
	// cluster with OpenReports (Kyverno, Policy Reporter) runs: log, metrics, Events and
	// Reports.
	if err := pdguardproc.InstallReportCRD(ctx, e.cp, pdguardproc.ChartOf(e.cp, pdBin)); err != nil {
		return nil, nil, err
	}
	srv, err := pdguardproc.Start(ctx, e.cp, pdguardproc.Options{Binary: pdBin, SkipRegistration: true, Args: args})
	if err != nil {
		return nil, nil, err
	}
	e.stops = append(e.stops, srv.Stop)
	c, err := newClientFor(srv.URL, srv.CAPEM, max(connections, fixedRateWorkers))
	if err != nil {
		return nil, nil, err
	}
	pd = &target{name: "pdguard", client: c, metricsURL: srv.MetricsURL, pid: srv.PID()}
	if err := e.pin(pd.pid, serverCPU); err != nil {
		return nil, nil, err
	}
	if connections > 0 {
		noopBin, err := e.build(ctx, "./hack/noopwebhook", "noopwebhook")
		if err != nil {
			return nil, nil, err
		}
		if base, err = e.startBaseline(ctx, noopBin, connections); err != nil {
			return nil, nil, err
		}
		if err := e.pin(base.pid, serverCPU); err != nil {
			return nil, nil, err
		}
	}
	if err := e.pin(os.Getpid(), clientCPU); err != nil {
		return nil, nil, err
	}
	// The control plane goes beside the load generator, as in a cluster, where it runs on
	// other machines: left free, etcd and the apiserver (busy with pdguard's own Reports
	// and Events, or a controller's resync) land on the server core in whichever
	// server's turn it is.
	for name, pid := range e.cp.PIDs() {
		if err := e.pin(pid, clientCPU); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if e.pinned {
		runtime.GOMAXPROCS(1)
	}
	return pd, base, nil
}

// pin moves every thread of pid to cpu; threads started later inherit it.
func (e *benchEnv) pin(pid int, cpu string) error {
	if !e.pinned {
		return nil
	}
	if b, err := exec.Command("taskset", "-a", "-p", "-c", cpu, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset %d to cpu %s: %w: %s", pid, cpu, err, b)
	}
	return nil
}

func (e *benchEnv) startBaseline(ctx context.Context, binary string, connections int) (*target, error) {
	bundle, err := certs.Issue(certs.Request{IPAddresses: []string{"127.0.0.1"}, DNSNames: []string{"localhost"}})
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(e.workDir, "noop-certs")
	if err := bundle.WriteDir(certDir); err != nil {
		return nil, err
	}
	ports, err := controlplane.FreePorts(2)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(e.workDir, "noopwebhook.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary,
		"--kubeconfig", e.cp.KubeconfigPath(), "--cert-dir", certDir,
		"--port", strconv.Itoa(ports[0]), "--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(ports[1]))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	e.stops = append(e.stops, func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
	})
	c, err := newClientFor("https://127.0.0.1:"+strconv.Itoa(ports[0]), bundle.CAPEM, max(connections, fixedRateWorkers))
	if err != nil {
		return nil, err
	}
	t := &target{name: baselineName, client: c, metricsURL: "http://127.0.0.1:" + strconv.Itoa(ports[1]) + "/metrics", pid: cmd.Process.Pid}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := scrapeCounter(ctx, t.metricsURL, mallocsMetric)
		if err == nil {
			return t, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("baseline webhook not serving metrics: %w\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const mallocsMetric = "go_memstats_mallocs_total"

// cpuMetric is the server's user and system CPU time, from /proc by Prometheus's process
// collector, which both servers register: at saturation, divided by the requests
// answered, the cost of one request that host noise moves least.
const cpuMetric = "process_cpu_seconds_total"

// scrapeCounter reads one unlabelled sample from a Prometheus endpoint.
func scrapeCounter(ctx context.Context, url, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s sample", url, name)
}

// rssMiB is the resident set of a process, from /proc.
func rssMiB(pid int) (float64, error) { return statusMiB(pid, "VmRSS") }

// fileRSSMiB is the part of the resident set mapped from files: the binary's pages the
// process has touched, which no GC setting changes.
func fileRSSMiB(pid int) (float64, error) { return statusMiB(pid, "RssFile") }

func statusMiB(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func median(samples []sample, f func(sample) float64) float64 {
	vs := make([]float64, len(samples))
	for i, s := range samples {
		vs[i] = f(s)
	}
	return middle(vs)
}

// middle is the median of vs (the upper one of an even count), sorting vs.
func middle(vs []float64) float64 {
	slices.Sort(vs)
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)/2]
}

func printBench(w io.Writer, cfg benchConfig, cases []benchCase, results map[string]map[string][]sample) {
	fmt.Fprintf(w, "\nMedians of %d interleaved runs; saturation: %d connections back to back for %s; latency: %v requests/s for %s, in turns of %s.\n",
		cfg.runs, cfg.connections, cfg.duration, cfg.rate, cfg.duration, min(cfg.slice, cfg.duration))
	fmt.Fprintf(w, "x base is pdguard over the baseline (%s, a controller-runtime webhook that allows everything). allocs/req from %s, CPU us/req from %s, both at saturation.\n", "hack/noopwebhook", mallocsMetric, cpuMetric)
	fmt.Fprintf(w, "pdguard runs with PDGUARD_MEMORY_LIMIT=%s (the chart's default limit); each phase starts once its audit sinks have written the last one's records. Load: %s\n\n", chartMemoryLimit, loadAverage())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tserver\tsat req/s\tx base\tp50 ms\tp99 ms\tx base\tallocs/req\tCPU us/req\tRSS MiB\tfile MiB\theap MiB\tlag p99 ms\terrors\t")
	var errs []string
	for _, bc := range cases {
		byServer := results[bc.name]
		baseSat := median(byServer[baselineName], func(s sample) float64 { return s.saturation })
		baseP99 := median(byServer[baselineName], func(s sample) float64 { return s.p99 })
		for _, name := range []string{baselineName, "pdguard"} {
			ss := byServer[name]
			sat := median(ss, func(s sample) float64 { return s.saturation })
			p99 := median(ss, func(s sample) float64 { return s.p99 })
			n := 0
			for _, s := range ss {
				n += s.errors
				if s.firstErr != "" {
					errs = append(errs, fmt.Sprintf("%s on %s: %s", bc.name, name, s.firstErr))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.2f\t%d\t\n", bc.name, name,
				sat, ratio(sat, baseSat),
				median(ss, func(s sample) float64 { return s.p50 }), p99, ratio(p99, baseP99),
				median(ss, func(s sample) float64 { return s.allocsPerReq }),
				median(ss, func(s sample) float64 { return s.cpuPerReq }),
				median(ss, func(s sample) float64 { return s.rssMiB }),
				median(ss, func(s sample) float64 { return s.fileMiB }),
				median(ss, func(s sample) float64 { return s.heapMiB }),
				median(ss, func(s sample) float64 { return s.lagP99 }), n)
		}
	}
	tw.Flush()
	// Each run measures both servers' latency in the same turns, so a run's ratio is a
	// paired comparison; its spread says how far the host moved the medians above.
	// In brackets, what the host took of the servers' core in each one's turns: a run
	// whose ratio stands out next to a large difference there was decided by the host.
	fmt.Fprintln(w, "\np99 x base, run by run (both servers in the same turns); in brackets, ms of the servers' core the hypervisor stole / other processes used, in the baseline's turns | pdguard's:")
	for _, bc := range cases {
		base, pd := results[bc.name][baselineName], results[bc.name]["pdguard"]
		var runs []string
		var paired []float64
		for i := range min(len(base), len(pd)) {
			r := ratio(pd[i].p99, base[i].p99)
			run := fmt.Sprintf("%.2f", r)
			if base[i].noiseRead && pd[i].noiseRead {
				run += fmt.Sprintf(" [%.0f/%.0f | %.0f/%.0f]", base[i].noise.stealMs, base[i].noise.otherMs, pd[i].noise.stealMs, pd[i].noise.otherMs)
			}
			runs = append(runs, run)
			paired = append(paired, r)
		}
		fmt.Fprintf(w, "  %-34s %s (median %.2f)\n", bc.name, strings.Join(runs, "  "), middle(paired))
	}
	printPooled(w, cases, results)
	for _, e := range errs {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

// printPooled prints each case's p99 over the latencies of all runs together, and over
// those of the turns in which the hypervisor took no tick from either core: the servers'
// own tail, without the stalls of the host that decide a single run's p99.
func printPooled(w io.Writer, cases []benchCase, results map[string]map[string][]sample) {
	pooled := func(ss []sample, of func(sample) []time.Duration) float64 {
		var all []time.Duration
		for _, s := range ss {
			all = append(all, of(s)...)
		}
		if q := quantiles(all); q != nil {
			return q.P99
		}
		return 0
	}
	turns := func(ss []sample) (free, all int) {
		for _, s := range ss {
			free, all = free+s.stealFreeTurns, all+s.turns
		}
		return free, all
	}
	fmt.Fprintln(w, "\np99 of all runs pooled, ms, baseline | pdguard (x base); and over the turns the hypervisor stole no tick of either core in:")
	for _, bc := range cases {
		base, pd := results[bc.name][baselineName], results[bc.name]["pdguard"]
		all := func(s sample) []time.Duration { return s.latencies }
		free := func(s sample) []time.Duration { return s.stealFree }
		b, p := pooled(base, all), pooled(pd, all)
		line := fmt.Sprintf("  %-34s all turns %.2f | %.2f (%.2f)", bc.name, b, p, ratio(p, b))
		bFree, bTurns := turns(base)
		pFree, pTurns := turns(pd)
		if bTurns > 0 && pTurns > 0 {
			bq, pq := pooled(base, free), pooled(pd, free)
			line += fmt.Sprintf("; steal-free turns %.2f | %.2f (%.2f), %d of %d | %d of %d turns", bq, pq, ratio(pq, bq), bFree, bTurns, pFree, pTurns)
		}
		fmt.Fprintln(w, line)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return fmt.Sprintf("load average %s %s %s on %d CPUs", f[0], f[1], f[2], runtime.NumCPU())
}
