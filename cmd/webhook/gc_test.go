package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestSetGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")

	t.Setenv(memoryLimitEnv, "268435456")
	if err := setGC(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GC percent %d, want %d", got, gcPercent)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(268435456*heapShare); got != want {
		t.Errorf("memory limit %d, want %d", got, want)
	}

	for _, bad := range []string{"256Mi", "-1", "0"} {
		t.Setenv(memoryLimitEnv, bad)
		if err := setGC(); err == nil || !strings.Contains(err.Error(), memoryLimitEnv) {
			t.Errorf("%s=%q: error %v, want one naming %s", memoryLimitEnv, bad, err, memoryLimitEnv)
		}
	}

	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv(memoryLimitEnv, "268435456")
	if err := setGC(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT in the environment should win, memory limit set to %d", got)
	}
}
