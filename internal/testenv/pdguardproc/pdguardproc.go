// Package pdguardproc runs the real `webhook serve` binary against a control plane, the
// way a cluster runs it: its own process, TLS from a cert dir, webhooks registered by URL
// with the CA bundle, so the API server calls it over TLS. Integration tests, end-to-end
// tests and the demo share it.
package pdguardproc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
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

// Build compiles ./cmd/webhook into <repo>/bin/pdguard-<checkout>. Go's build cache makes
// a rebuild with no change cost about a second. bin may be one directory shared by several
// checkouts of the repository (a symlink), so the name says whose source it was built from
// and a run in one checkout never execs a binary another just replaced.
func Build(ctx context.Context, repoRoot string) (string, error) {
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	out := filepath.Join(repoRoot, "bin", "pdguard-"+filepath.Base(abs)+"-"+hex.EncodeToString(sum[:4]))
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
	// Identity is who pdguard runs as; nil installs the chart's ServiceAccount and RBAC
	// (InstallIdentity) and runs as that ServiceAccount, as a cluster runs it.
	Identity *Identity
	// CertDir, when set, is where someone else (a test playing the kubelet that mounts
	// the self-managed Secret) puts the serving certificate: none is issued, CAPEM stays
	// empty, and the URL names localhost, the name such a certificate is made for.
	CertDir string
}

// Server is a running pdguard.
type Server struct {
	URL        string
	MetricsURL string
	CAPEM      []byte
	LogPath    string
	// Identity is the ServiceAccount the server runs as.
	Identity *Identity
	cmd      *exec.Cmd
	done     chan struct{}
	logFile  *os.File
	binary   string
	args     []string
	baseArgs []string
	readyz   string
	// killed says why the last Stop had to SIGKILL the server.
	killed error
}

// Start issues a serving certificate for 127.0.0.1, starts `webhook serve` against the
// control plane, waits for /readyz, and registers the webhooks.
func Start(ctx context.Context, cp *controlplane.ControlPlane, opts Options) (*Server, error) {
	dir, err := os.MkdirTemp(cp.WorkDir(), "pdguard-")
	if err != nil {
		return nil, err
	}
	certDir, host, caPEM := opts.CertDir, "localhost", []byte(nil)
	if certDir == "" {
		bundle, err := certs.Issue(certs.Request{IPAddresses: []string{"127.0.0.1"}, DNSNames: []string{"localhost"}})
		if err != nil {
			return nil, err
		}
		certDir, host, caPEM = filepath.Join(dir, "certs"), "127.0.0.1", bundle.CAPEM
		if err := bundle.WriteDir(certDir); err != nil {
			return nil, err
		}
	}
	id := opts.Identity
	if id == nil {
		if id, err = InstallIdentity(ctx, cp, ChartOf(cp, opts.Binary)); err != nil {
			return nil, fmt.Errorf("installing the chart's ServiceAccount and RBAC: %w", err)
		}
	}
	ports, err := controlplane.FreePorts(3)
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:        "https://" + host + ":" + strconv.Itoa(ports[0]),
		MetricsURL: "http://127.0.0.1:" + strconv.Itoa(ports[1]) + "/metrics",
		CAPEM:      caPEM,
		LogPath:    filepath.Join(cp.LogDir(), filepath.Base(dir)+".log"),
		Identity:   id,
	}
	args := append([]string{
		"serve",
		"--kubeconfig", id.Kubeconfig,
		"--namespace", id.Namespace,
		"--cert-dir", certDir,
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(ports[0]),
		"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(ports[1]),
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(ports[2]),
		// Short, so that stopping and restarting a server costs the tests little; the
		// rolling-restart test sets its own.
		"--shutdown-drain=500ms",
	}, opts.Args...)
	s.binary, s.args, s.baseArgs = opts.Binary, args, args
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
		if err := cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{URL: s.URL, CABundle: caPEM, MutatingFailurePolicy: mp, ValidatingFailurePolicy: vp}); err != nil {
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

// RestartWith restarts the server with extra flags after the ones it was started with
// (none: as it was started), on the same ports with the same certificate.
func (s *Server) RestartWith(ctx context.Context, extra ...string) error {
	s.args = append(append([]string{}, s.baseArgs...), extra...)
	return s.Restart(ctx)
}

// Restart stops the server and starts the same command again, on the same ports with
// the same certificate, as a pod restart does; the webhook configurations stay.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	if err := s.killed; err != nil {
		s.killed = nil
		return err
	}
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

// Args are the command line the server runs with.
func (s *Server) Args() []string { return append([]string{}, s.args...) }

// Logs returns what the server has logged so far.
func (s *Server) Logs() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Forbidden returns the lines of the log where the API server refused pdguard a call:
// its RBAC (or a policy) does not cover something it does.
func (s *Server) Forbidden() []string {
	var out []string
	for _, line := range strings.Split(s.Logs(), "\n") {
		if strings.Contains(line, "is forbidden:") {
			out = append(out, line)
		}
	}
	return out
}

func (s *Server) tail() string {
	lines := strings.Split(strings.TrimSpace(s.Logs()), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "log " + s.LogPath + ":\n" + strings.Join(lines, "\n")
}

// Stop ends the server with SIGTERM and waits for it, for the grace period the chart
// gives its flags, then kills it as the kubelet would.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	grace := gracePeriod(s.args)
	select {
	case <-s.done:
	case <-time.After(grace):
		s.killed = fmt.Errorf("pdguard had not exited %s after SIGTERM (its grace period) and was killed; %s", grace, s.tail())
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.logFile.Close()
}

// gracePeriod is the chart's terminationGracePeriodSeconds for a serve command line,
// without the preStop sleep a test has no kubelet for: the drain, the shutdown timeout,
// the audit drain and 5 s.
func gracePeriod(args []string) time.Duration {
	flag := func(name string, def time.Duration) time.Duration {
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
				if d, err := time.ParseDuration(v); err == nil {
					def = d
				}
			}
		}
		return def
	}
	return flag("shutdown-drain", 5*time.Second) + flag("shutdown-timeout", 15*time.Second) + flag("audit-drain-timeout", 10*time.Second) + 5*time.Second
}

// Ready reports whether /readyz answers 200 now.
func (s *Server) Ready() bool {
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(s.readyz)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
