// Package logbuffer takes log writes off the goroutine that logs. Every admission decision
// writes a log line, and a write to stderr blocks whenever what reads it stalls: the
// container runtime's pipe fills while it writes to the node's disk, or a file's write waits
// on the journal. Through a Writer a line is copied into memory and a goroutine writes what
// has gathered every FlushInterval, in one write instead of one per line.
//
// No line is dropped: when MaxBuffered bytes wait, a writer blocks until they are written.
// A line reaches the output within FlushInterval of being logged, unless the output is
// stalled; a process killed without warning (SIGKILL, the OOM killer) loses the lines of
// at most that interval. Sync writes everything at once, and zap calls it for the levels
// that end the process (DPanic, Panic, Fatal) and on Logger.Sync.
package logbuffer

import (
	"errors"
	"io"
	"sync"
	"syscall"
	"time"
)

// Options configure a Writer.
type Options struct {
	// FlushInterval is how long a line may wait in memory (default 20ms).
	FlushInterval time.Duration
	// MaxBuffered bounds the bytes waiting; a write that would pass it blocks until the
	// output has taken them (default 4 MiB: at 2 KB a line, 2,000 lines).
	MaxBuffered int
}

// Writer is an io.Writer (and zapcore.WriteSyncer) that writes to its output from its own
// goroutine. It is safe for concurrent use.
type Writer struct {
	out      io.Writer
	max      int
	interval time.Duration

	mu sync.Mutex
	// pending is what Write has taken and the output not yet; spare is the buffer the
	// flusher writes from, swapped with pending so Write never waits on the output.
	pending, spare []byte
	// room wakes writers blocked on a full buffer once a flush has emptied it.
	room *sync.Cond
	// flushing serializes flushes: the ticker's, Sync's and Close's.
	flushing sync.Mutex
	closed   bool
	stop     chan struct{}
	done     chan struct{}
	err      error // the output's last write error, for Close
}

// New starts a Writer to out. Close stops it.
func New(out io.Writer, opts Options) *Writer {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 20 * time.Millisecond
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = 4 << 20
	}
	w := &Writer{out: out, max: opts.MaxBuffered, interval: opts.FlushInterval, stop: make(chan struct{}), done: make(chan struct{})}
	w.room = sync.NewCond(&w.mu)
	go w.run()
	return w
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			w.flush()
		case <-w.stop:
			return
		}
	}
}

// Write takes a copy of p. It blocks only while MaxBuffered bytes wait for the output; a
// single write larger than that waits for the buffer to empty, then is taken whole. Once
// the Writer is closed, it writes to the output itself, after what was pending.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for !w.closed && len(w.pending) > 0 && len(w.pending)+len(p) > w.max {
		w.room.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		w.flushing.Lock()
		defer w.flushing.Unlock()
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		return w.out.Write(p)
	}
	w.pending = append(w.pending, p...)
	w.mu.Unlock()
	return len(p), nil
}

func (w *Writer) flush() error {
	w.flushing.Lock()
	defer w.flushing.Unlock()
	return w.flushLocked()
}

// flushLocked writes what is pending; w.flushing is held, so flushes (the ticker's,
// Sync's, Close's and a closed Writer's writes) keep the lines in order. The output's
// error is kept for Close: a log line that could not be written has nowhere else to be
// reported.
func (w *Writer) flushLocked() error {
	w.mu.Lock()
	batch := w.pending
	w.pending, w.spare = w.spare[:0], nil
	w.mu.Unlock()
	var err error
	if len(batch) > 0 {
		_, err = w.out.Write(batch)
	}
	w.mu.Lock()
	// A burst's buffer is not kept: the next one grows again from a small one.
	if cap(batch) <= 256<<10 {
		w.spare = batch[:0]
	}
	if err != nil {
		w.err = err
	}
	w.room.Broadcast()
	w.mu.Unlock()
	return err
}

// Sync writes what is pending, and syncs the output when it can be.
func (w *Writer) Sync() error {
	err := w.flush()
	if s, ok := w.out.(interface{ Sync() error }); ok {
		// stderr on a pipe or terminal cannot be synced; that is not a lost line.
		if serr := s.Sync(); serr != nil && err == nil && !isUnsyncable(serr) {
			err = serr
		}
	}
	return err
}

// Close writes what is pending and stops the goroutine; later writes go to the output
// directly. It returns the output's last write error.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.stop)
	w.room.Broadcast()
	w.mu.Unlock()
	<-w.done
	w.flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// isUnsyncable: fsync of a pipe, socket or terminal fails with EINVAL (ENOTSUP on some
// systems), which says nothing about the lines written.
func isUnsyncable(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}
