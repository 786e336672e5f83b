// Package controlplane runs a real Kubernetes control plane on loopback for the
// integration tests, the end-to-end tests and the demo: etcd, kube-apiserver and,
// optionally, kube-controller-manager, kube-scheduler and KWOK, which plays the kubelet
// for a fake node so StatefulSet pods get scheduled, become Ready, serve logs and can be
// made to crash-loop. The binaries come from bin/tools (make tools); nothing needs a
// container runtime or network access.
package controlplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configures Start.
type Options struct {
	// BinDir holds the component binaries; the default is bin/tools in the repository
	// root, found by walking up from the working directory to pdguard's go.mod.
	BinDir string
	// WorkDir holds PKI, kubeconfigs, etcd data, logs and served pod logs. When empty a
	// temporary directory is made, and removed again by Stop.
	WorkDir string
	// Controllers starts kube-controller-manager and kube-scheduler, which StatefulSets
	// need to get pods at all, and binds every pending PVC to a PV made for it.
	Controllers bool
	// KWOK starts KWOK with one fake node, NodeName, so scheduled pods run. Without
	// Controllers nothing schedules pods or lifts the node's not-ready taint, so only
	// pods created with spec.nodeName run.
	KWOK bool
	// Logf receives progress and unexpected component exits; nil discards them.
	Logf func(format string, args ...any)
}

// NodeName is the fake node KWOK manages.
const NodeName = "kwok-node-0"

const (
	// The service range must not overlap the pod range KWOK hands out IPs from.
	serviceCIDR = "10.96.0.0/16"
	podCIDR     = "10.244.0.0/16"
	issuer      = "https://kubernetes.default.svc.cluster.local"
	// waitTimeout bounds each startup wait; generous because a loaded two-core machine
	// running several suites at once is the normal case.
	waitTimeout = 2 * time.Minute
	stopGrace   = 10 * time.Second
)

// controllers are the kube-controller-manager loops the tests rely on: StatefulSet
// rollouts and their garbage, the workload kinds charts commonly add (Deployments, Jobs
// for hooks, PodDisruptionBudgets), namespaces and service accounts for pod admission,
// node-lifecycle to lift the not-ready taint from the fake node, and the volume binder
// with its protection controllers so PVCs from volumeClaimTemplates bind and delete.
var controllers = []string{
	"statefulset-controller",
	"deployment-controller",
	"replicaset-controller",
	"job-controller",
	"disruption-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"node-lifecycle-controller",
	"endpointslice-controller",
	"persistentvolume-binder-controller",
	"persistentvolumeclaim-protection-controller",
	"persistentvolume-protection-controller",
}

// ControlPlane is a running control plane. Stop it when done.
type ControlPlane struct {
	opts        Options
	workDir     string
	ownsWorkDir bool
	logDir      string
	pkiDir      string

	ca         *authority
	caPath     string
	host       string
	admin      *rest.Config
	kubeconfig string
	kwokPort   int

	mu       sync.Mutex
	procs    []*process
	logsMu   sync.Mutex
	stopOnce sync.Once
	stopErr  error
	cancelBg context.CancelFunc
	bgCtx    context.Context
	// stopped is the kube-apiserver StopAPIServer stopped, until StartAPIServer.
	stopped   *process
	bgDone    sync.WaitGroup
	userCerts atomic.Int64
}

// Start brings up the control plane and returns once it serves requests and, with
// KWOK, once the fake node is Ready (and untainted, with Controllers). ctx bounds the
// startup only; the components run until Stop. On failure everything started so far
// is stopped, the work dir is kept, and the error names the component and its log.
func Start(ctx context.Context, opts Options) (cp *ControlPlane, err error) {
	began := time.Now()
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.BinDir == "" {
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		opts.BinDir = filepath.Join(root, "bin", "tools")
	}
	need := []string{"etcd", "kube-apiserver"}
	if opts.Controllers {
		need = append(need, "kube-controller-manager", "kube-scheduler")
	}
	if opts.KWOK {
		need = append(need, "kwok")
	}
	for _, name := range need {
		if _, err := os.Stat(filepath.Join(opts.BinDir, name)); err != nil {
			return nil, fmt.Errorf("controlplane: %s not found in %s; run `make tools`", name, opts.BinDir)
		}
	}

	cp = &ControlPlane{opts: opts, workDir: opts.WorkDir}
	if cp.workDir == "" {
		dir, err := os.MkdirTemp("", "pdguard-controlplane-")
		if err != nil {
			return nil, fmt.Errorf("controlplane: creating work dir: %w", err)
		}
		cp.workDir, cp.ownsWorkDir = dir, true
	}
	if cp.workDir, err = filepath.Abs(cp.workDir); err != nil {
		return nil, fmt.Errorf("controlplane: work dir: %w", err)
	}
	cp.logDir = filepath.Join(cp.workDir, "logs")
	cp.pkiDir = filepath.Join(cp.workDir, "pki")
	for _, dir := range []string{cp.logDir, cp.pkiDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("controlplane: creating %s: %w", dir, err)
		}
	}
	bgCtx, cancel := context.WithCancel(context.Background())
	cp.cancelBg, cp.bgCtx = cancel, bgCtx
	defer func() {
		if err != nil {
			// The error points into the logs, so they stay even in a temporary work dir.
			cp.ownsWorkDir = false
			_ = cp.Stop()
			err = fmt.Errorf("controlplane: %w (all logs: %s)", err, cp.logDir)
			cp = nil
		}
	}()

	if err := cp.startEtcdAndAPIServer(ctx); err != nil {
		return cp, err
	}
	opts.Logf("controlplane: apiserver ready at %s after %s", cp.host, time.Since(began).Round(time.Millisecond))

	if opts.Controllers {
		if err := cp.startControllers(); err != nil {
			return cp, err
		}
		if err := cp.provisionVolumes(bgCtx); err != nil {
			return cp, err
		}
	}
	if opts.KWOK {
		if err := cp.startKWOK(ctx); err != nil {
			return cp, err
		}
	}
	if opts.Controllers {
		if err := cp.waitDefaultServiceAccount(ctx); err != nil {
			return cp, err
		}
	}
	cp.watchExits(bgCtx)
	opts.Logf("controlplane: started in %s (work dir %s)", time.Since(began).Round(time.Millisecond), cp.workDir)
	return cp, nil
}

func (cp *ControlPlane) startEtcdAndAPIServer(ctx context.Context) error {
	ca, err := newAuthority()
	if err != nil {
		return err
	}
	cp.ca = ca
	cp.caPath = filepath.Join(cp.pkiDir, "ca.crt")
	if err := os.WriteFile(cp.caPath, ca.certPEM, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", cp.caPath, err)
	}
	serving, err := ca.serving("kube-apiserver",
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)})
	if err != nil {
		return err
	}
	servingCert, servingKey, err := serving.write(cp.pkiDir, "apiserver")
	if err != nil {
		return err
	}
	kubeletClient, err := ca.client("kube-apiserver-kubelet-client", "system:masters")
	if err != nil {
		return err
	}
	kubeletCert, kubeletKey, err := kubeletClient.write(cp.pkiDir, "apiserver-kubelet-client")
	if err != nil {
		return err
	}
	saKey, saPub, err := newServiceAccountKey()
	if err != nil {
		return err
	}
	saKeyPath := filepath.Join(cp.pkiDir, "service-account.key")
	saPubPath := filepath.Join(cp.pkiDir, "service-account.pub")
	if err := os.WriteFile(saKeyPath, saKey, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", saKeyPath, err)
	}
	if err := os.WriteFile(saPubPath, saPub, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", saPubPath, err)
	}

	ports, err := FreePorts(4)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	cp.kwokPort = ports[3]

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcd, err := cp.start("etcd", []string{
		"--name=default",
		"--data-dir=" + filepath.Join(cp.workDir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		// Throwaway data: fsync only costs time.
		"--unsafe-no-fsync=true",
	}, nil)
	if err != nil {
		return err
	}
	if err := cp.waitFor(ctx, etcd, "etcd to report healthy", func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, etcdURL+"/health")
	}); err != nil {
		return err
	}

	apiserver, err := cp.start("kube-apiserver", []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--advertise-address=127.0.0.1",
		// The default reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + servingCert,
		"--tls-private-key-file=" + servingKey,
		"--client-ca-file=" + cp.caPath,
		"--service-account-key-file=" + saPubPath,
		"--service-account-signing-key-file=" + saKeyPath,
		"--service-account-issuer=" + issuer,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--allow-privileged=true",
		// KWOK's kubelet endpoint is reached by IP; without --kubelet-certificate-authority
		// the apiserver accepts its self-signed serving certificate.
		"--kubelet-client-certificate=" + kubeletCert,
		"--kubelet-client-key=" + kubeletKey,
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false",
	}, nil)
	if err != nil {
		return err
	}

	cp.host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	admin, err := ca.client("pdguard-admin", "system:masters")
	if err != nil {
		return err
	}
	cp.admin = cp.restConfig(admin)
	if cp.kubeconfig, err = cp.writeKubeconfig("admin", admin); err != nil {
		return err
	}
	readyClient, err := rest.HTTPClientFor(cp.admin)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	return cp.waitFor(ctx, apiserver, "kube-apiserver /readyz", func(ctx context.Context) error {
		return httpOK(ctx, readyClient, cp.host+"/readyz")
	})
}

func (cp *ControlPlane) startControllers() error {
	cmCert, err := cp.ca.client("system:kube-controller-manager", "system:masters")
	if err != nil {
		return err
	}
	cmKubeconfig, err := cp.writeKubeconfig("kube-controller-manager", cmCert)
	if err != nil {
		return err
	}
	if _, err := cp.start("kube-controller-manager", []string{
		"--kubeconfig=" + cmKubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--controllers=" + strings.Join(controllers, ","),
		"--service-account-private-key-file=" + filepath.Join(cp.pkiDir, "service-account.key"),
		"--root-ca-file=" + cp.caPath,
	}, nil); err != nil {
		return err
	}

	schedCert, err := cp.ca.client("system:kube-scheduler", "system:masters")
	if err != nil {
		return err
	}
	schedKubeconfig, err := cp.writeKubeconfig("kube-scheduler", schedCert)
	if err != nil {
		return err
	}
	schedConfig := filepath.Join(cp.workDir, "kube-scheduler.yaml")
	config := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
leaderElection:
  leaderElect: false
`, schedKubeconfig)
	if err := os.WriteFile(schedConfig, []byte(config), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", schedConfig, err)
	}
	_, err = cp.start("kube-scheduler", []string{"--config=" + schedConfig, "--secure-port=0"}, nil)
	return err
}

func (cp *ControlPlane) waitDefaultServiceAccount(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(cp.admin)
	if err != nil {
		return err
	}
	cm := cp.proc("kube-controller-manager")
	// Pod admission rejects pods until the namespace's default service account exists.
	return cp.waitFor(ctx, cm, "the default service account in namespace default", func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// Stop ends every component, their whole process groups, and waits for them. It
// removes the work dir only if Start created it. Safe to call more than once.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		if cp.cancelBg != nil {
			cp.cancelBg()
		}
		cp.mu.Lock()
		procs := cp.procs
		cp.mu.Unlock()
		var errs []error
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].stop(stopGrace); err != nil {
				errs = append(errs, err)
			}
		}
		cp.bgDone.Wait()
		if cp.ownsWorkDir && len(errs) == 0 {
			if err := os.RemoveAll(cp.workDir); err != nil {
				errs = append(errs, fmt.Errorf("removing %s: %w", cp.workDir, err))
			}
		}
		cp.stopErr = errors.Join(errs...)
	})
	return cp.stopErr
}

// RESTConfig returns a fresh admin (system:masters) client configuration.
func (cp *ControlPlane) RESTConfig() *rest.Config { return rest.CopyConfig(cp.admin) }

// KubeconfigPath is an admin kubeconfig file for kubectl and helm.
func (cp *ControlPlane) KubeconfigPath() string { return cp.kubeconfig }

// Host is the apiserver URL, https://127.0.0.1:PORT.
func (cp *ControlPlane) Host() string { return cp.host }

// CAPEM is the CA that signed the apiserver's serving certificate and every client
// certificate.
func (cp *ControlPlane) CAPEM() []byte { return append([]byte(nil), cp.ca.certPEM...) }

// LogDir holds one log file per component, named after it.
func (cp *ControlPlane) LogDir() string { return cp.logDir }

// WorkDir is the directory everything of this control plane lives in.
func (cp *ControlPlane) WorkDir() string { return cp.workDir }

// BinDir is where the component binaries, kubectl and helm were found.
func (cp *ControlPlane) BinDir() string { return cp.opts.BinDir }

// ConfigFor returns a client configuration authenticating as user with the given
// groups by client certificate. Such a user has no permissions until RBAC grants them.
func (cp *ControlPlane) ConfigFor(user string, groups ...string) (*rest.Config, error) {
	pair, err := cp.ca.client(user, groups...)
	if err != nil {
		return nil, fmt.Errorf("controlplane: client certificate for %q: %w", user, err)
	}
	return cp.restConfig(pair), nil
}

// KubeconfigFor writes a kubeconfig authenticating as user with the given groups, for
// running kubectl or helm as someone other than the admin, and returns its path.
func (cp *ControlPlane) KubeconfigFor(user string, groups ...string) (string, error) {
	pair, err := cp.ca.client(user, groups...)
	if err != nil {
		return "", fmt.Errorf("controlplane: client certificate for %q: %w", user, err)
	}
	n := cp.userCerts.Add(1)
	path, err := cp.writeKubeconfig(fmt.Sprintf("user-%d-%s", n, sanitize(user)), pair)
	if err != nil {
		return "", fmt.Errorf("controlplane: %w", err)
	}
	return path, nil
}

func (cp *ControlPlane) restConfig(pair *keyPair) *rest.Config {
	return &rest.Config{
		Host: cp.host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   cp.ca.certPEM,
			CertData: pair.CertPEM,
			KeyData:  pair.KeyPEM,
		},
		// Tests create and poll in bursts; client-side throttling would only add noise.
		QPS:   200,
		Burst: 400,
	}
}

func (cp *ControlPlane) start(name string, args []string, env []string) (*process, error) {
	p, err := startProcess(name, filepath.Join(cp.opts.BinDir, name), args, env, cp.logDir)
	if err != nil {
		return nil, err
	}
	cp.mu.Lock()
	cp.procs = append(cp.procs, p)
	cp.mu.Unlock()
	cp.opts.Logf("controlplane: started %s (pid %d, log %s)", name, p.cmd.Process.Pid, p.logPath)
	return p, nil
}

// PIDs gives the process ID of each running component by name, so that a benchmark can
// keep the control plane off the core it measures.
func (cp *ControlPlane) PIDs() map[string]int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	pids := make(map[string]int, len(cp.procs))
	for _, p := range cp.procs {
		if !p.exited() {
			pids[p.name] = p.cmd.Process.Pid
		}
	}
	return pids
}

func (cp *ControlPlane) proc(name string) *process {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range cp.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// waitFor polls cond until it succeeds, failing early if any component has exited.
// owner is the component whose log explains a timeout.
func (cp *ControlPlane) waitFor(ctx context.Context, owner *process, what string, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		cp.mu.Lock()
		procs := cp.procs
		cp.mu.Unlock()
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("waiting for %s: %w", what, p.exitError())
			}
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		last = cond(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			where := ""
			if owner != nil {
				where = fmt.Sprintf("; log: %s%s", owner.logPath, logTail(owner.logPath, 8))
			}
			return fmt.Errorf("waiting for %s: %w (last error: %v)%s", what, ctx.Err(), last, where)
		case <-tick.C:
		}
	}
}

// watchExits reports components that die while the control plane is in use; the
// tests then fail on whatever stopped working, and this names the cause.
func (cp *ControlPlane) watchExits(ctx context.Context) {
	cp.mu.Lock()
	procs := cp.procs
	cp.mu.Unlock()
	for _, p := range procs {
		cp.watchExit(p)
	}
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for i := 0; i < 20 && sc.Scan(); i++ {
			if line := sc.Text(); strings.Contains(line, "failed") {
				body.WriteString(" " + line)
			}
		}
		return fmt.Errorf("GET %s: %s%s", url, resp.Status, body.String())
	}
	return nil
}

// FreePorts reserves n loopback ports and releases them for the caller's processes to
// bind; another process could take one in between, which then fails with a clear error.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserving a loopback port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// repoRoot walks up from the working directory to pdguard's go.mod; tests run from
// their package directory and the demo from anywhere in the tree.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("controlplane: %w", err)
	}
	for {
		if modulePath(filepath.Join(dir, "go.mod")) == "github.com/pdguard/pdguard" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("controlplane: no pdguard go.mod above the working directory; set Options.BinDir")
		}
		dir = parent
	}
}

// modulePath returns the module declared by a go.mod, or "" if there is none; nested
// modules such as hack/tools have go.mod files of their own.
func modulePath(goMod string) string {
	data, err := os.ReadFile(goMod)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if fields := strings.Fields(line); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`)
		}
	}
	return ""
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}
