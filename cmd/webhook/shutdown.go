package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/utils/clock"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// shutdownFlags say how `serve` leaves: after the stop signal it keeps answering for
// drain while the endpoints that route the API server to it are updated, then gives
// requests already in flight up to timeout to finish.
type shutdownFlags struct {
	drain   time.Duration
	timeout time.Duration
}

func (f *shutdownFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.drain, "shutdown-drain", 5*time.Second, "after SIGTERM, keep serving this long with /readyz failing so the API server stops routing here; the chart's preStop and terminationGracePeriodSeconds follow it")
	fs.DurationVar(&f.timeout, "shutdown-timeout", 15*time.Second, "after the drain, how long in-flight requests and the evidence controller get to finish")
}

func (f *shutdownFlags) validate() error {
	if f.drain < 0 {
		return fmt.Errorf("--shutdown-drain must not be negative, got %s", f.drain)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--shutdown-timeout must be positive, got %s", f.timeout)
	}
	return nil
}

// errDraining is what /readyz answers once the stop signal has come.
var errDraining = errors.New("shutting down: draining before exit")

// drainer turns the stop signal into "not ready now, stop serving after the drain".
type drainer struct {
	drain    time.Duration
	clock    clock.Clock
	draining atomic.Bool
}

func newDrainer(drain time.Duration, c clock.Clock) *drainer {
	return &drainer{drain: drain, clock: c}
}

// Ready is a readyz check: it fails from the moment the stop signal arrives.
func (d *drainer) Ready(*http.Request) error {
	if d.draining.Load() {
		return errDraining
	}
	return nil
}

// Serving returns the context the servers run on: it ends drain after signal ends (or
// at once when the parent of both ends otherwise).
func (d *drainer) Serving(signal context.Context, log logr.Logger) context.Context {
	ctx, cancel := context.WithCancel(context.WithoutCancel(signal))
	go func() {
		<-signal.Done()
		d.draining.Store(true)
		log.Info("stop signal received: reporting not ready and draining", "drain", d.drain.String())
		if d.drain > 0 {
			<-d.clock.After(d.drain)
		}
		log.Info("drain over: finishing in-flight requests and stopping")
		cancel()
	}()
	return ctx
}

// server makes every webhook handler answer with Connection: close once the drain has
// begun, so the API server moves its kept-alive connections to replicas that stay
// instead of finding them closed under a request when this one stops. Over HTTP/2, Go's
// server turns that header into a graceful GOAWAY on the connection.
//
// It also lets a request in flight when the drain ends finish. controller-runtime's
// webhook server derives every request's context from the context it runs on, so
// stopping it cancelled the policy evaluation of each request still being decided: the
// fail-closed webhook then refused that change with "context canceled" during a
// rolling restart of pdguard. A request's context now ends only at the deadline the API
// server gave the call.
func (d *drainer) server(srv crwebhook.Server) crwebhook.Server {
	return &drainingServer{Server: srv, d: d}
}

type drainingServer struct {
	crwebhook.Server
	d *drainer
}

func (s *drainingServer) Register(path string, h http.Handler) {
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.d.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), callTimeout(r))
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	}))
}

// maxCallTimeout is the most an admission webhook's timeoutSeconds may be.
const maxCallTimeout = 30 * time.Second

// callTimeout is how long the API server waits for this call: it says so in the URL's
// timeout parameter (e.g. ?timeout=10s, the webhook's timeoutSeconds). Without one, or
// with one out of range, the longest a webhook call may take.
func callTimeout(r *http.Request) time.Duration {
	d, err := time.ParseDuration(r.URL.Query().Get("timeout"))
	if err != nil || d <= 0 || d > maxCallTimeout {
		return maxCallTimeout
	}
	return d
}
