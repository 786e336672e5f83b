// Command noopwebhook is the baseline `make bench-load` compares pdguard with: a
// controller-runtime manager serving a mutating and a validating webhook that allow
// everything, built from the same controller-runtime as pdguard, with the same TLS and
// metrics set-up. What pdguard costs above it is what its decisions cost.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func main() {
	certDir := flag.String("cert-dir", "", "directory with tls.crt and tls.key")
	host := flag.String("host", "127.0.0.1", "address the webhook server listens on")
	port := flag.Int("port", 9443, "port the webhook server listens on")
	metricsAddr := flag.String("metrics-bind-address", "127.0.0.1:8080", "address of the Prometheus metrics endpoint")
	flag.Parse()
	// controller-runtime registers --kubeconfig itself.
	if err := run(*certDir, *host, *port, *metricsAddr); err != nil {
		fmt.Fprintln(os.Stderr, "noopwebhook:", err)
		os.Exit(1)
	}
}

func run(certDir, host string, port int, metricsAddr string) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	tlsOpts := []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.NextProtos = []string{"http/1.1"}
	}}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:        scheme,
		Metrics:       metricsserver.Options{BindAddress: metricsAddr},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{Host: host, Port: port, CertDir: certDir, TLSOpts: tlsOpts}),
	})
	if err != nil {
		return err
	}
	allow := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})
	mgr.GetWebhookServer().Register("/mutate", &admission.Webhook{Handler: allow})
	mgr.GetWebhookServer().Register("/validate", &admission.Webhook{Handler: allow})
	return mgr.Start(ctrl.SetupSignalHandler())
}
