package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"k8s.io/client-go/rest"
)

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after the grace period) and
// waits for it; etcd and every other component keep running, as when a control-plane
// node's apiserver restarts. Start it again with StartAPIServer.
func (cp *ControlPlane) StopAPIServer() error {
	p := cp.proc("kube-apiserver")
	if p == nil {
		return errors.New("controlplane: kube-apiserver is not running")
	}
	if err := p.stop(stopGrace); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	cp.mu.Lock()
	cp.procs = slices.DeleteFunc(cp.procs, func(q *process) bool { return q == p })
	cp.stopped = p
	cp.mu.Unlock()
	cp.opts.Logf("controlplane: stopped kube-apiserver")
	return nil
}

// StartAPIServer starts the kube-apiserver StopAPIServer stopped, with the same flags:
// the same port, etcd, certificates and service-account keys, so every client and
// kubeconfig keeps working. It returns once /readyz answers 200 and kube-scheduler and
// KWOK (where they run) have been restarted against it.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) (time.Duration, error) {
	began := time.Now()
	cp.mu.Lock()
	old := cp.stopped
	cp.stopped = nil
	cp.mu.Unlock()
	if old == nil {
		return 0, errors.New("controlplane: kube-apiserver was not stopped by StopAPIServer")
	}
	p, err := cp.start(old.name, old.args, old.env)
	if err != nil {
		return 0, fmt.Errorf("controlplane: %w", err)
	}
	cp.watchExit(p)
	readyClient, err := rest.HTTPClientFor(cp.admin)
	if err != nil {
		return 0, fmt.Errorf("controlplane: admin client: %w", err)
	}
	if err := cp.waitFor(ctx, p, "kube-apiserver /readyz after its restart", func(ctx context.Context) error {
		return httpOK(ctx, readyClient, cp.host+"/readyz")
	}); err != nil {
		return 0, fmt.Errorf("controlplane: %w", err)
	}
	if cp.opts.Controllers {
		// kube-scheduler's informers can come back from the outage with a cache it calls
		// corrupted, and then it schedules no new pod; a restart resyncs it, as a
		// control-plane node's static pods restart with their apiserver.
		if err := cp.restart(ctx, "kube-scheduler", nil); err != nil {
			return 0, err
		}
	}
	if cp.opts.KWOK {
		// KWOK's pod watch does not come back after the apiserver went away: pods created
		// afterwards would never run. A restart reconnects it, as a kubelet reconnects.
		u := fmt.Sprintf("http://127.0.0.1:%d/healthz", cp.kwokPort)
		if err := cp.restart(ctx, "kwok", func(ctx context.Context) error { return httpOK(ctx, http.DefaultClient, u) }); err != nil {
			return 0, err
		}
	}
	took := time.Since(began)
	cp.opts.Logf("controlplane: kube-apiserver ready again after %s", took.Round(time.Millisecond))
	return took, nil
}

// restart stops the component called name and starts it again with the same flags;
// ready, when given, says when it serves again.
func (cp *ControlPlane) restart(ctx context.Context, name string, ready func(context.Context) error) error {
	old := cp.proc(name)
	if old == nil {
		return fmt.Errorf("controlplane: %s is not running", name)
	}
	if err := old.stop(stopGrace); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	cp.mu.Lock()
	cp.procs = slices.DeleteFunc(cp.procs, func(q *process) bool { return q == old })
	cp.mu.Unlock()
	p, err := cp.start(old.name, old.args, old.env)
	if err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	cp.watchExit(p)
	if ready == nil {
		return nil
	}
	if err := cp.waitFor(ctx, p, name+" to serve again after its restart", ready); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	return nil
}

// watchExit reports p dying while the control plane is in use, as watchExits does for
// the components Start started.
func (cp *ControlPlane) watchExit(p *process) {
	cp.bgDone.Add(1)
	go func() {
		defer cp.bgDone.Done()
		select {
		case <-p.done:
			if !p.stopping.Load() {
				cp.opts.Logf("controlplane: %v", p.exitError())
			}
		case <-cp.bgCtx.Done():
		}
	}()
}
