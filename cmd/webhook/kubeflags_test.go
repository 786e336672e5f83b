package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// The connection flags read a kubeconfig as kubectl does: --kubeconfig, --context, -n and
// -s override it.
func TestKubeFlagsReadTheKubeconfigAsKubectlDoes(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "https://a.example:6443"}}
- {name: b, cluster: {server: "https://b.example:6443"}}
users:
- {name: u, user: {token: secret-token}}
contexts:
- {name: first, context: {cluster: a, user: u, namespace: team-a}}
- {name: second, context: {cluster: b, user: u}}
current-context: first
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	for _, tc := range []struct {
		args            []string
		host, namespace string
		explicit        bool
	}{
		{[]string{"--kubeconfig", kubeconfig}, "https://a.example:6443", "team-a", false},
		{[]string{"--kubeconfig", kubeconfig, "--context", "second"}, "https://b.example:6443", "default", false},
		{[]string{"--kubeconfig", kubeconfig, "-n", "ping", "-s", "https://c.example"}, "https://c.example", "ping", true},
	} {
		f := newKubeFlags(true)
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		f.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		cfg, err := f.restConfig()
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		ns, explicit, err := f.namespace()
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.Host != tc.host || cfg.BearerToken != "secret-token" || ns != tc.namespace || explicit != tc.explicit {
			t.Errorf("%v: host %s token %q namespace %s (explicit %v), want %s, the user's token, %s (%v)",
				tc.args, cfg.Host, cfg.BearerToken, ns, explicit, tc.host, tc.namespace, tc.explicit)
		}
	}

	noUser := pflag.NewFlagSet("test", pflag.ContinueOnError)
	newKubeFlags(false).AddFlags(noUser)
	if noUser.Lookup("user") != nil || noUser.Lookup("context") == nil {
		t.Error("newKubeFlags(false) must leave --user to the command and keep --context")
	}

	_, err := newKubeFlags(true).restConfig()
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("without any kubeconfig: want an error naming --kubeconfig, got %v", err)
	}
}

// Linking Go's plugin package makes a cgo build dynamically linked with every symbol
// exported: 36 MB more binary. kustomize's plugin loader, reached through cli-runtime's
// genericclioptions, is how it came in.
func TestBinaryLinksNoGoPlugins(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "plugin" || strings.HasPrefix(pkg, "sigs.k8s.io/kustomize/") {
			t.Errorf("the webhook binary links %s; find what imports it with: go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/webhook | grep %s", pkg, pkg)
		}
	}
}
