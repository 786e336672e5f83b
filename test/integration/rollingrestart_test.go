//go:build integration

package integration

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

const restartLane = "restart"

// readyProxy is one address in front of several servers, as a Service is: each new
// connection goes to a backend whose /readyz answers, round robin, and stays with it.
type readyProxy struct {
	l        net.Listener
	backends []*pdguardproc.Server
	ready    []atomic.Bool
	next     atomic.Uint64
	conns    atomic.Int64
	// dropped counts connections closed at once because no backend was ready or none
	// answered: what a Service without ready endpoints does to a caller.
	dropped atomic.Int64
	wg      sync.WaitGroup
}

func startReadyProxy(ctx context.Context, backends ...*pdguardproc.Server) (*readyProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &readyProxy{l: l, backends: backends, ready: make([]atomic.Bool, len(backends))}
	// The endpoints controller's view: who is ready, refreshed every 100ms.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ctx.Err() == nil {
			for i, b := range p.backends {
				p.ready[i].Store(b.Ready())
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p, nil
}

func (p *readyProxy) forward(c net.Conn) {
	defer c.Close()
	n := len(p.backends)
	start := int(p.next.Add(1))
	for i := 0; i < n; i++ {
		b := (start + i) % n
		if !p.ready[b].Load() {
			continue
		}
		u, _ := url.Parse(p.backends[b].URL)
		up, err := net.Dial("tcp", u.Host)
		if err != nil {
			continue
		}
		p.conns.Add(1)
		defer up.Close()
		go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
		_, _ = io.Copy(c, up)
		return
	}
	p.dropped.Add(1)
}

// waitRouted waits until new connections may go to backend i again: a replica that has
// restarted is in the endpoints. A Deployment's rolling update waits the same way for
// a new pod before it stops the next one (maxUnavailable 0).
func (p *readyProxy) waitRouted(ctx context.Context, i int) error {
	for !p.ready[i].Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (p *readyProxy) close() { p.l.Close(); p.wg.Wait() }

// startReplicas starts two `webhook serve` replicas with args behind a readyProxy and
// registers webhooks named name for the labels selector at the proxy's address; all of it
// ends with the test.
func startReplicas(t *testing.T, args []string, name string, selector map[string]string) ([]*pdguardproc.Server, *readyProxy) {
	t.Helper()
	ctx := t.Context()
	var replicas []*pdguardproc.Server
	var caBundle []byte
	for range 2 {
		srv, err := pdguardproc.Start(ctx, env.cp, pdguardproc.Options{Binary: env.binary, Args: args, SkipRegistration: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		replicas = append(replicas, srv)
		caBundle = append(caBundle, srv.CAPEM...)
	}
	proxyCtx, stopProxy := context.WithCancel(ctx)
	proxy, err := startReadyProxy(proxyCtx, replicas...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProxy(); proxy.close() })
	if err := env.cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{
		Name: name, URL: "https://" + proxy.l.Addr().String(), CABundle: caBundle, Selector: selector,
		MutatingFailurePolicy:   admissionregistrationv1.Ignore,
		ValidatingFailurePolicy: admissionregistrationv1.Fail,
	}); err != nil {
		t.Fatal(err)
	}
	return replicas, proxy
}

// TestRollingRestart: two `webhook serve` replicas behind one address; each in turn is
// stopped with SIGTERM and started again, several times, while StatefulSet updates (tag
// changes and unrelated changes) run through the API server. Not one may fail or be
// admitted without the canary partition. The address passes TLS through (L4, as
// kube-proxy does), so the API server and pdguard agree on HTTP/2 by ALPN.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	args := []string{
		"--log-format=json", "--shutdown-drain=2s", "--shutdown-timeout=5s", "--disable-evidence-controller",
		"--selector=" + selectorLabel + "=" + selectorValue + "," + laneLabel + "=" + restartLane,
	}
	replicas, proxy := startReplicas(t, args, "pdguard-restart", map[string]string{selectorLabel: selectorValue, laneLabel: restartLane})
	live, err := laneStatefulSet(ctx, "rolling-restart", restartLane)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the restart lane in force", func() (bool, string) {
		stored, err := env.admin.AppsV1().StatefulSets(live.Namespace).Update(ctx, fixture.WithTag(live.DeepCopy(), newTag), metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && partitionOf(stored) == *live.Spec.Replicas-1, "not yet pinned"
	})

	stop := make(chan struct{})
	counts := loopAdmissions(ctx, live, stop)
	const rounds = 3
	began := time.Now()
	for round := range rounds {
		for i, srv := range replicas {
			if err := srv.Restart(ctx); err != nil {
				close(stop)
				t.Fatalf("round %d, replica %d: %v", round, i, err)
			}
			if err := proxy.waitRouted(ctx, i); err != nil {
				close(stop)
				t.Fatalf("round %d, replica %d never routed to after its restart: %v", round, i, err)
			}
		}
	}
	close(stop)
	counts.wait()
	t.Logf("rolling restart: %d rounds of SIGTERM and start for each of 2 replicas in %s, %d proxied connections (%d dropped for want of a ready replica); %s",
		rounds, time.Since(began).Round(time.Millisecond), proxy.conns.Load(), proxy.dropped.Load(), counts)
	// The webhook offers HTTP/2, so a stopping replica's GOAWAY sends the API server's
	// retries elsewhere: not one request may fail, and none be admitted unguarded.
	if counts.failed > 0 || counts.unguarded > 0 {
		t.Errorf("admissions failed or unguarded during the rolling restart: %s; first: %q", counts, counts.firstFailures)
	}
	if counts.tagChanges == 0 {
		t.Error("no admission request was sent during the restarts")
	}
	for _, srv := range replicas {
		if !bytes.Contains([]byte(srv.Logs()), []byte("stop signal received")) {
			t.Errorf("replica %s never logged the drain", srv.LogPath)
		}
		if lines := srv.Forbidden(); len(lines) > 0 {
			t.Errorf("the API server refused replica %s (as %s): %q", srv.LogPath, srv.Identity.User, lines)
		}
	}
}
