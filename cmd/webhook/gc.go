package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
)

// gcPercent is the GC target serve runs with unless GOGC is set; `make bench` measures the
// decision latency with it. Go's default: since the policy's fast path answers the common
// requests, a request allocates about 40 KB and little CPU goes to collecting it, while a
// higher target holds the garbage of the whole pod cache (at 200, 65 MiB of heap for 37
// MiB live with a thousand StatefulSets' pods cached).
const gcPercent = 100

// memoryLimitEnv carries the container's memory limit in bytes (the chart sets it from
// resources.limits.memory).
const memoryLimitEnv = "PDGUARD_MEMORY_LIMIT"

// heapShare is the part of the container's limit the Go runtime may grow to before the
// collector works harder: the rest is the pages mapped from the binary, TLS buffers and
// headroom. The limit counts goroutine stacks and the requests in flight, which grow with
// the connections the API server opens, so it must leave room for them: at a quarter of
// the chart's 256 MiB, 64 connections sending tag changes got 553 requests/s where 8 got
// over 2,000, the collector running without pause; at half, 1,424 (make bench-load
// BENCHFLAGS='--connections 64 --cases "mutate tag"', medians of 3).
const heapShare = 0.5

// setGC applies gcPercent and the soft memory limit; GOGC and GOMEMLIMIT in the
// environment still win.
func setGC() error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	raw := os.Getenv(memoryLimitEnv)
	if raw == "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	limit, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || limit <= 0 {
		return fmt.Errorf("%s must be the container's memory limit in bytes, got %q", memoryLimitEnv, raw)
	}
	debug.SetMemoryLimit(int64(float64(limit) * heapShare))
	return nil
}
