package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pdguard/pdguard/internal/rollout"
)

// TestAdmissionLineSameThroughZap holds the typed-field admission line to the one logr
// writes through zapr: the same keys and values, the caller still in this package.
func TestAdmissionLineSameThroughZap(t *testing.T) {
	records := []Record{
		{Kind: KindAdmission, Webhook: "mutate", Namespace: "ping", Name: "pd", Operation: "UPDATE", User: "helm", Outcome: Patched, Mode: "enforce", Rules: []string{"canary-partition"}, Latency: 1234 * time.Microsecond, Warnings: []string{"pinned"}},
		{Kind: KindAdmission, Webhook: "validate", Namespace: "ping", Name: "pd", Operation: "UPDATE", Outcome: Denied, Mode: "warn", Reasons: []string{"a", "b"}, Details: []string{"kubectl x"}, DryRun: true,
			Proof: []rollout.Proof{{Pod: "pd-1", Revision: "r2"}}},
		{Kind: KindAdmission, Webhook: "validate", Outcome: Allowed},
		{Kind: KindAdmission, Webhook: "validate", Outcome: Errored, Err: errors.New("boom")},
	}
	for i, r := range records {
		var viaZap, viaLogr bytes.Buffer
		sink := newLogSink(jsonLogr(&viaZap))
		if sink.zap == nil {
			t.Fatal("a zapr logger gave no zap logger")
		}
		_ = sink.Write(context.Background(), []Record{r})
		_ = LogSink{Log: jsonLogr(&viaLogr)}.Write(context.Background(), []Record{r})
		got, want := decodeLine(t, viaZap.Bytes()), decodeLine(t, viaLogr.Bytes())
		for _, line := range []map[string]any{got, want} {
			caller, _ := line["caller"].(string)
			if !strings.HasPrefix(caller, "audit/pipeline.go:") {
				t.Errorf("record %d: caller %q is not the pipeline", i, caller)
			}
			delete(line, "caller")
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("record %d:\n zap  %s\n logr %s", i, g, w)
		}
	}
}

func jsonLogr(buf *bytes.Buffer) logr.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = ""
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(buf), zap.InfoLevel)
	return zapr.NewLogger(zap.New(core, zap.AddCaller())).WithName("audit")
}

func decodeLine(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(b), &m); err != nil {
		t.Fatalf("log line %q: %v", b, err)
	}
	return m
}
