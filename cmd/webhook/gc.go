package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
)

// gcPercent is the GC target serve runs with unless GOGC is set; `make bench` measures the
// decision latency with it. A request allocates about 80 KB; at Go's default a collection
// lands every few dozen requests and costs a fifth of the throughput on a webhook pod's
// small CPU share, while 800 held several hundred MiB of garbage once a thousand
// StatefulSets' pods were cached. 200, bounded by the soft limit below, keeps both.
const gcPercent = 200

// memoryLimitEnv carries the container's memory limit in bytes (the chart sets it from
// resources.limits.memory).
const memoryLimitEnv = "PDGUARD_MEMORY_LIMIT"

// heapShare is the part of the container's limit the Go heap may grow to before the
// collector works harder: the rest is the runtime, stacks, TLS buffers and headroom, and
// the heap a thousand guarded StatefulSets leave live stays well below it.
const heapShare = 0.25

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
