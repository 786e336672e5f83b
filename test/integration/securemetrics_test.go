//go:build integration

package integration

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

const secureMetricsLane = "securemetrics"

// TestSecureMetrics runs `webhook serve` with the chart's metrics.secure=true, as the
// chart's ServiceAccount with the RBAC that value renders: the API server reviews each
// scrape's token and its right to GET /metrics. A ServiceAccount bound to a role with that
// right reads the metrics; one without it is refused, and so is a request without a token
// or with a token the API server did not issue.
func TestSecureMetrics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const name = "pdguard-secmetrics"
	values := []string{"metrics.secure=true", "fullnameOverride=" + name}
	chart := pdguardproc.ChartOf(env.cp, env.binary)
	id, err := pdguardproc.InstallIdentity(ctx, env.cp, chart, values...)
	if err != nil {
		t.Fatal(err)
	}
	// The serving certificate is the harness's (files in --cert-dir): this server is
	// never registered, and what is under test is the metrics endpoint.
	args, err := chart.ServeArgs(ctx, values, "--selector=", "--cert-", "--webhook-configuration")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(args, " "), "--metrics-secure=true") {
		t.Fatalf("the chart's flags for metrics.secure=true do not secure metrics: %q", args)
	}
	args = append(args, "--cert-mode=files",
		"--selector="+selectorLabel+"="+selectorValue+","+laneLabel+"="+secureMetricsLane,
		"--leader-election-namespace="+pdguardproc.Namespace)
	srv, err := pdguardproc.Start(ctx, env.cp, pdguardproc.Options{Binary: env.binary, Args: args, Identity: id, SkipRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Stop()
		if lines := srv.Forbidden(); len(lines) > 0 {
			t.Errorf("the API server refused pdguard (as %s) %d calls:\n%s", id.User, len(lines), lines)
		}
	}()
	url := strings.Replace(srv.MetricsURL, "http://", "https://", 1)

	ns := "secure-metrics"
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		t.Helper()
		if _, err := env.admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := env.admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	scraper, stranger := token("prometheus"), token("stranger")
	rbac := env.admin.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "secure-metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "secure-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "secure-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := t.Context()
		_ = rbac.ClusterRoleBindings().Delete(ctx, "secure-metrics-reader", metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(ctx, "secure-metrics-reader", metav1.DeleteOptions{})
	})

	// The metrics server's certificate is its own self-signed one, as in the chart
	// without metrics.certSecret: what is checked here is who may read, not the certificate.
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		// The secure metrics server makes its self-signed certificate after the manager
		// starts, so its port may open a moment after pdguard reports ready.
		for wait := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(wait); {
			time.Sleep(100 * time.Millisecond)
			resp, err = client.Do(req)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// RBAC bindings reach the API server's authorizer within moments; the first scrape
	// may be refused before that, and a refusal is cached for 30 seconds, so the
	// allowed scraper is asked last, after the others have given the binding time.
	for _, c := range []struct {
		who, token string
		status     int
		body       string
	}{
		{"no token", "", http.StatusUnauthorized, "Unauthorized"},
		{"a token the API server did not issue", "eyJhbGciOiJSUzI1NiJ9.e30.forged", http.StatusUnauthorized, "Unauthorized"},
		{"a ServiceAccount without the right", stranger, http.StatusForbidden, "Authorization denied for user system:serviceaccount:" + ns + ":stranger"},
	} {
		status, body := get(c.token)
		if status != c.status || !strings.Contains(body, c.body) {
			t.Errorf("%s: got %d %q, want %d %q", c.who, status, strings.TrimSpace(body), c.status, c.body)
		}
	}
	status, body := get(scraper)
	if status != http.StatusOK || !strings.Contains(body, "pdguard_") {
		t.Fatalf("the ServiceAccount bound to GET /metrics: got %d %.200q, want 200 and pdguard's metrics", status, body)
	}
	t.Logf("allowed scrape: %d bytes of metrics", len(body))
}
