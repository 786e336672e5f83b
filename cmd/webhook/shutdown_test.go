package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	testingclock "k8s.io/utils/clock/testing"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

func TestDrainerKeepsServingThroughTheDrain(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(0, 0))
	d := newDrainer(10*time.Second, clk)
	signal, stop := context.WithCancel(context.Background())
	defer stop()
	serving := d.Serving(signal, logr.Discard())

	if err := d.Ready(nil); err != nil {
		t.Fatalf("ready before the signal: got %v", err)
	}
	stop()
	waitFor(t, "readyz to fail after the signal", func() bool { return errors.Is(d.Ready(nil), errDraining) })
	waitFor(t, "the drain timer", clk.HasWaiters)
	if serving.Err() != nil {
		t.Fatal("the serving context ended at the signal, before the drain")
	}
	clk.Step(9 * time.Second)
	if serving.Err() != nil {
		t.Fatal("the serving context ended 1s before the drain was over")
	}
	clk.Step(time.Second)
	select {
	case <-serving.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the serving context did not end once the drain was over")
	}
}

func TestDrainerZeroDrainStopsAtTheSignal(t *testing.T) {
	d := newDrainer(0, testingclock.NewFakeClock(time.Unix(0, 0)))
	signal, stop := context.WithCancel(context.Background())
	serving := d.Serving(signal, logr.Discard())
	stop()
	select {
	case <-serving.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("with --shutdown-drain=0 the serving context should end at the signal")
	}
}

func TestShutdownFlagsValidate(t *testing.T) {
	for _, tc := range []struct {
		f    shutdownFlags
		want string
	}{
		{shutdownFlags{drain: 5 * time.Second, timeout: time.Second}, ""},
		{shutdownFlags{drain: 0, timeout: time.Second}, ""},
		{shutdownFlags{drain: -time.Second, timeout: time.Second}, "--shutdown-drain"},
		{shutdownFlags{drain: time.Second, timeout: 0}, "--shutdown-timeout"},
	} {
		err := tc.f.validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.f, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: want an error naming %s, got %v", tc.f, tc.want, err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type recordingServer struct {
	crwebhook.Server
	handlers map[string]http.Handler
}

func (r *recordingServer) Register(path string, h http.Handler) { r.handlers[path] = h }

func TestDrainingServerClosesConnections(t *testing.T) {
	d := newDrainer(time.Hour, testingclock.NewFakeClock(time.Unix(0, 0)))
	rec := &recordingServer{handlers: map[string]http.Handler{}}
	d.server(rec).Register("/validate", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	call := func() http.Header {
		w := httptest.NewRecorder()
		rec.handlers["/validate"].ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/validate", nil))
		return w.Header()
	}
	if got := call().Get("Connection"); got != "" {
		t.Errorf("before the signal: Connection %q, want none", got)
	}
	d.draining.Store(true)
	if got := call().Get("Connection"); got != "close" {
		t.Errorf("while draining: Connection %q, want close", got)
	}
}
