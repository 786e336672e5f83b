package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/pdguard/pdguard/internal/logbuffer"
	"github.com/pdguard/pdguard/webhook"
)

type serveFlags struct {
	guard            guardFlags
	certDir          string
	host             string
	port             int
	metricsAddr      string
	probeAddr        string
	leaderElect      bool
	leaderElectionNS string
	leaderElectionID string
	namespace        string
	verdictKeySecret string
	logFormat        string
	logLevel         string
	evidence         evidenceFlags
	audit            auditFlags
	shutdown         shutdownFlags
	certs            certFlags
	scope            scopeFlags
	metricsSecure    bool
	http2            bool
	pprofAddr        string
	keepStartupPages bool
}

func newServeCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the admission webhooks and run the canary evidence controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, closeLog, err := newLogger(f.logFormat, f.logLevel, os.Stderr)
			if err != nil {
				return badInput(err)
			}
			defer closeLog()
			ctrl.SetLogger(log)
			klog.SetLogger(log)
			if err := setGC(); err != nil {
				return badInput(err)
			}
			return serve(cmd, &f, log)
		},
	}
	fs := cmd.Flags()
	f.guard.register(fs)
	fs.StringVar(&f.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key; reloaded when they change")
	fs.StringVar(&f.host, "host", "", "address the webhook server listens on (empty: all)")
	fs.IntVar(&f.port, "port", 9443, "port the webhook server listens on")
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint (0 disables it)")
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.StringVar(&f.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof profiles, unauthenticated: bind it to loopback and reach it with kubectl port-forward (0 disables it)")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect one leader for the evidence controller; every replica serves admission")
	fs.StringVar(&f.leaderElectionID, "leader-election-id", "pdguard-evidence.pdguard.io", "name of the leader election lease; releases in one namespace need their own (the chart uses RELEASE-evidence)")
	fs.StringVar(&f.leaderElectionNS, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's namespace)")
	fs.StringVar(&f.namespace, "namespace", "", "namespace of pdguard's own Secret and lease (default: the pod's namespace, POD_NAMESPACE)")
	fs.StringVar(&f.verdictKeySecret, "verdict-key-secret", "pdguard-verdict-key", "Secret holding the key that signs replace-profile verdicts; created with a random key when absent")
	fs.StringVar(&f.logFormat, "log-format", "json", "json or console")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info or error")
	f.evidence.register(fs)
	f.audit.register(fs)
	f.shutdown.register(fs)
	f.certs.register(fs)
	f.scope.register(fs)
	fs.BoolVar(&f.http2, "http2", true, "offer HTTP/2 on the webhook port besides HTTP/1.1: a stopping replica then tells the API server with GOAWAY, which retries elsewhere what it had not sent; false: HTTP/1.1 only")
	fs.BoolVar(&f.keepStartupPages, "keep-startup-pages", false, "keep the pages of the binary that start-up mapped; by default they are handed back once the caches have synced, and serving maps again what it uses (Linux only)")
	fs.BoolVar(&f.metricsSecure, "metrics-secure", false, "serve metrics over HTTPS, each scrape authenticated (TokenReview) and authorized (SubjectAccessReview, GET /metrics); false: plain HTTP")
	return cmd
}

// newLogger builds serve's logger, writing to out through a logbuffer.Writer: every
// admission decision logs a line, and a write that waits on stderr's reader would hold up
// the answer and, behind zap's lock, every other request's line. closeLog writes what is
// still buffered.
func newLogger(format, level string, out io.Writer) (log logr.Logger, closeLog func(), err error) {
	var cfg zap.Config
	var enc zapcore.Encoder
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "ts"
		cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(cfg.EncoderConfig)
	case "console":
		cfg = zap.NewDevelopmentConfig()
		enc = zapcore.NewConsoleEncoder(cfg.EncoderConfig)
	default:
		return logr.Discard(), func() {}, fmt.Errorf("--log-format must be json or console, got %q", format)
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return logr.Discard(), func() {}, fmt.Errorf("--log-level: %w", err)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	buffered := logbuffer.New(out, logbuffer.Options{})
	z, err := cfg.Build(zap.WrapCore(func(zapcore.Core) zapcore.Core {
		return zapcore.NewCore(enc, buffered, cfg.Level)
	}))
	if err != nil {
		buffered.Close()
		return logr.Discard(), func() {}, err
	}
	return zapr.NewLogger(z), func() { _ = buffered.Close() }, nil
}

func serve(cmd *cobra.Command, f *serveFlags, log logr.Logger) error {
	opts, sel, err := f.guard.options()
	if err != nil {
		return badInput(err)
	}
	engine, err := f.guard.engine()
	if err != nil {
		return badInput(err)
	}
	if err := f.evidence.validate(); err != nil {
		return badInput(err)
	}
	if err := f.audit.validate(); err != nil {
		return badInput(err)
	}
	if err := f.shutdown.validate(); err != nil {
		return badInput(err)
	}
	if err := f.certs.validate(); err != nil {
		return badInput(err)
	}
	if err := f.scope.validate(); err != nil {
		return badInput(err)
	}
	drain := newDrainer(f.shutdown.drain, clock.RealClock{})
	ctx := drain.Serving(cmd.Context(), log)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes client configuration (in-cluster, --kubeconfig or KUBECONFIG): %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOptions(f.metricsAddr, f.metricsSecure, tlsOptions(false)),
		HealthProbeBindAddress:  f.probeAddr,
		PprofBindAddress:        f.pprofAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        f.leaderElectionID,
		LeaderElectionNamespace: f.leaderElectionNS,
		// A stopping leader hands the lease back, so the evidence controller moves to
		// another replica within a retry period instead of a lease duration. Safe: serve
		// returns, and the process exits, once the manager has stopped.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &f.shutdown.timeout,
		WebhookServer:                 drain.server(f.certs.server(crwebhook.NewServer(crwebhook.Options{Host: f.host, Port: f.port, CertDir: f.certDir, TLSOpts: tlsOptions(f.http2)}), f.certDir, log)),
		Cache:                         cacheOptions(sel, f.scope.cacheNamespaces()),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns := pdguardNamespace(f.namespace)
	key, err := loadVerdictKey(ctx, cs, ns, f.verdictKeySecret)
	if err != nil {
		return err
	}
	opts.Trust = key.Trust
	rec, err := setupAudit(mgr, &f.audit, scheme, log.WithName("audit"))
	if err != nil {
		return err
	}
	if err := setupCerts(ctx, mgr, &f.certs, f.certDir, ns, f.leaderElect, log); err != nil {
		return err
	}
	g := webhook.NewGuard(engine, opts)
	pods := webhook.CachedPods{Reader: mgr.GetCache()}
	srv := mgr.GetWebhookServer()
	srv.Register("/mutate", &webhook.Handler{Phase: "mutate", Guard: g, Selector: sel, Pods: pods, Audit: rec.Pipeline, Container: opts.Diff.Container})
	srv.Register("/validate", &webhook.Handler{Phase: "validate", Guard: g, Selector: sel, Pods: pods, Audit: rec.Pipeline, Container: opts.Diff.Container})

	if f.guard.policyDir != "" {
		go engine.Watch(ctx, rec.Metrics().CountErrors(log.WithName("policy")))
	}
	if err := setupEvidence(mgr, &f.evidence, opts, sel, key, log, rec.Pipeline); err != nil {
		return err
	}

	// Admission reads pods from the cache: make the informers exist before the server
	// reports ready, so the first request never waits for a cache to fill.
	for _, obj := range []client.Object{&corev1.Pod{}, &appsv1.StatefulSet{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("starting informer for %T: %w", obj, err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("shutdown", drain.Ready); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		syncCtx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(syncCtx) {
			return errors.New("informer caches not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	if !f.keepStartupPages {
		go releaseStartupPages(ctx, mgr.GetCache(), log)
	}
	log.Info("starting pdguard", "version", version, "selector", sel.String(), "container", opts.Diff.Container,
		"enforcement", opts.Enforcement, "canaryReplicas", opts.CanaryReplicas, "soak", opts.Soak.String(), "verdictKeySecret", ns+"/"+f.verdictKeySecret, "pid", os.Getpid())
	return rec.runAndDrain(ctx, mgr)
}
