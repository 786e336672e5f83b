package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/pdguard/pdguard/certs"
)

// Where the serving certificate comes from.
const (
	// certModeFiles: someone else writes tls.crt and tls.key into --cert-dir.
	certModeFiles = "files"
	// certModeCertManager: cert-manager does, from the Certificate --cert-manager-certificate.
	certModeCertManager = "cert-manager"
	// certModeSelfManaged: the leader keeps a CA and serving certificate in --cert-secret
	// and the caBundle of both webhook configurations; the kubelet mounts the Secret.
	certModeSelfManaged = "self-managed"
)

type certFlags struct {
	mode          string
	secret        string
	dnsNames      []string
	webhookConfig string
	certificate   string
	validity      time.Duration
	renewBefore   time.Duration
	checkEvery    time.Duration
}

func (f *certFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.mode, "cert-mode", certModeFiles, "where the serving certificate comes from: files (written into --cert-dir by someone else), cert-manager, or self-managed")
	fs.StringVar(&f.secret, "cert-secret", "pdguard-tls", "self-managed: the Secret (in --namespace) that holds the CA and serving certificate; it must exist")
	fs.StringSliceVar(&f.dnsNames, "cert-dns-names", nil, "self-managed: DNS names of the serving certificate, the Service's first (<service>.<namespace>.svc)")
	fs.StringVar(&f.webhookConfig, "webhook-configuration", "pdguard", "self-managed: name of the mutating and validating webhook configurations whose caBundle pdguard fills")
	fs.StringVar(&f.certificate, "cert-manager-certificate", "", "cert-manager: name of the Certificate (in --namespace) for the serving certificate, reported at start and on /readyz")
	fs.DurationVar(&f.validity, "cert-validity", 365*24*time.Hour, "self-managed: lifetime of a serving certificate")
	fs.DurationVar(&f.renewBefore, "cert-renew-before", 90*24*time.Hour, "self-managed: renew a certificate this long before it expires")
	fs.DurationVar(&f.checkEvery, "cert-check-interval", time.Hour, "self-managed: how often the leader checks whether a renewal is due")
}

func (f *certFlags) validate() error {
	switch f.mode {
	case certModeFiles:
	case certModeCertManager:
		if f.certificate == "" {
			return errors.New("--cert-mode=cert-manager needs --cert-manager-certificate, the Certificate to report on")
		}
	case certModeSelfManaged:
		if f.secret == "" || f.webhookConfig == "" {
			return errors.New("--cert-mode=self-managed needs --cert-secret and --webhook-configuration")
		}
		if len(f.dnsNames) == 0 {
			return errors.New("--cert-mode=self-managed needs --cert-dns-names, e.g. pdguard.pdguard-system.svc")
		}
		if f.validity <= 0 || f.renewBefore <= 0 || f.renewBefore >= f.validity {
			return fmt.Errorf("--cert-renew-before (%s) must be positive and shorter than --cert-validity (%s)", f.renewBefore, f.validity)
		}
		if f.checkEvery <= 0 || f.checkEvery >= f.renewBefore {
			return fmt.Errorf("--cert-check-interval (%s) must be positive and shorter than --cert-renew-before (%s)", f.checkEvery, f.renewBefore)
		}
	default:
		return fmt.Errorf("--cert-mode must be files, cert-manager or self-managed, got %q", f.mode)
	}
	return nil
}

// server wraps the webhook server so that, self-managed, it starts only once the kubelet
// has mounted the Secret the leader filled; the other modes start it at once.
func (f *certFlags) server(srv crwebhook.Server, certDir string, log logr.Logger) crwebhook.Server {
	if f.mode != certModeSelfManaged {
		return srv
	}
	return &awaitCertFiles{Server: srv, dir: certDir, log: log}
}

type awaitCertFiles struct {
	crwebhook.Server
	dir string
	log logr.Logger
}

func (s *awaitCertFiles) Start(ctx context.Context) error {
	waiting := false
	for {
		if _, err := certs.ServedExpiry(s.dir); err == nil {
			break
		} else if !waiting {
			s.log.Info("waiting for the serving certificate in the mounted Secret", "dir", s.dir, "error", err.Error())
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
	return s.Server.Start(ctx)
}

// setupCerts adds what the certificate mode needs to the manager, and the expiry metric
// every mode has.
func setupCerts(ctx context.Context, mgr ctrl.Manager, f *certFlags, certDir, namespace string, leaderElect bool, log logr.Logger) error {
	log = log.WithName("certs")
	if err := crmetrics.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pdguard_serving_certificate_expiry_timestamp_seconds",
		Help: "When the serving certificate in --cert-dir expires (Unix time); 0 while there is none.",
	}, func() float64 {
		t, err := certs.ServedExpiry(certDir)
		if err != nil {
			return 0
		}
		return float64(t.Unix())
	})); err != nil {
		return err
	}
	switch f.mode {
	case certModeSelfManaged:
		ready := make(chan struct{})
		err := rotator.AddRotator(mgr, &rotator.CertRotator{
			SecretKey:      types.NamespacedName{Namespace: namespace, Name: f.secret},
			CertDir:        certDir,
			CAName:         "pdguard-ca",
			CAOrganization: "pdguard",
			DNSName:        f.dnsNames[0],
			ExtraDNSNames:  f.dnsNames[1:],
			IsReady:        ready,
			Webhooks: []rotator.WebhookInfo{
				{Name: f.webhookConfig, Type: rotator.Validating},
				{Name: f.webhookConfig, Type: rotator.Mutating},
			},
			FieldOwner:             "pdguard",
			RequireLeaderElection:  leaderElect,
			ServerCertDuration:     f.validity,
			LookaheadInterval:      f.renewBefore,
			RotationCheckFrequency: f.checkEvery,
		})
		if err != nil {
			return fmt.Errorf("self-managed certificates: %w", err)
		}
		go func() {
			select {
			case <-ready:
				log.Info("serving certificate in place and caBundle injected", "secret", namespace+"/"+f.secret, "webhookConfiguration", f.webhookConfig)
			case <-ctx.Done():
			}
		}()
	case certModeCertManager:
		if err := cmapi.AddToScheme(mgr.GetScheme()); err != nil {
			return err
		}
		key := types.NamespacedName{Namespace: namespace, Name: f.certificate}
		check := func(ctx context.Context) error {
			var c cmapi.Certificate
			if err := mgr.GetAPIReader().Get(ctx, key, &c); err != nil {
				return fmt.Errorf("reading cert-manager Certificate %s: %w", key, err)
			}
			return certs.CertificateReady(&c)
		}
		if err := check(ctx); err != nil {
			log.Error(err, "serving certificate not ready at start")
		} else {
			log.Info("cert-manager Certificate is Ready", "certificate", key.String())
		}
		return mgr.AddReadyzCheck("certificate", func(req *http.Request) error {
			return certificateReadiness(check(req.Context()), certDir, time.Now())
		})
	}
	return nil
}

// certificateReadiness: a Certificate cert-manager has not renewed yet is no reason to stop
// serving while the certificate on disk is still valid (taking every replica out of the
// endpoints would fail every guarded change); it is once nothing valid is served.
func certificateReadiness(notReady error, certDir string, now time.Time) error {
	if notReady == nil {
		return nil
	}
	expiry, err := certs.ServedExpiry(certDir)
	if err != nil {
		return fmt.Errorf("%w; and no serving certificate: %v", notReady, err)
	}
	if !now.Before(expiry) {
		return fmt.Errorf("%w; and the served certificate expired at %s", notReady, expiry.UTC().Format(time.RFC3339))
	}
	return nil
}
