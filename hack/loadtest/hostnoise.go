package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The fixed-rate phase's p99 is the 40th slowest of 4,000 requests: one stall of the
// server's core of a few tens of milliseconds decides it. On a shared virtual machine
// such stalls come from the hypervisor (steal) and from other processes on that core
// (the API server and etcd are not pinned). coreNoise reads both, so each run's paired
// ratio can be read next to what the host took from either server in its turns.

// clockTicksPerSecond is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat: 100 on
// every Linux architecture Go builds for.
const clockTicksPerSecond = 100

// coreTime is one CPU's counters from /proc/stat, in clock ticks.
type coreTime struct {
	busy  uint64 // user, nice, system, irq and softirq
	steal uint64
}

// parseCoreTime finds cpu's line ("cpu0 ...") in the contents of /proc/stat.
func parseCoreTime(stat []byte, cpu string) (coreTime, error) {
	prefix := []byte("cpu" + cpu + " ")
	for line := range bytes.SplitSeq(stat, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		// user nice system idle iowait irq softirq steal [guest guest_nice]
		if len(f) < 8 {
			return coreTime{}, fmt.Errorf("/proc/stat: cpu%s has %d fields, want at least 8 (user to steal)", cpu, len(f))
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return coreTime{}, fmt.Errorf("/proc/stat: cpu%s field %d %q is not a tick count", cpu, i+1, f[i])
			}
			v[i] = n
		}
		return coreTime{busy: v[0] + v[1] + v[2] + v[5] + v[6], steal: v[7]}, nil
	}
	return coreTime{}, fmt.Errorf("/proc/stat has no line for cpu%s", cpu)
}

// parseProcessTicks is utime plus stime from the contents of /proc/<pid>/stat. The
// command name in parentheses may hold spaces, so fields are counted after its last ")".
func parseProcessTicks(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("process stat %q has no command name in parentheses", truncate(string(stat), 40))
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the name: state (field 3) ... utime (14), stime (15).
	if len(f) < 13 {
		return 0, fmt.Errorf("process stat has %d fields after the command name, want at least 13 (state to stime)", len(f))
	}
	var total uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process stat: utime or stime %q is not a tick count", s)
		}
		total += n
	}
	return total, nil
}

func processTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcessTicks(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// noiseMeter reads the servers' core's counters, and the load generator's, around each
// turn of the fixed-rate phase.
type noiseMeter struct {
	cpu, clientCPU string
	pids           []int // the servers on the core, whose own time is not noise
}

// noiseReading is a point in time of a noiseMeter.
type noiseReading struct {
	core        coreTime
	clientSteal uint64
	servers     uint64
}

func (m noiseMeter) read() (noiseReading, error) {
	var r noiseReading
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return r, err
	}
	if r.core, err = parseCoreTime(b, m.cpu); err != nil {
		return r, err
	}
	client, err := parseCoreTime(b, m.clientCPU)
	if err != nil {
		return r, err
	}
	r.clientSteal = client.steal
	for _, pid := range m.pids {
		n, err := processTicks(pid)
		if err != nil {
			return r, err
		}
		r.servers += n
	}
	return r, nil
}

// hostNoise is what the host took of the server's core over some turns, in ms.
type hostNoise struct {
	stealMs float64 // the hypervisor ran something else on the virtual CPU
	otherMs float64 // other processes and interrupts on the core, not the servers
}

// stealFree says whether the hypervisor took no tick from either core between before and
// after: a turn whose latencies are the servers' own, not the host's stalls.
func stealFree(before, after noiseReading) bool {
	return after.core.steal == before.core.steal && after.clientSteal == before.clientSteal
}

// since adds to n what happened on the core between before and after. A server's ticks
// may land on the other core's count now and then, so other is held at zero or more.
func (n *hostNoise) since(before, after noiseReading) {
	const msPerTick = 1000 / clockTicksPerSecond
	n.stealMs += float64(after.core.steal-before.core.steal) * msPerTick
	busy := float64(after.core.busy - before.core.busy)
	own := float64(after.servers - before.servers)
	n.otherMs += max(0, busy-own) * msPerTick
}
