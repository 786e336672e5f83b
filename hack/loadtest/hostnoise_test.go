package main

import (
	"strings"
	"testing"
)

func TestParseCoreTime(t *testing.T) {
	stat := []byte("cpu  1943710 280 263464 14194700 18074 0 46084 174742 0 0\n" +
		"cpu0 1135098 138 127112 6947347 10913 0 23576 78577 0 0\n" +
		"cpu1 808612 141 136351 7247353 7160 3 22507 96164 0 0\n" +
		"cpu10 1 1 1 1 1 1 1 1 0 0\n" +
		"intr 1 2 3\n")
	for _, tc := range []struct {
		cpu  string
		want coreTime
	}{
		{"0", coreTime{busy: 1135098 + 138 + 127112 + 0 + 23576, steal: 78577}},
		{"1", coreTime{busy: 808612 + 141 + 136351 + 3 + 22507, steal: 96164}},
		{"10", coreTime{busy: 5, steal: 1}},
	} {
		got, err := parseCoreTime(stat, tc.cpu)
		if err != nil {
			t.Fatalf("cpu%s: %v", tc.cpu, err)
		}
		if got != tc.want {
			t.Errorf("cpu%s: got %+v, want %+v", tc.cpu, got, tc.want)
		}
	}
}

func TestParseCoreTimeNamesWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		stat, cpu, want string
	}{
		{"cpu0 1 2 3\n", "0", "cpu0 has 3 fields"},
		{"cpu0 1 2 3 4 5 6 x 8\n", "0", `field 7 "x"`},
		{"cpu0 1 2 3 4 5 6 7 8\n", "1", "no line for cpu1"},
	} {
		_, err := parseCoreTime([]byte(tc.stat), tc.cpu)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got error %v, want one saying %q", tc.stat, err, tc.want)
		}
	}
}

func TestParseProcessTicks(t *testing.T) {
	// A command name with spaces and a parenthesis, as a process may set its own.
	stat := "4242 (pd guard) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 117 0 0 20 0 9 0 100 0 0\n"
	got, err := parseProcessTicks([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 731+117 {
		t.Errorf("got %d ticks, want %d (utime 731 + stime 117)", got, 731+117)
	}
	for _, bad := range []struct{ stat, want string }{
		{"4242 pdguard S 1", "no command name"},
		{"4242 (pdguard) S 1 2 3", "want at least 13"},
		{"4242 (pdguard) S 1 4242 4242 0 -1 4194560 1234 0 0 0 7x1 117", `"7x1"`},
	} {
		_, err := parseProcessTicks([]byte(bad.stat))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: got error %v, want one saying %q", bad.stat, err, bad.want)
		}
	}
}

func TestHostNoiseSince(t *testing.T) {
	var n hostNoise
	before := noiseReading{core: coreTime{busy: 100, steal: 10}, servers: 50}
	n.since(before, noiseReading{core: coreTime{busy: 180, steal: 13}, servers: 120})
	if n.stealMs != 30 || n.otherMs != 100 {
		t.Errorf("got %+v, want 30 ms stolen and 100 ms of others (80 busy ticks, 70 the servers')", n)
	}
	// The servers' ticks may run ahead of the core's: never less than nothing.
	n.since(before, noiseReading{core: coreTime{busy: 110, steal: 10}, servers: 70})
	if n.stealMs != 30 || n.otherMs != 100 {
		t.Errorf("got %+v after a turn whose servers' ticks exceed the core's, want it unchanged", n)
	}
}

func TestStealFree(t *testing.T) {
	before := noiseReading{core: coreTime{busy: 100, steal: 10}, clientSteal: 7, servers: 50}
	for _, tc := range []struct {
		name  string
		after noiseReading
		want  bool
	}{
		{"no tick stolen, the servers busy", noiseReading{core: coreTime{busy: 150, steal: 10}, clientSteal: 7, servers: 90}, true},
		{"a tick stolen from the servers' core", noiseReading{core: coreTime{busy: 150, steal: 11}, clientSteal: 7}, false},
		{"a tick stolen from the load generator's core", noiseReading{core: coreTime{busy: 150, steal: 10}, clientSteal: 8}, false},
	} {
		if got := stealFree(before, tc.after); got != tc.want {
			t.Errorf("%s: stealFree = %v, want %v", tc.name, got, tc.want)
		}
	}
}
