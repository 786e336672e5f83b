package pdguardproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
)

// The release every harness installs pdguard's identity as: its ServiceAccount is then
// system:serviceaccount:pdguard-system:pdguard, the one the chart's policies name.
const (
	Release   = "pdguard"
	Namespace = "pdguard-system"
)

// identityTemplates are the chart's files that make pdguard's identity and its rights.
var identityTemplates = []string{"templates/serviceaccount.yaml", "templates/rbac.yaml"}

// Chart renders charts/pdguard with a pinned helm binary.
type Chart struct {
	// Helm is the helm binary; Dir the chart's directory.
	Helm, Dir string
}

// ChartOf finds the chart beside the binary Build made (<repo>/bin/pdguard-...) and the helm
// in the control plane's binary directory.
func ChartOf(cp *controlplane.ControlPlane, binary string) Chart {
	return Chart{Helm: filepath.Join(cp.BinDir(), "helm"), Dir: filepath.Join(filepath.Dir(filepath.Dir(binary)), "charts", "pdguard")}
}

// Render runs helm template for Release in Namespace and returns the objects it made.
// show limits it to those template files (empty: all of them).
func (c Chart) Render(ctx context.Context, values []string, show ...string) ([]*unstructured.Unstructured, error) {
	args := []string{"template", Release, c.Dir, "-n", Namespace}
	for _, s := range show {
		args = append(args, "--show-only", s)
	}
	out, err := c.helm(ctx, args, values)
	if err != nil {
		return nil, err
	}
	return DecodeObjects(out)
}

// Notes returns the NOTES.txt helm install prints for Release in Namespace, rendered with
// values by a client-side dry run (helm template leaves NOTES out).
func (c Chart) Notes(ctx context.Context, values []string) (string, error) {
	out, err := c.helm(ctx, []string{"install", Release, c.Dir, "-n", Namespace, "--dry-run=client"}, values)
	if err != nil {
		return "", err
	}
	_, notes, found := strings.Cut(string(out), "\nNOTES:\n")
	if !found {
		return "", fmt.Errorf("helm install --dry-run printed no NOTES:\n%s", out)
	}
	return notes, nil
}

// helm runs the chart's helm with values (--set) in a throwaway home, away from any
// kubeconfig.
func (c Chart) helm(ctx context.Context, args, values []string) ([]byte, error) {
	home, err := os.MkdirTemp("", "pdguard-helm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	for _, v := range values {
		args = append(args, "--set", v)
	}
	cmd := exec.CommandContext(ctx, c.Helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.Bytes(), nil
}

// DecodeObjects splits YAML or JSON documents into objects.
func DecodeObjects(raw []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decoding the chart's output: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// Apply creates each object, or replaces it when it exists. dryRun sends them with
// server-side dry run: admitted and validated, never stored.
func Apply(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, dryRun bool) error {
	for _, obj := range objs {
		var create []client.CreateOption
		var update []client.UpdateOption
		if dryRun {
			create, update = []client.CreateOption{client.DryRunAll}, []client.UpdateOption{client.DryRunAll}
		}
		err := c.Create(ctx, obj.DeepCopy(), create...)
		if apierrors.IsAlreadyExists(err) {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(obj.GroupVersionKind())
			if err = c.Get(ctx, client.ObjectKeyFromObject(obj), live); err == nil {
				next := obj.DeepCopy()
				next.SetResourceVersion(live.GetResourceVersion())
				err = c.Update(ctx, next, update...)
			}
		}
		if err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), client.ObjectKeyFromObject(obj), err)
		}
	}
	return nil
}

// Identity is pdguard's ServiceAccount as the chart installs it: the kubeconfig holds a
// token of that ServiceAccount, so every call pdguard makes is authorized by the chart's
// rendered RBAC and nothing else.
type Identity struct {
	Namespace  string
	User       string
	Kubeconfig string
}

// InstallIdentity applies the chart's ServiceAccount and RBAC, rendered with values, and
// returns a kubeconfig with a token of that ServiceAccount.
func InstallIdentity(ctx context.Context, cp *controlplane.ControlPlane, chart Chart, values ...string) (*Identity, error) {
	cfg := cp.RESTConfig()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	objs, err := chart.Render(ctx, values, identityTemplates...)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := Apply(ctx, c, objs, false); err != nil {
		return nil, err
	}
	sa := ""
	for _, o := range objs {
		if o.GetKind() == "ServiceAccount" {
			sa = o.GetName()
		}
	}
	if sa == "" {
		return nil, errors.New("the chart rendered no ServiceAccount")
	}
	path, err := TokenKubeconfig(ctx, cp, Namespace, sa)
	if err != nil {
		return nil, err
	}
	return &Identity{Namespace: Namespace, User: "system:serviceaccount:" + Namespace + ":" + sa, Kubeconfig: path}, nil
}

// TokenKubeconfig writes a kubeconfig holding a token of the ServiceAccount namespace/sa,
// as a pod of that account gets mounted, with namespace as its default namespace.
func TokenKubeconfig(ctx context.Context, cp *controlplane.ControlPlane, namespace, sa string) (string, error) {
	cs, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		return "", err
	}
	hour := int64(24 * 3600)
	tok, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s: %w", namespace, sa, err)
	}
	config := clientcmdapi.NewConfig()
	config.Clusters["pdguard"] = &clientcmdapi.Cluster{Server: cp.Host(), CertificateAuthorityData: cp.CAPEM()}
	config.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	config.Contexts[sa] = &clientcmdapi.Context{Cluster: "pdguard", AuthInfo: sa, Namespace: namespace}
	config.CurrentContext = sa
	f, err := os.CreateTemp(cp.WorkDir(), "sa-"+sa+"-*.kubeconfig")
	if err != nil {
		return "", err
	}
	f.Close()
	if err := clientcmd.WriteToFile(*config, f.Name()); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// harnessFlags are the serve flags Start sets itself: where to listen, the cert dir and
// the credentials differ from a pod's.
var harnessFlags = []string{"--cert-dir=", "--port=", "--metrics-bind-address=", "--health-probe-bind-address=", "--kubeconfig=", "--namespace="}

// ServeArgs are the `webhook serve` flags of the chart's Deployment rendered with values,
// less the ones Start sets and the ones named in drop (flag prefixes such as
// "--cert-dns-names="), for a test to replace.
func (c Chart) ServeArgs(ctx context.Context, values []string, drop ...string) ([]string, error) {
	objs, err := c.Render(ctx, values, "templates/deployment.yaml")
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("the chart rendered %d objects from deployment.yaml, want 1", len(objs))
	}
	containers, _, err := unstructured.NestedSlice(objs[0].Object, "spec", "template", "spec", "containers")
	if err != nil || len(containers) == 0 {
		return nil, fmt.Errorf("the chart's Deployment has no containers: %v", err)
	}
	raw, _, err := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	if err != nil || len(raw) == 0 || raw[0] != "serve" {
		return nil, fmt.Errorf("the chart's container args %q do not start with serve: %v", raw, err)
	}
	var args []string
next:
	for _, a := range raw[1:] {
		for _, p := range append(harnessFlags, drop...) {
			if strings.HasPrefix(a, p) {
				continue next
			}
		}
		args = append(args, a)
	}
	return args, nil
}
