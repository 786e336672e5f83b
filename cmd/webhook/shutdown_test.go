package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	testingclock "k8s.io/utils/clock/testing"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/pdguard/pdguard/certs"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
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

// A request still being decided when the drain ends gets to finish: controller-runtime's
// webhook server, stopped, cancels the context its requests run on, and a cancelled
// policy evaluation is an error answer that the fail-closed webhook turns into a refusal.
func TestRequestInFlightOutlivesTheServerStopping(t *testing.T) {
	bundle, err := certs.Issue(certs.Request{IPAddresses: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := bundle.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	ports, err := controlplane.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	d := newDrainer(0, testingclock.NewFakeClock(time.Unix(0, 0)))
	srv := d.server(crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: ports[0], CertDir: dir}))
	inFlight, serverStopped := make(chan struct{}), make(chan struct{})
	var deadlineLeft time.Duration
	srv.Register("/validate", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inFlight)
		<-serverStopped
		if err := r.Context().Err(); err != nil {
			http.Error(w, "request context ended: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if dl, ok := r.Context().Deadline(); ok {
			deadlineLeft = time.Until(dl)
		}
		w.WriteHeader(http.StatusOK)
	}))
	serving, stop := context.WithCancel(context.Background())
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- srv.Start(serving) }()
	waitFor(t, "the webhook server to serve", func() bool { return srv.StartedChecker()(nil) == nil })

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle.CAPEM)
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := hc.Post("https://127.0.0.1:"+strconv.Itoa(ports[0])+"/validate?timeout=10s", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Errorf("the request in flight got no answer: %v", err)
			answered <- nil
			return
		}
		answered <- resp
	}()
	<-inFlight
	stop()
	// The server's context is cancelled; give the cancellation time to reach the request.
	time.Sleep(100 * time.Millisecond)
	close(serverStopped)
	if resp := <-answered; resp != nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body := make([]byte, 200)
			n, _ := resp.Body.Read(body)
			t.Errorf("the request in flight was answered %s: %s", resp.Status, body[:n])
		}
	}
	if deadlineLeft <= 0 || deadlineLeft > 10*time.Second {
		t.Errorf("the request's deadline was %s away, want within the API server's ?timeout=10s", deadlineLeft)
	}
	if err := <-ran; err != nil {
		t.Errorf("the webhook server stopped with %v", err)
	}
}

func TestCallTimeoutIsTheAPIServers(t *testing.T) {
	for query, want := range map[string]time.Duration{
		"?timeout=10s": 10 * time.Second,
		"?timeout=1s":  time.Second,
		"":             maxCallTimeout,
		"?timeout=5m":  maxCallTimeout,
		"?timeout=-1s": maxCallTimeout,
		"?timeout=ten": maxCallTimeout,
	} {
		if got := callTimeout(httptest.NewRequest(http.MethodPost, "/validate"+query, nil)); got != want {
			t.Errorf("%q: %s, want %s", query, got, want)
		}
	}
}
