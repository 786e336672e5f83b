//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// certManagerCRDs are the CRDs the chart's cert-manager objects need, as the cert-manager
// Go module pdguard builds against ships them.
func certManagerCRDs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		t.Fatalf("locating the cert-manager module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")
	var crds []*unstructured.Unstructured
	for _, name := range []string{"cert-manager.io_certificates.yaml", "cert-manager.io_issuers.yaml"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("the cert-manager module ships no %s: %v", name, err)
		}
		objs, err := pdguardproc.DecodeObjects(raw)
		if err != nil {
			t.Fatal(err)
		}
		crds = append(crds, objs...)
	}
	return crds
}

// TestChartObjectsDryRun sends every object the chart renders, in both certificate modes,
// to the API server with server-side dry run: each must pass the API server's validation,
// its admission (the chart's own policies included) and, for cert-manager's kinds, the
// CRDs' schemas.
func TestChartObjectsDryRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, err := client.New(env.cp.RESTConfig(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pdguardproc.Apply(ctx, c, certManagerCRDs(t), false); err != nil {
		t.Fatal(err)
	}
	chart := pdguardproc.ChartOf(env.cp, env.binary)
	for _, mode := range []struct {
		name   string
		values []string
	}{
		{"cert-manager", []string{"certManager.enabled=true"}},
		{"self-managed", []string{"certManager.enabled=false"}},
	} {
		objs, err := chart.Render(ctx, mode.values)
		if err != nil {
			t.Fatal(err)
		}
		// A Pod (the helm test's) is admitted only once its ServiceAccount exists, which a
		// dry run does not store: the ServiceAccounts are created for real.
		var accounts []*unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "ServiceAccount" {
				accounts = append(accounts, o)
			}
		}
		if err := pdguardproc.Apply(ctx, c, accounts, false); err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		eventually(t, ctx, mode.name+" objects accepted with dry run", func() (bool, string) {
			err := pdguardproc.Apply(ctx, c, objs, true)
			// A CRD just created is served a moment later.
			if err != nil && (apierrors.IsNotFound(err) || strings.Contains(err.Error(), "no matches for kind")) {
				return false, err.Error()
			}
			if err != nil {
				t.Fatalf("%s: %v", mode.name, err)
			}
			return true, ""
		})
		for _, o := range objs {
			kinds[o.GetKind()]++
		}
		if mode.name == "cert-manager" && kinds["Certificate"] == 0 || mode.name == "self-managed" && kinds["Secret"] == 0 {
			t.Errorf("%s: unexpected kinds %v", mode.name, kinds)
		}
		t.Logf("%s: %d objects accepted with server-side dry run: %v", mode.name, len(objs), kinds)
	}
}
