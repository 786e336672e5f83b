package binarypages

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// residentFileKiB is this process's RssFile.
func residentFileKiB(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("RssFile %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("/proc/self/status has no RssFile")
	return 0
}

// work touches code and read-only data all over the binary: Unicode tables, hashing,
// formatting, the collector's stack walk.
func work() string {
	var b bytes.Buffer
	for r := rune(0); r < 0x3000; r += 7 {
		fmt.Fprintf(&b, "%t%t%c", unicode.IsUpper(r), unicode.IsPunct(r), unicode.ToLower(r))
	}
	runtime.GC()
	return fmt.Sprintf("%x", sha256.Sum256(b.Bytes()))
}

func TestReleaseDropsTheBinarysPagesAndTheProcessRunsOn(t *testing.T) {
	want := work()
	before := residentFileKiB(t)
	advised, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := residentFileKiB(t)
	t.Logf("advised %d KiB; RssFile %d KiB before, %d KiB after", advised>>10, before, after)
	if advised == 0 {
		t.Error("nothing was advised")
	}
	if after >= before {
		t.Errorf("RssFile did not fall: %d KiB before, %d KiB after", before, after)
	}
	if got := work(); got != want {
		t.Errorf("after the release the same work gave %s, before %s", got, want)
	}
	if again := residentFileKiB(t); again <= after {
		t.Errorf("the work after the release mapped nothing back: RssFile %d KiB, was %d KiB", again, after)
	}
}
