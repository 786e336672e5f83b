package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
)

// gcPercent is the GC target serve runs with unless GOGC is set; `make bench` measures the
// decision latency with it. Twice Go's default: with about 10 MiB live, collecting at 100
// took a quarter of a request's CPU (a promotion review: 443 us of CPU at 100, 334 at 200,
// make bench-load), and 200 costs about 10 MiB of RSS (70 MiB against 60). At scale the
// soft memory limit below binds before this target does: with a thousand StatefulSets'
// pods cached, heap in use after load was 34.4 MiB at 100 and 34.9 at 200 (make
// bench-scale).
const gcPercent = 200

// memoryLimitEnv carries the container's memory limit in bytes (the chart sets it from
// resources.limits.memory).
const memoryLimitEnv = "PDGUARD_MEMORY_LIMIT"

// heapShare is the part of the container's limit the Go runtime is held to (the soft
// limit; 48 MiB of the chart's 256 MiB): the rest is the pages mapped from the binary
// (about 30 MiB once start-up's are handed back), TLS buffers, and headroom for what the
// soft limit lets through rather than be OOM-killed, such as the informers' first list at
// start. At 1,000 guarded StatefulSets and 5,000 pods the cache holds about 26 MiB: at half
// the limit the heap then grew to twice that and RSS stayed at 132 MiB; at this share RSS
// was 97 MiB (77 MiB with start-up's pages handed back), for 2,248 requests/s where half
// gave 3,257 (make bench-scale). Below that scale the limit does not bind: 64 connections
// sending tag changes got 3,629 requests/s at this share and 3,521 at half (make bench-load
// BENCHFLAGS='--connections 64 --cases "mutate tag"'). A larger cache makes the collector
// run more often; raise resources.limits.memory with it (README).
const heapShare = 0.1875

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
