package logbuffer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// output records what reaches it; while gate is set, each write waits for it.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
	gate    chan struct{}
	entered chan struct{} // gets a value when a write starts waiting on gate
	err     error
	syncErr error
}

func (o *output) Write(p []byte) (int, error) {
	if o.gate != nil {
		select {
		case o.entered <- struct{}{}:
		default:
		}
		<-o.gate
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	if o.err != nil {
		return 0, o.err
	}
	return o.buf.Write(p)
}

func (o *output) Sync() error { return o.syncErr }

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// within fails the test if f has not returned after a long while, instead of hanging.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

func TestEveryLineArrivesWholeAndInOrderPerWriter(t *testing.T) {
	out := &output{}
	w := New(out, Options{FlushInterval: time.Millisecond, MaxBuffered: 4096})
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "writer %d line %04d %s\n", g, i, strings.Repeat("x", i%50))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines arrived, want %d", len(got), writers*lines)
	}
	for _, line := range got {
		var g, i int
		var pad string
		if _, err := fmt.Sscanf(line, "writer %d line %04d %s", &g, &i, &pad); err != nil && i%50 != 0 {
			t.Fatalf("line %q is not one line written: %v", line, err)
		}
		key := fmt.Sprint(g)
		if i != next[key] || len(pad) != i%50 {
			t.Fatalf("writer %d: got line %d (%q), want line %d whole", g, i, line, next[key])
		}
		next[key]++
	}
	if out.writes >= writers*lines {
		t.Errorf("%d writes to the output for %d lines, want them gathered", out.writes, writers*lines)
	}
}

func TestWritesDoNotWaitOnAStalledOutput(t *testing.T) {
	out := &output{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := New(out, Options{FlushInterval: time.Millisecond, MaxBuffered: 1 << 20})
	fmt.Fprintln(w, "first")
	<-out.entered // the flusher is now stuck in the output's Write
	within(t, "writing 1,000 lines while the output is stalled", func() {
		for i := range 1000 {
			fmt.Fprintf(w, "line %d\n", i)
		}
	})
	close(out.gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n"); got != 1001 {
		t.Errorf("%d lines arrived, want 1001", got)
	}
}

func TestAFullBufferHoldsTheWriterBackAndLosesNothing(t *testing.T) {
	out := &output{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := New(out, Options{FlushInterval: time.Millisecond, MaxBuffered: 64})
	fmt.Fprintln(w, "first")
	<-out.entered
	line := strings.Repeat("y", 40) + "\n"
	fmt.Fprint(w, line) // 41 of 64 bytes
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		fmt.Fprint(w, line) // would make 82
	}()
	select {
	case <-blocked:
		t.Fatal("a write past MaxBuffered returned while the output was stalled")
	case <-time.After(50 * time.Millisecond):
	}
	close(out.gate)
	within(t, "the held-back write, once the output moves", func() { <-blocked })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "first\n" + line + line; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestSyncWritesWhatIsPending(t *testing.T) {
	out := &output{syncErr: &pathError{syscall.EINVAL}}
	w := New(out, Options{FlushInterval: time.Hour})
	defer w.Close()
	fmt.Fprintln(w, "fatal: the last words")
	if out.String() != "" {
		t.Fatalf("the line was written before its interval: %q", out.String())
	}
	if err := w.Sync(); err != nil {
		t.Errorf("Sync on an output that cannot be synced (stderr on a pipe): %v, want nil", err)
	}
	if out.String() != "fatal: the last words\n" {
		t.Errorf("after Sync the output has %q", out.String())
	}
	out.syncErr = errors.New("disk gone")
	if err := w.Sync(); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("Sync's error %v, want the output's", err)
	}
}

func TestAfterCloseWritesGoToTheOutputInOrder(t *testing.T) {
	out := &output{}
	w := New(out, Options{FlushInterval: time.Hour})
	fmt.Fprintln(w, "before")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "after")
	if out.String() != "before\nafter\n" {
		t.Errorf("output %q, want both lines in order", out.String())
	}
	if err := w.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

func TestCloseReportsTheOutputsError(t *testing.T) {
	out := &output{err: errors.New("broken pipe")}
	w := New(out, Options{FlushInterval: time.Hour})
	fmt.Fprintln(w, "lost")
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("Close: %v, want the output's write error", err)
	}
}

// pathError is how os.File.Sync reports an fsync error.
type pathError struct{ err error }

func (e *pathError) Error() string { return "sync /dev/stderr: " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
