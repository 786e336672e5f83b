package main

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer the logger's flusher and the test may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLoggerWritesServesLinesThroughTheBuffer: the JSON lines serve writes keep their
// keys, caller and level through the buffered writer, and closing the log writes the
// last of them.
func TestLoggerWritesServesLinesThroughTheBuffer(t *testing.T) {
	var out lockedBuffer
	log, closeLog, err := newLogger("json", "info", &out)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("admission decision", "namespace", "ping", "name", "pd", "decision", "denied")
	log.V(1).Info("debug line, below the level")
	log.Error(errors.New("boom"), "audit sink failed", "sink", "events")
	closeLog()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want the info and the error line:\n%s", len(lines), out.String())
	}
	var info, failed map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &info); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &failed); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"level": "info", "msg": "admission decision", "namespace": "ping", "decision": "denied"} {
		if info[k] != want {
			t.Errorf("info line %s = %v, want %v", k, info[k], want)
		}
	}
	if _, ok := info["ts"]; !ok {
		t.Errorf("info line has no ts: %v", info)
	}
	if c, _ := info["caller"].(string); !strings.HasPrefix(c, "webhook/logger_test.go:") {
		t.Errorf("info line caller %q, want this test's line", c)
	}
	if failed["level"] != "error" || failed["error"] != "boom" || failed["stacktrace"] == nil {
		t.Errorf("error line %v, want level error, the error and a stacktrace", failed)
	}
}

func TestLoggerRefusesUnknownFormatAndLevel(t *testing.T) {
	if _, _, err := newLogger("xml", "info", &lockedBuffer{}); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("format xml: %v, want an error naming --log-format", err)
	}
	if _, _, err := newLogger("json", "loud", &lockedBuffer{}); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("level loud: %v, want an error naming --log-level", err)
	}
}
