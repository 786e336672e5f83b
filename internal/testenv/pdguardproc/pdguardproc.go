// Package pdguardproc runs the real `webhook serve` binary against a control plane, the
// way a cluster runs it: its own process, TLS from a cert dir, webhooks registered by URL
// with the CA bundle, so the API server calls it over TLS. Integration tests, end-to-end
// tests and the demo share it.
package pdguardproc

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/pdguard/pdguard/certs"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
)

// Build compiles ./cmd/webhook into <repo>/bin/pdguard. Go's build cache makes a rebuild
// with no change cost about a second.
func Build(ctx context.Context, repoRoot string) (string, error) {
	out := filepath.Join(repoRoot, "bin", "pdguard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/webhook")
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building pdguard: %w\n%s", err, b)
	}
	return out, nil
}

// Options for one pdguard server.
type Options struct {
	// Binary is the built webhook command (see Build).
	Binary string
	// Args are extra `serve` flags, e.g. --soak=2s or --enforcement=warn.
	Args []string
	// MutatingFailurePolicy / ValidatingFailurePolicy default to Ignore / Fail, as the
	// chart installs them.
	MutatingFailurePolicy   admissionregistrationv1.FailurePolicyType
	ValidatingFailurePolicy admissionregistrationv1.FailurePolicyType
	// SkipRegistration leaves the webhook configurations alone (a second server).
	SkipRegistration bool
}

// Server is a running pdguard.
type Server struct {
	URL        string
	MetricsURL string
	CAPEM      []byte
	LogPath    string
	cmd        *exec.Cmd
	done       chan struct{}
	logFile    *os.File
	binary     string
	args       []string
	readyz     string
}

// Start issues a serving certificate for 127.0.0.1, starts `webhook serve` against the
// control plane, waits for /readyz, and registers the webhooks.
func Start(ctx context.Context, cp *controlplane.ControlPlane, opts Options) (*Server, error) {
	dir, err := os.MkdirTemp(cp.WorkDir(), "pdguard-")
	if err != nil {
		return nil, err
	}
	bundle, err := certs.Issue(certs.Request{IPAddresses: []string{"127.0.0.1"}, DNSNames: []string{"localhost"}})
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := bundle.WriteDir(certDir); err != nil {
		return nil, err
	}
	ports, err := controlplane.FreePorts(3)
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:        "https://127.0.0.1:" + strconv.Itoa(ports[0]),
		MetricsURL: "http://127.0.0.1:" + strconv.Itoa(ports[1]) + "/metrics",
		CAPEM:      bundle.CAPEM,
		LogPath:    filepath.Join(cp.LogDir(), filepath.Base(dir)+".log"),
	}
	args := append([]string{
		"serve",
		"--kubeconfig", cp.KubeconfigPath(),
		"--cert-dir", certDir,
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(ports[0]),
		"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(ports[1]),
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(ports[2]),
	}, opts.Args...)
	s.binary, s.args = opts.Binary, args
	s.readyz = "http://127.0.0.1:" + strconv.Itoa(ports[2]) + "/readyz"
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	if !opts.SkipRegistration {
		mp, vp := opts.MutatingFailurePolicy, opts.ValidatingFailurePolicy
		if mp == "" {
			mp = admissionregistrationv1.Ignore
		}
		if vp == "" {
			vp = admissionregistrationv1.Fail
		}
		if err := cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{URL: s.URL, CABundle: bundle.CAPEM, MutatingFailurePolicy: mp, ValidatingFailurePolicy: vp}); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// run starts the process, its log appended to LogPath, and waits until it is ready.
func (s *Server) run(ctx context.Context) error {
	var err error
	s.logFile, err = os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.done = make(chan struct{})
	s.cmd = exec.Command(s.binary, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.logFile.Close()
		return fmt.Errorf("starting %s: %w", s.binary, err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	if err := s.waitReady(ctx, s.readyz); err != nil {
		s.Stop()
		return err
	}
	return nil
}

// Restart stops the server and starts the same command again, on the same ports with
// the same certificate, as a pod restart does; the webhook configurations stay.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	return s.run(ctx)
}

// Crash kills the server with SIGKILL, so it gets no chance to finish what it was doing,
// and starts it again as Restart does.
func (s *Server) Crash(ctx context.Context) error {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		s.logFile.Close()
	}
	return s.run(ctx)
}

func (s *Server) waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
	for {
		select {
		case <-s.done:
			return fmt.Errorf("pdguard exited before it was ready: %s", s.tail())
		case <-ctx.Done():
			return fmt.Errorf("pdguard not ready at %s: %w; %s", url, ctx.Err(), s.tail())
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// Logs returns what the server has logged so far.
func (s *Server) Logs() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

func (s *Server) tail() string {
	lines := strings.Split(strings.TrimSpace(s.Logs()), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "log " + s.LogPath + ":\n" + strings.Join(lines, "\n")
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.logFile.Close()
}
