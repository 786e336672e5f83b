//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

const selfManagedLane = "selfmanaged"

// startSelfManaged starts `webhook serve` for self-managed certificates as the chart
// rendered with values would (its flags less drop, then extra; its ServiceAccount and
// RBAC; its empty serving Secret, mounted as the kubelet would), answering for localhost.
// The mount ends with the test.
func startSelfManaged(t *testing.T, name string, values, drop []string, extra ...string) (*pdguardproc.Server, *pdguardproc.Identity) {
	t.Helper()
	ctx := t.Context()
	chart := pdguardproc.ChartOf(env.cp, env.binary)
	id, err := pdguardproc.InstallIdentity(ctx, env.cp, chart, values...)
	if err != nil {
		t.Fatal(err)
	}
	secretObjs, err := chart.Render(ctx, values, "templates/certificates.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.cp.RESTConfig(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pdguardproc.Apply(ctx, c, secretObjs, false); err != nil {
		t.Fatalf("the chart's serving Secret: %v", err)
	}
	args, err := chart.ServeArgs(ctx, values, append([]string{"--cert-dns-names="}, drop...)...)
	if err != nil {
		t.Fatal(err)
	}
	args = append(append(args, "--cert-dns-names=localhost"), extra...)
	certDir := filepath.Join(t.TempDir(), "serving-certs")
	mountCtx, unmount := context.WithCancel(ctx)
	writes, err := pdguardproc.MountSecret(mountCtx, env.admin, pdguardproc.Namespace, name+"-tls", certDir, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmount(); <-writes })
	srv, err := pdguardproc.Start(ctx, env.cp, pdguardproc.Options{Binary: env.binary, Args: args, Identity: id, CertDir: certDir, SkipRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	return srv, id
}

// TestSelfManagedCertificates runs `webhook serve` with the chart's flags for a cluster
// without cert-manager, as the chart's ServiceAccount with the chart's RBAC: it fills the
// chart's empty Secret, replaces a wrong caBundle in both webhook configurations with its
// CA, and the API server calls it over TLS. Then the serving certificate is broken in the
// Secret while admission requests flow: pdguard issues a new one from the same CA, the
// mounted files change, the server reloads them, and no request fails.
func TestSelfManagedCertificates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const name = "pdguard-sm"
	values := []string{"certManager.enabled=false", "fullnameOverride=" + name}
	srv, id := startSelfManaged(t, name, values, []string{"--selector="},
		"--selector="+selectorLabel+"="+selectorValue+","+laneLabel+"="+selfManagedLane,
		"--leader-election-namespace="+pdguardproc.Namespace,
		"--log-format=json")
	defer func() {
		srv.Stop()
		if lines := srv.Forbidden(); len(lines) > 0 {
			t.Errorf("the API server refused pdguard (as %s) %d calls:\n%s", id.User, len(lines), lines)
		}
	}()
	secret, err := env.admin.CoreV1().Secrets(pdguardproc.Namespace).Get(ctx, name+"-tls", metav1.GetOptions{})
	if err != nil || len(secret.Data["ca.crt"]) == 0 || len(secret.Data["tls.crt"]) == 0 {
		t.Fatalf("pdguard is ready but its Secret holds no CA and certificate: %v", err)
	}
	ca := secret.Data["ca.crt"]

	// A CA that is not pdguard's: calls fail until pdguard writes its own.
	if err := env.cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{
		Name: name, URL: srv.URL, CABundle: env.guard.CAPEM,
		Selector:                map[string]string{selectorLabel: selectorValue, laneLabel: selfManagedLane},
		MutatingFailurePolicy:   admissionregistrationv1.Ignore,
		ValidatingFailurePolicy: admissionregistrationv1.Fail,
	}); err != nil {
		t.Fatal(err)
	}
	ar := env.admin.AdmissionregistrationV1()
	injected := eventually(t, ctx, "pdguard's CA in both webhook configurations", func() (bool, string) {
		m, err1 := ar.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		v, err2 := ar.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if err1 != nil || err2 != nil {
			return false, fmt.Sprint(err1, err2)
		}
		ok := bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, ca) && bytes.Equal(v.Webhooks[0].ClientConfig.CABundle, ca)
		return ok, "caBundle not yet the Secret's ca.crt"
	})
	t.Logf("caBundle injected %s after registration", injected.Round(time.Millisecond))

	live, err := laneStatefulSet(ctx, "selfmanaged-certs", selfManagedLane)
	if err != nil {
		t.Fatal(err)
	}
	// The webhooks are in force once a tag change comes back with the canary partition.
	eventually(t, ctx, "the self-managed lane in force", func() (bool, string) {
		req := live.DeepCopy()
		stored, err := env.admin.AppsV1().StatefulSets(live.Namespace).Update(ctx, fixture.WithTag(req, newTag), metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && partitionOf(stored) == *live.Spec.Replicas-1, fmt.Sprintf("err=%v partition=%d", err, partitionOf(stored))
	})

	before, err := servedCert(srv.URL, ca)
	if err != nil {
		t.Fatalf("the served certificate does not verify against the Secret's CA: %v", err)
	}
	stop := make(chan struct{})
	counts := loopAdmissions(ctx, live, stop)
	time.Sleep(time.Second)
	// Break the serving certificate in the Secret, as a renewal due would: pdguard must
	// issue a new one from the same CA and every replica reload it from the mount.
	secret, err = env.admin.CoreV1().Secrets(pdguardproc.Namespace).Get(ctx, name+"-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(secret.Data, "tls.crt")
	delete(secret.Data, "tls.key")
	if _, err := env.admin.CoreV1().Secrets(pdguardproc.Namespace).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rotated := eventually(t, ctx, "a new serving certificate served", func() (bool, string) {
		after, err := servedCert(srv.URL, ca)
		if err != nil {
			return false, err.Error()
		}
		// cert-controller gives every certificate serial 1: compare the certificates.
		return !bytes.Equal(after.Raw, before.Raw), "still the certificate issued " + before.NotBefore.UTC().Format(time.RFC3339)
	})
	time.Sleep(time.Second)
	close(stop)
	counts.wait()
	secret, _ = env.admin.CoreV1().Secrets(pdguardproc.Namespace).Get(ctx, name+"-tls", metav1.GetOptions{})
	t.Logf("rotation: new certificate served %s after the Secret was broken; CA unchanged %v; during it %s", rotated.Round(time.Millisecond), bytes.Equal(secret.Data["ca.crt"], ca), counts)
	if counts.failed > 0 || counts.unguarded > 0 {
		t.Errorf("admissions failed during the rotation: %s; first: %q", counts, counts.firstFailures)
	}
	if counts.tagChanges == 0 {
		t.Error("no admission request was sent during the rotation")
	}
	if !bytes.Equal(secret.Data["ca.crt"], ca) {
		t.Error("a server certificate renewal replaced the CA")
	}
}

// servedCert is the leaf the server at base presents, verified against ca for localhost.
func servedCert(base string, ca []byte) (*x509.Certificate, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no CA certificate in the Secret's ca.crt")
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}
