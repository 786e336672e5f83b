package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// The bench-scale mode fills the API server with guarded StatefulSets and their Ready
// pods, starts pdguard with the chart's environment, and prints its memory when ready,
// after an idle minute, and after admission load.

// chartMemoryLimit is PDGUARD_MEMORY_LIMIT as the chart sets it from its default memory
// limit (256Mi).
const chartMemoryLimit = "268435456"

type scaleConfig struct {
	sets, podsPerSet int
	idle             time.Duration
	requests         int
	// profileDir, when set, gets pdguard's live heap at each figure (<figure>.heap.pprof).
	profileDir string
}

func (c *scaleConfig) register() {
	flag.IntVar(&c.sets, "statefulsets", 1000, "bench-scale: guarded StatefulSets to create")
	flag.IntVar(&c.podsPerSet, "pods-per-set", 5, "bench-scale: Ready pods per StatefulSet")
	flag.DurationVar(&c.idle, "idle", time.Minute, "bench-scale: wait between the ready and the idle figure")
	flag.IntVar(&c.requests, "requests", 20000, "bench-scale: mutate requests, and as many validate requests, after the idle wait")
}

func (c scaleConfig) validate() error {
	var errs []error
	// Bounds keep a mistyped flag from filling a shared machine's etcd.
	if c.sets < 1 || c.sets > 2000 {
		errs = append(errs, fmt.Errorf("--statefulsets must be in [1, 2000], got %d", c.sets))
	}
	if c.podsPerSet < 1 || c.podsPerSet > 10 {
		errs = append(errs, fmt.Errorf("--pods-per-set must be in [1, 10], got %d", c.podsPerSet))
	}
	if c.idle < 0 || c.idle > 10*time.Minute {
		errs = append(errs, fmt.Errorf("--idle must be in [0, 10m], got %s", c.idle))
	}
	if c.requests < 1 || c.requests > 100000 {
		errs = append(errs, fmt.Errorf("--requests must be in [1, 100000], got %d", c.requests))
	}
	return errors.Join(errs...)
}

func runScale(ctx context.Context, cfg scaleConfig, logf func(string, ...any)) (failures int, err error) {
	env, err := startBenchEnv(ctx, logf)
	if err != nil {
		return 0, err
	}
	defer env.stop()
	began := time.Now()
	if err := createScaleObjects(ctx, env.cp, cfg); err != nil {
		return 0, err
	}
	logf("loadtest: created %d StatefulSets and %d pods in %s", cfg.sets, cfg.sets*cfg.podsPerSet, time.Since(began).Round(time.Second))
	args, pprofURL, err := pprofServing(cfg.profileDir)
	if err != nil {
		return 0, err
	}
	pd, _, err := env.startServers(ctx, []string{"PDGUARD_MEMORY_LIMIT=" + chartMemoryLimit}, args, 0)
	if err != nil {
		return 0, err
	}
	type figure struct {
		at                              string
		rss, file, heap, retained, goal float64
	}
	var figures []figure
	record := func(at string) error {
		rss, err := rssMiB(pd.pid)
		if err != nil {
			return err
		}
		file, err := fileRSSMiB(pd.pid)
		if err != nil {
			return err
		}
		// Heap in use, heap the runtime holds free without having returned it to the OS,
		// and the heap size that triggers the next collection: what the GC setting decides.
		var stats [4]float64
		for i, name := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_next_gc_bytes"} {
			if stats[i], err = scrapeCounter(ctx, pd.metricsURL, name); err != nil {
				return err
			}
			stats[i] /= 1 << 20
		}
		figures = append(figures, figure{at: at, rss: rss, file: file, heap: stats[0], retained: stats[1] - stats[2], goal: stats[3]})
		logf("loadtest: %s: RSS %.0f MiB", at, rss)
		if pprofURL == "" {
			return nil
		}
		// gc=1: the heap as a collection leaves it, the part the cache and engine hold.
		return fetchProfile(ctx, pprofURL+"heap?gc=1", filepath.Join(cfg.profileDir, strings.ReplaceAll(at, " ", "-")+".heap.pprof"))
	}
	if err := record("ready"); err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(cfg.idle):
	}
	if err := record(fmt.Sprintf("idle %s", cfg.idle)); err != nil {
		return 0, err
	}
	cases, err := prepareBenchCases(ctx, pd.client)
	if err != nil {
		return 0, err
	}
	// cases[0] and [1] are the tag change and the validation of its patched object.
	logf("loadtest: %d mutate and %d validate requests", cfg.requests, cfg.requests)
	var sent atomic.Int64
	var wg sync.WaitGroup
	var errs atomic.Int64
	loadStart := time.Now()
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil && sent.Add(1) <= int64(cfg.requests) {
				for _, r := range []*request{&cases[0].pdguard, &cases[1].pdguard} {
					if _, err := pd.client.call(ctx, r); err != nil && ctx.Err() == nil {
						if errs.Add(1) == 1 {
							logf("loadtest: %v", err)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	loadTook := time.Since(loadStart)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err := record("after load"); err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stdout, "\npdguard with %d guarded StatefulSets and %d Ready pods in the API server, PDGUARD_MEMORY_LIMIT=%s (the chart's default limit)\n", cfg.sets, cfg.sets*cfg.podsPerSet, chartMemoryLimit)
	fmt.Fprintf(os.Stdout, "Load: %s\n", loadAverage())
	for _, f := range figures {
		fmt.Fprintf(os.Stdout, "  %-14s RSS %6.1f MiB (file-backed %5.1f)   heap in use %6.1f MiB   free, not returned %5.1f MiB   next GC at %6.1f MiB\n",
			f.at, f.rss, f.file, f.heap, f.retained, f.goal)
	}
	fmt.Fprintf(os.Stdout, "  load: %d requests in %.1fs, %.0f requests/s from 4 connections\n", 2*cfg.requests, loadTook.Seconds(), float64(2*cfg.requests)/loadTook.Seconds())
	fmt.Fprintf(os.Stdout, "  wrong answers: %d\n", errs.Load())
	return int(errs.Load()), nil
}

// createScaleObjects stores the sets in ten namespaces, each with podsPerSet Ready pods
// on its current revision, as a settled cluster has them.
func createScaleObjects(ctx context.Context, cp *controlplane.ControlPlane, cfg scaleConfig) error {
	rc := cp.RESTConfig()
	rc.QPS, rc.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	const namespaces = 10
	for i := range namespaces {
		if err := ensureNamespace(ctx, cs, fmt.Sprintf("scale-%d", i)); err != nil {
			return err
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				if err := createScaleSet(ctx, cs, fmt.Sprintf("scale-%d", i%namespaces), fmt.Sprintf("pd-%04d", i), int32(cfg.podsPerSet)); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	for i := range cfg.sets {
		if ctx.Err() != nil || firstErr != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func createScaleSet(ctx context.Context, cs kubernetes.Interface, namespace, name string, replicas int32) error {
	sts := fixture.Live()
	sts.Namespace, sts.Name = namespace, name
	sts.ResourceVersion, sts.UID = "", ""
	sts.Spec.Replicas = &replicas
	status := sts.Status
	created, err := cs.AppsV1().StatefulSets(namespace).Create(ctx, sts, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating statefulset %s/%s: %w", namespace, name, err)
	}
	status.Replicas, status.ReadyReplicas, status.CurrentReplicas, status.UpdatedReplicas, status.AvailableReplicas = replicas, replicas, replicas, replicas, replicas
	status.ObservedGeneration = created.Generation
	created.Status = status
	if _, err := cs.AppsV1().StatefulSets(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting the status of statefulset %s/%s: %w", namespace, name, err)
	}
	for i := range replicas {
		if err := createReadyPod(ctx, cs, fixture.Pod(created, i, status.CurrentRevision)); err != nil {
			return err
		}
	}
	return nil
}
