package charts

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/pmezard/go-difflib/difflib"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	pdguardChart = "pdguard"
	testChart    = "../test/charts/pingdirectory"
	// The release the reference StatefulSet was rendered for.
	referenceRelease = "pd-upgrade-example"
	referenceFile    = "testdata/ping-devops-0.12.0-statefulset.yaml"

	release   = "pdguard"
	namespace = "pdguard-system"
)

// Both majors are exercised: helm 4 is what the tests install with, helm 3 is what most
// users still run, and their schema validators and renderers have differed before.
var helmBinaries = []string{"helm", "helm3"}

// fakeCA stands for a CA bundle; the chart only moves it, never reads it.
const fakeCA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIQpdguardTestCA0123456789wCgYIKoZIzj0EAwIwADAe\n-----END CERTIFICATE-----\n"

func helmPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", "tools", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: build the pinned helm binaries first with `make tools` or `hack/build-tools.sh helm helm3` (%v)", p, err)
	}
	return p
}

// runHelm runs a pinned helm with its own empty config, cache and kubeconfig, so nothing on
// the machine (repositories, plugins, a live cluster) changes what it renders.
func runHelm(t *testing.T, helm string, args ...string) (stdout []byte, err error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmPath(t, helm), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w\n%s%s", helm, strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.Bytes(), nil
}

type manifest struct {
	kind, name string
	// hook is the helm.sh/hook annotation: helm runs such objects (the helm test) apart
	// from the release's own.
	hook string
	raw  []byte
}

type rendered []manifest

// template renders chart and splits the output into its documents.
func template(t *testing.T, helm, releaseName, chart string, args ...string) rendered {
	t.Helper()
	base := []string{"template", releaseName, chart, "--namespace", namespace}
	if chart == pdguardChart {
		// A cluster with cert-manager, where certManager.enabled: null turns it on;
		// TestPdguardCertModes renders without it.
		base = append(base, "--api-versions", "cert-manager.io/v1/Certificate")
	}
	out, err := runHelm(t, helm, append(base, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var docs rendered
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading helm output: %v", err)
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name        string            `json:"name"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue // a template that rendered only comments
		}
		docs = append(docs, manifest{kind: head.Kind, name: head.Metadata.Name, hook: head.Metadata.Annotations["helm.sh/hook"], raw: doc})
	}
	return docs
}

// release is what helm installs as the release, without its hooks.
func (r rendered) release() rendered {
	var out rendered
	for _, m := range r {
		if m.hook == "" {
			out = append(out, m)
		}
	}
	return out
}

func (r rendered) kinds() []string {
	var kinds []string
	for _, m := range r {
		kinds = append(kinds, m.kind)
	}
	slices.Sort(kinds)
	return kinds
}

func (r rendered) ofKind(kind string) []manifest {
	var out []manifest
	for _, m := range r {
		if m.kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// decode fills into from the only document of kind. Unknown fields are errors, so a
// misspelt field in a template fails here instead of being dropped by the API server.
func (r rendered) decode(t *testing.T, kind string, into any) {
	t.Helper()
	docs := r.ofKind(kind)
	if len(docs) != 1 {
		t.Fatalf("want one %s, rendered %d (kinds: %v)", kind, len(docs), r.kinds())
	}
	decodeStrict(t, docs[0], into)
}

// decodeNamed fills into from the document of kind called name.
func (r rendered) decodeNamed(t *testing.T, kind, name string, into any) {
	t.Helper()
	for _, m := range r.ofKind(kind) {
		if m.name == name {
			decodeStrict(t, m, into)
			return
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
}

func decodeStrict(t *testing.T, m manifest, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(m.raw, into); err != nil {
		t.Fatalf("%s %s does not decode as %T: %v\n%s", m.kind, m.name, into, err, m.raw)
	}
}

// flags maps each --name=value argument to its value, failing on anything else after the
// subcommand or on a flag given twice.
func flags(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container args must start with the serve subcommand, got %q", c.Args)
	}
	out := map[string]string{}
	for _, a := range c.Args[1:] {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") {
			t.Errorf("argument %q is not --name=value", a)
			continue
		}
		if _, dup := out[name]; dup {
			t.Errorf("--%s given twice", name)
		}
		out[name] = value
	}
	return out
}

func container(t *testing.T, d appsv1.Deployment) corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("want one container, got %d", n)
	}
	return d.Spec.Template.Spec.Containers[0]
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container has no port named %q", name)
	return 0
}

func volume(t *testing.T, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("pod has no volume %q", name)
	return corev1.Volume{}
}

func mountPath(t *testing.T, c corev1.Container, volumeName string) string {
	t.Helper()
	return mount(t, c, volumeName).MountPath
}

func mount(t *testing.T, c corev1.Container, volumeName string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == volumeName {
			return m
		}
	}
	t.Fatalf("container does not mount volume %q", volumeName)
	return corev1.VolumeMount{}
}

// show prints what a pointer field holds, for messages.
func show[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

// js prints an API struct compactly, without the nil fields %+v lists.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChartsLint(t *testing.T) {
	caFile := writeFile(t, "ca.crt", fakeCA)
	cases := []struct {
		name  string
		chart string
		args  []string
	}{
		{"pdguard", pdguardChart, nil},
		{"pdguard without cert-manager", pdguardChart, []string{"--set", "certManager.enabled=false", "--set-file", "tls.caBundle=" + caFile}},
		{"pdguard with every optional part", pdguardChart, []string{
			"--set", "metrics.serviceMonitor.enabled=true",
			"--set", "policy.modules.site\\.rego=package pdguard.validate",
		}},
		{"pingdirectory", testChart, nil},
		{"pingdirectory on KWOK", testChart, []string{"--set", "persistence.enabled=false", "--set", "extraPodLabels.stage=crash"}},
	}
	for _, helm := range helmBinaries {
		for _, c := range cases {
			t.Run(helm+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				if _, err := runHelm(t, helm, append([]string{"lint", "--strict", c.chart}, c.args...)...); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestPdguardSchemaRejects(t *testing.T) {
	cases := []struct {
		set  string
		want string // part of the schema error
	}{
		{"guard.enforcement=block", "/guard/enforcement"},
		{"guard.enforcement=Enforce", "/guard/enforcement"},
		{"guard.singleReplica=allow", "/guard/singleReplica"},
		{"guard.soak=soon", "/guard/soak"},
		{"guard.canaryReplicas=0", "/guard/canaryReplicas"},
		{"logFormat=text", "/logFormat"},
		{"webhook.mutating.failurePolicy=Sometimes", "/webhook/mutating/failurePolicy"},
		{"webhook.validating.failurePolicy=ignore", "/webhook/validating/failurePolicy"},
		{"guard.enforcment=warn", "enforcment"},
		{"shutdown.drainSeconds=-1", "/shutdown/drainSeconds"},
		{"shutdown.timeoutSeconds=0", "/shutdown/timeoutSeconds"},
		{"audit.drainTimeout=1m30s", "/audit/drainTimeout"},
		{"guard.selector=null", "selector"},
	}
	for _, helm := range helmBinaries {
		for _, c := range cases {
			t.Run(helm+"/"+c.set, func(t *testing.T) {
				t.Parallel()
				_, err := runHelm(t, helm, "template", release, pdguardChart, "--set", c.set)
				if err == nil {
					t.Fatalf("--set %s rendered; the schema must reject it", c.set)
				}
				if !strings.Contains(err.Error(), "schema") || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("--set %s: want a schema error naming %q, got:\n%v", c.set, c.want, err)
				}
			})
		}
	}
}

func TestPdguardDefaults(t *testing.T) {
	for _, helm := range helmBinaries {
		t.Run(helm, func(t *testing.T) {
			t.Parallel()
			all := template(t, helm, release, pdguardChart)
			checkPdguardDefaults(t, all.release())
			var hooks []string
			for _, m := range all {
				if m.hook != "" {
					hooks = append(hooks, m.kind+"="+m.hook)
				}
			}
			slices.Sort(hooks)
			if want := []string{"Pod=test", "Role=test", "RoleBinding=test", "ServiceAccount=test", "StatefulSet=test"}; !slices.Equal(hooks, want) {
				t.Errorf("helm test hooks %v, want %v", hooks, want)
			}
		})
	}
}

func checkPdguardDefaults(t *testing.T, r rendered) {
	var (
		dep        appsv1.Deployment
		svc        corev1.Service
		mutating   admissionregistrationv1.MutatingWebhookConfiguration
		validating admissionregistrationv1.ValidatingWebhookConfiguration
		serving    cmapi.Certificate
	)
	r.decode(t, "Deployment", &dep)
	r.decode(t, "Service", &svc)
	r.decode(t, "MutatingWebhookConfiguration", &mutating)
	r.decode(t, "ValidatingWebhookConfiguration", &validating)
	r.decodeNamed(t, "Certificate", release+"-serving", &serving)
	c := container(t, dep)
	args := flags(t, c)

	t.Run("kinds", func(t *testing.T) {
		want := []string{
			"Certificate", "Certificate", "ClusterRole", "ClusterRoleBinding", "Deployment", "Issuer", "Issuer",
			"MutatingWebhookConfiguration", "PodDisruptionBudget", "Role", "Role", "Role", "RoleBinding", "RoleBinding", "RoleBinding", "Service",
			"ServiceAccount", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicyBinding",
			"ValidatingWebhookConfiguration",
		}
		if got := r.kinds(); !slices.Equal(got, want) {
			t.Errorf("rendered kinds\n got %v\nwant %v", got, want)
		}
	})

	t.Run("flags", func(t *testing.T) {
		want := map[string]string{
			"cert-dir":                  "/tmp/k8s-webhook-server/serving-certs",
			"port":                      "9443",
			"metrics-bind-address":      ":8080",
			"health-probe-bind-address": ":8081",
			"selector":                  "app.kubernetes.io/name=pingdirectory",
			"container":                 "pingdirectory",
			"canary-replicas":           "1",
			"single-replica":            "warn",
			"soak":                      "30s",
			"enforcement":               "enforce",
			"override-groups":           "system:masters",
			"auto-promote":              "false",
			"log-limit-bytes":           "4194304",
			"leader-elect":              "true",
			"verdict-key-secret":        release + "-verdict-key",
			"log-format":                "json",
			"log-level":                 "info",
			"shutdown-drain":            "5s",
			"cert-mode":                 "cert-manager",
			"cert-manager-certificate":  release + "-serving",
			"shutdown-timeout":          "15s",
			"metrics-secure":            "false",
			"audit-reports":             "true",
			"audit-report-results":      "100",
			"audit-queue-size":          "1024",
			"audit-drain-timeout":       "10s",
			"http2":                     "true",
			"leader-election-id":        release + "-evidence",
		}
		for name, value := range want {
			if got, ok := args[name]; !ok || got != value {
				t.Errorf("--%s: got %q (set: %v), want %q", name, got, ok, value)
			}
		}
		for name := range args {
			if _, ok := want[name]; !ok {
				t.Errorf("unexpected flag --%s=%s with default values", name, args[name])
			}
		}
	})

	t.Run("deployment", func(t *testing.T) {
		if dep.Namespace != namespace {
			t.Errorf("namespace %q, want %q", dep.Namespace, namespace)
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
			t.Errorf("replicas %s, want 2", show(dep.Spec.Replicas))
		}
		// A rolling restart must never leave the fail-closed webhook without a routed replica.
		if ru := dep.Spec.Strategy.RollingUpdate; dep.Spec.MinReadySeconds < 1 || ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("minReadySeconds %d, rollingUpdate %s: want minReadySeconds >= 1 and maxUnavailable 0", dep.Spec.MinReadySeconds, js(ru))
		}
		if c.Image != "ghcr.io/pdguard/pdguard:0.1.0" {
			t.Errorf("image %q, want the chart's appVersion as tag", c.Image)
		}
		pod := dep.Spec.Template.Spec
		if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext must set runAsNonRoot and seccomp RuntimeDefault: %s", js(psc))
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container securityContext must be read-only, without privilege escalation, dropping ALL: %s", js(sc))
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("resources must request cpu and memory and limit memory: %s", js(c.Resources))
		}
		health := containerPort(t, c, "health")
		if args["health-probe-bind-address"] != fmt.Sprintf(":%d", health) {
			t.Errorf("health port %d does not match --health-probe-bind-address=%s", health, args["health-probe-bind-address"])
		}
		for name, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
			want := "/healthz"
			if name == "readiness" {
				want = "/readyz"
			}
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.StrVal != "health" {
				t.Errorf("%s probe must GET %s on the health port: %s", name, want, js(probe))
			}
		}
		if port := containerPort(t, c, "webhook"); args["port"] != fmt.Sprint(port) {
			t.Errorf("webhook container port %d does not match --port=%s", port, args["port"])
		}
		if port := containerPort(t, c, "metrics"); args["metrics-bind-address"] != fmt.Sprintf(":%d", port) {
			t.Errorf("metrics container port %d does not match --metrics-bind-address=%s", port, args["metrics-bind-address"])
		}
		certs := volume(t, pod, "serving-cert")
		if certs.Secret == nil || certs.Secret.SecretName != serving.Spec.SecretName {
			t.Errorf("serving-cert volume must be the Secret cert-manager writes (%s): %s", serving.Spec.SecretName, js(certs.VolumeSource))
		}
		if got := mountPath(t, c, "serving-cert"); got != args["cert-dir"] {
			t.Errorf("serving certificate mounted at %s, but --cert-dir=%s", got, args["cert-dir"])
		}
		if !mount(t, c, "serving-cert").ReadOnly {
			t.Error("the serving certificate must be mounted read-only")
		}
		if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil ||
			len(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
			t.Errorf("replicas must be spread by pod anti-affinity: %s", js(pod.Affinity))
		}
		var sa corev1.ServiceAccount
		r.decode(t, "ServiceAccount", &sa)
		if pod.ServiceAccountName != sa.Name {
			t.Errorf("pod runs as service account %q, the chart creates %q", pod.ServiceAccountName, sa.Name)
		}
	})

	t.Run("pdb", func(t *testing.T) {
		var pdb policyv1.PodDisruptionBudget
		r.decode(t, "PodDisruptionBudget", &pdb)
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
			t.Errorf("PDB minAvailable %s, want 1", js(pdb.Spec.MinAvailable))
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
			t.Errorf("PDB selector %v does not select the webhook pods (%v)", pdb.Spec.Selector, err)
		}
	})

	t.Run("service", func(t *testing.T) {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
			t.Errorf("Service selector %v does not select the webhook pods", svc.Spec.Selector)
		}
		var found bool
		for _, p := range svc.Spec.Ports {
			if p.Port == 443 {
				found = true
				if p.TargetPort.StrVal != "webhook" || containerPort(t, c, "webhook") != 9443 {
					t.Errorf("Service port 443 must target the container's 9443 (webhook): %s", js(p))
				}
			}
		}
		if !found {
			t.Errorf("Service has no port 443: %s", js(svc.Spec.Ports))
		}
	})

	t.Run("webhooks", func(t *testing.T) {
		if len(mutating.Webhooks) != 1 || len(validating.Webhooks) != 1 {
			t.Fatalf("want one webhook in each configuration, got %d mutating and %d validating", len(mutating.Webhooks), len(validating.Webhooks))
		}
		m, v := mutating.Webhooks[0], validating.Webhooks[0]
		checkWebhook(t, "mutating", svc, args, m.ClientConfig, "/mutate", m.Rules, m.SideEffects, m.AdmissionReviewVersions, m.TimeoutSeconds, m.ObjectSelector, m.NamespaceSelector)
		checkWebhook(t, "validating", svc, args, v.ClientConfig, "/validate", v.Rules, v.SideEffects, v.AdmissionReviewVersions, v.TimeoutSeconds, v.ObjectSelector, v.NamespaceSelector)
		if m.FailurePolicy == nil || *m.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("mutating failurePolicy %s, want Ignore: the validating webhook is the backstop", show(m.FailurePolicy))
		}
		if v.FailurePolicy == nil || *v.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("validating failurePolicy %s, want Fail", show(v.FailurePolicy))
		}
		if m.ReinvocationPolicy == nil || *m.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
			t.Errorf("mutating reinvocationPolicy %s, want IfNeeded", show(m.ReinvocationPolicy))
		}
		want := namespace + "/" + serving.Name
		for kind, meta := range map[string]metav1.ObjectMeta{"mutating": mutating.ObjectMeta, "validating": validating.ObjectMeta} {
			if got := meta.Annotations["cert-manager.io/inject-ca-from"]; got != want {
				t.Errorf("%s: cert-manager.io/inject-ca-from %q, want %q", kind, got, want)
			}
		}
		if len(m.ClientConfig.CABundle) != 0 || len(v.ClientConfig.CABundle) != 0 {
			t.Error("caBundle must be left to cert-manager's CA injector")
		}
	})

	t.Run("rbac", func(t *testing.T) {
		var (
			cr  rbacv1.ClusterRole
			crb rbacv1.ClusterRoleBinding
			ro  rbacv1.Role
			rb  rbacv1.RoleBinding
		)
		r.decode(t, "ClusterRole", &cr)
		r.decode(t, "ClusterRoleBinding", &crb)
		r.decodeNamed(t, "Role", release+"-leader-election", &ro)
		r.decodeNamed(t, "RoleBinding", release+"-leader-election", &rb)
		for _, want := range []struct{ group, resource, verb string }{
			{"apps", "statefulsets", "get"}, {"apps", "statefulsets", "list"}, {"apps", "statefulsets", "watch"},
			{"apps", "statefulsets", "patch"},
			{"", "pods", "get"}, {"", "pods", "list"}, {"", "pods", "watch"}, {"", "pods", "patch"}, {"", "pods", "delete"},
			{"", "pods/log", "get"},
			{"", "events", "create"}, {"", "events", "patch"},
			{"events.k8s.io", "events", "create"}, {"events.k8s.io", "events", "patch"},
			{"openreports.io", "reports", "get"}, {"openreports.io", "reports", "create"}, {"openreports.io", "reports", "update"},
		} {
			if !allows(cr.Rules, want.group, want.resource, want.verb) {
				t.Errorf("ClusterRole does not allow %s on %s in group %q", want.verb, want.resource, want.group)
			}
		}
		for _, rule := range cr.Rules {
			for _, res := range rule.Resources {
				if !slices.Contains([]string{"statefulsets", "pods", "pods/log", "events", "reports"}, res) {
					t.Errorf("ClusterRole grants access to %s, which pdguard does not use", res)
				}
			}
			deleteAllowed := slices.Equal(rule.Resources, []string{"pods"})
			// Reports are the only objects pdguard rewrites whole: results are merged into them.
			updateAllowed := slices.Equal(rule.Resources, []string{"reports"})
			if slices.Contains(rule.Verbs, "*") || (slices.Contains(rule.Verbs, "delete") && !deleteAllowed) || (slices.Contains(rule.Verbs, "update") && !updateAllowed) {
				t.Errorf("ClusterRole grants more than pdguard needs: %s", js(rule))
			}
		}
		for _, verb := range []string{"get", "create", "update"} {
			if !allows(ro.Rules, "coordination.k8s.io", "leases", verb) {
				t.Errorf("leader election Role does not allow %s on leases", verb)
			}
		}
		if ro.Namespace != namespace {
			t.Errorf("leader election Role in %q, want the release namespace", ro.Namespace)
		}
		var keyRole rbacv1.Role
		var keyBinding rbacv1.RoleBinding
		r.decodeNamed(t, "Role", release+"-verdict-key", &keyRole)
		r.decodeNamed(t, "RoleBinding", release+"-verdict-key", &keyBinding)
		if keyRole.Namespace != namespace || keyBinding.RoleRef.Name != keyRole.Name {
			t.Errorf("verdict key Role %s/%s bound by %q, want it in the release namespace and bound", keyRole.Namespace, keyRole.Name, keyBinding.RoleRef.Name)
		}
		for _, rule := range keyRole.Rules {
			switch {
			case slices.Equal(rule.Verbs, []string{"get"}) && slices.Equal(rule.ResourceNames, []string{release + "-verdict-key"}):
			case slices.Equal(rule.Verbs, []string{"create"}) && len(rule.ResourceNames) == 0:
			default:
				t.Errorf("verdict key Role grants more than reading its own Secret and creating it: %s", js(rule))
			}
			if !slices.Equal(rule.Resources, []string{"secrets"}) {
				t.Errorf("verdict key Role grants %v", rule.Resources)
			}
		}
		if len(keyRole.Rules) != 2 {
			t.Errorf("verdict key Role has %d rules, want get on its Secret and create", len(keyRole.Rules))
		}
		sa := dep.Spec.Template.Spec.ServiceAccountName
		for kind, b := range map[string]struct {
			ref      rbacv1.RoleRef
			subjects []rbacv1.Subject
			target   string
		}{
			"ClusterRoleBinding": {crb.RoleRef, crb.Subjects, cr.Name},
			"RoleBinding":        {rb.RoleRef, rb.Subjects, ro.Name},
		} {
			if b.ref.Name != b.target {
				t.Errorf("%s binds %q, want %q", kind, b.ref.Name, b.target)
			}
			if len(b.subjects) != 1 || b.subjects[0].Kind != "ServiceAccount" || b.subjects[0].Name != sa || b.subjects[0].Namespace != namespace {
				t.Errorf("%s subjects %s, want the ServiceAccount %s/%s", kind, js(b.subjects), namespace, sa)
			}
		}
	})

	t.Run("cert-manager", func(t *testing.T) {
		var selfSigned, caIssuer cmapi.Issuer
		var ca cmapi.Certificate
		r.decodeNamed(t, "Issuer", release+"-selfsigned", &selfSigned)
		r.decodeNamed(t, "Issuer", release+"-ca", &caIssuer)
		r.decodeNamed(t, "Certificate", release+"-ca", &ca)
		if selfSigned.Spec.SelfSigned == nil {
			t.Error("the root Issuer must be selfSigned")
		}
		if !ca.Spec.IsCA || ca.Spec.IssuerRef.Name != selfSigned.Name || ca.Spec.IssuerRef.Kind != "Issuer" {
			t.Errorf("CA Certificate must be a CA issued by %s: %s", selfSigned.Name, js(ca.Spec))
		}
		if caIssuer.Spec.CA == nil || caIssuer.Spec.CA.SecretName != ca.Spec.SecretName {
			t.Errorf("CA Issuer must sign with the CA Certificate's Secret %s: %s", ca.Spec.SecretName, js(caIssuer.Spec.CA))
		}
		if serving.Spec.IsCA || serving.Spec.IssuerRef.Name != caIssuer.Name || serving.Spec.IssuerRef.Kind != "Issuer" {
			t.Errorf("serving Certificate must be a leaf issued by %s: %s", caIssuer.Name, js(serving.Spec))
		}
		wantDNS := []string{
			svc.Name + "." + namespace + ".svc",
			svc.Name + "." + namespace + ".svc.cluster.local",
		}
		if !slices.Equal(serving.Spec.DNSNames, wantDNS) {
			t.Errorf("serving Certificate dnsNames %v, want %v", serving.Spec.DNSNames, wantDNS)
		}
		if !slices.Contains(serving.Spec.Usages, cmapi.UsageServerAuth) {
			t.Errorf("serving Certificate usages %v lack server auth", serving.Spec.Usages)
		}
		for _, kind := range []string{"Issuer", "Certificate"} {
			for _, m := range r.ofKind(kind) {
				var meta metav1.PartialObjectMetadata
				if err := yaml.Unmarshal(m.raw, &meta); err != nil {
					t.Fatal(err)
				}
				if meta.Namespace != namespace {
					t.Errorf("%s %s in namespace %q, want %q", kind, m.name, meta.Namespace, namespace)
				}
			}
		}
	})
}

func checkWebhook(t *testing.T, which string, svc corev1.Service, args map[string]string, cc admissionregistrationv1.WebhookClientConfig,
	path string, rules []admissionregistrationv1.RuleWithOperations, sideEffects *admissionregistrationv1.SideEffectClass,
	reviewVersions []string, timeout *int32, objectSelector, namespaceSelector *metav1.LabelSelector,
) {
	t.Helper()
	if cc.URL != nil || cc.Service == nil {
		t.Fatalf("%s: clientConfig must name the Service: %s", which, js(cc))
	}
	if s := cc.Service; s.Name != svc.Name || s.Namespace != namespace || s.Path == nil || *s.Path != path || s.Port == nil || *s.Port != 443 {
		t.Errorf("%s: clientConfig.service %s/%s path %s port %s, want %s/%s path %s port 443",
			which, s.Namespace, s.Name, show(s.Path), show(s.Port), namespace, svc.Name, path)
	}
	wantRule := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"statefulsets"},
		},
	}
	if len(rules) != 1 {
		t.Errorf("%s: want one rule, got %s", which, js(rules))
	} else {
		got := rules[0]
		got.Scope = nil
		if !equality.Semantic.DeepEqual(got, wantRule) {
			t.Errorf("%s: rule %s, want %s", which, js(got), js(wantRule))
		}
	}
	if sideEffects == nil || *sideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun {
		t.Errorf("%s: sideEffects %s, want NoneOnDryRun", which, show(sideEffects))
	}
	if !slices.Equal(reviewVersions, []string{"v1"}) {
		t.Errorf("%s: admissionReviewVersions %v, want [v1]", which, reviewVersions)
	}
	if timeout == nil || *timeout != 5 {
		t.Errorf("%s: timeoutSeconds %s, want 5", which, show(timeout))
	}
	// The webhook must be sent exactly the StatefulSets that the binary guards.
	flagSel, err := labels.Parse(args["selector"])
	if err != nil {
		t.Fatalf("--selector=%s: %v", args["selector"], err)
	}
	objSel, err := metav1.LabelSelectorAsSelector(objectSelector)
	if err != nil {
		t.Fatalf("%s: objectSelector: %v", which, err)
	}
	if objSel.String() != flagSel.String() || objSel.Empty() {
		t.Errorf("%s: objectSelector %q differs from --selector %q", which, objSel, flagSel)
	}
	nsSel, err := metav1.LabelSelectorAsSelector(namespaceSelector)
	if err != nil {
		t.Fatalf("%s: namespaceSelector: %v", which, err)
	}
	for ns, want := range map[string]bool{"kube-system": false, namespace: false, "default": true, "ping": true} {
		if got := nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": ns}); got != want {
			t.Errorf("%s: namespaceSelector %q matches namespace %s: %v, want %v", which, nsSel, ns, got, want)
		}
	}
}

func TestPdguardExternalTLS(t *testing.T) {
	caFile := writeFile(t, "ca.crt", fakeCA)
	const helm = "helm"
	for name, caArgs := range map[string][]string{
		"PEM":    {"--set-file", "tls.caBundle=" + caFile},
		"base64": {"--set", "tls.caBundle=" + base64.StdEncoding.EncodeToString([]byte(fakeCA))},
	} {
		t.Run("existing secret/caBundle as "+name, func(t *testing.T) {
			t.Parallel()
			r := template(t, helm, release, pdguardChart,
				append([]string{"--set", "certManager.enabled=false", "--set", "tls.secretName=my-tls"}, caArgs...)...)
			for _, kind := range []string{"Certificate", "Issuer", "Secret"} {
				if n := len(r.ofKind(kind)); n != 0 {
					t.Errorf("rendered %d %s without cert-manager and without tls.cert/key", n, kind)
				}
			}
			var (
				dep        appsv1.Deployment
				mutating   admissionregistrationv1.MutatingWebhookConfiguration
				validating admissionregistrationv1.ValidatingWebhookConfiguration
			)
			r.decode(t, "Deployment", &dep)
			r.decode(t, "MutatingWebhookConfiguration", &mutating)
			r.decode(t, "ValidatingWebhookConfiguration", &validating)
			if v := volume(t, dep.Spec.Template.Spec, "serving-cert"); v.Secret == nil || v.Secret.SecretName != "my-tls" {
				t.Errorf("serving-cert volume %s, want Secret my-tls", js(v.VolumeSource))
			}
			for kind, w := range map[string]struct {
				meta metav1.ObjectMeta
				cc   admissionregistrationv1.WebhookClientConfig
			}{
				"mutating":   {mutating.ObjectMeta, mutating.Webhooks[0].ClientConfig},
				"validating": {validating.ObjectMeta, validating.Webhooks[0].ClientConfig},
			} {
				if string(w.cc.CABundle) != fakeCA {
					t.Errorf("%s caBundle %q, want the given CA", kind, w.cc.CABundle)
				}
				if _, ok := w.meta.Annotations["cert-manager.io/inject-ca-from"]; ok {
					t.Errorf("%s still asks cert-manager to inject its CA", kind)
				}
			}
		})
	}

	t.Run("chart-made secret", func(t *testing.T) {
		t.Parallel()
		certFile := writeFile(t, "tls.crt", fakeCA)
		keyFile := writeFile(t, "tls.key", "-----BEGIN EC PRIVATE KEY-----\nfake\n-----END EC PRIVATE KEY-----\n")
		r := template(t, helm, release, pdguardChart, "--set", "certManager.enabled=false",
			"--set-file", "tls.caBundle="+caFile, "--set-file", "tls.cert="+certFile, "--set-file", "tls.key="+keyFile)
		var secret corev1.Secret
		var dep appsv1.Deployment
		r.decode(t, "Secret", &secret)
		r.decode(t, "Deployment", &dep)
		if secret.Type != corev1.SecretTypeTLS || string(secret.Data["tls.crt"]) != fakeCA || !strings.Contains(string(secret.Data["tls.key"]), "PRIVATE KEY") {
			t.Errorf("Secret must be kubernetes.io/tls holding the given cert and key: %s", js(secret))
		}
		if v := volume(t, dep.Spec.Template.Spec, "serving-cert"); v.Secret == nil || v.Secret.SecretName != secret.Name {
			t.Errorf("serving-cert volume %s, want the chart's Secret %s", js(v.VolumeSource), secret.Name)
		}
	})

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"cert no key": {[]string{"--set", "certManager.enabled=false", "--set-file", "tls.caBundle=" + caFile, "--set-file", "tls.cert=" + caFile}, "tls.cert and tls.key go together"},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			t.Parallel()
			_, err := runHelm(t, helm, append([]string{"template", release, pdguardChart}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestPdguardOptions(t *testing.T) {
	const helm = "helm"
	t.Run("guard settings", func(t *testing.T) {
		t.Parallel()
		r := template(t, helm, release, pdguardChart,
			"--set", "guard.enforcement=dryrun",
			"--set", "guard.singleReplica=deny",
			"--set", "guard.canaryReplicas=2",
			"--set", "guard.soak=2m30s",
			"--set", "guard.overrideGroups={ops,system:masters}",
			"--set", "guard.autoPromote=true",
			"--set", "guard.logLimitBytes=1048576",
			"--set-json", `guard.selector={"app.kubernetes.io/name":"pingdirectory","tier":"directory"}`,
			"--set", "guard.ignoreTemplateAnnotations={kubectl.kubernetes.io/restartedAt}",
			"--set", "leaderElection.enabled=false",
			"--set", "logFormat=console",
			"--set", "extraArgs={--evidence-recheck=5s}",
			"--set", "webhook.mutating.failurePolicy=Fail",
		)
		var dep appsv1.Deployment
		var mutating admissionregistrationv1.MutatingWebhookConfiguration
		r.decode(t, "Deployment", &dep)
		r.decode(t, "MutatingWebhookConfiguration", &mutating)
		args := flags(t, container(t, dep))
		for name, want := range map[string]string{
			"enforcement":                 "dryrun",
			"single-replica":              "deny",
			"canary-replicas":             "2",
			"soak":                        "2m30s",
			"override-groups":             "ops,system:masters",
			"auto-promote":                "true",
			"log-limit-bytes":             "1048576",
			"selector":                    "app.kubernetes.io/name=pingdirectory,tier=directory",
			"ignore-template-annotations": "kubectl.kubernetes.io/restartedAt",
			"leader-elect":                "false",
			"log-format":                  "console",
			"evidence-recheck":            "5s",
		} {
			if args[name] != want {
				t.Errorf("--%s=%q, want %q", name, args[name], want)
			}
		}
		if _, ok := args["ignore-template-labels"]; ok {
			t.Error("--ignore-template-labels passed while unset, overriding the binary's built-in list")
		}
		want := map[string]string{"app.kubernetes.io/name": "pingdirectory", "tier": "directory"}
		if got := mutating.Webhooks[0].ObjectSelector.MatchLabels; !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("objectSelector %v, want %v", got, want)
		}
		if fp := mutating.Webhooks[0].FailurePolicy; fp == nil || *fp != admissionregistrationv1.Fail {
			t.Errorf("mutating failurePolicy %s, want Fail as set", show(fp))
		}
	})

	t.Run("policy modules", func(t *testing.T) {
		t.Parallel()
		const module = "package pdguard.validate\n\nviolation contains \"no\" if { false }\n"
		r := template(t, helm, release, pdguardChart, "--set-file", "policy.modules.site\\.rego="+writeFile(t, "site.rego", module))
		var dep appsv1.Deployment
		var cm corev1.ConfigMap
		r.decode(t, "Deployment", &dep)
		r.decode(t, "ConfigMap", &cm)
		c := container(t, dep)
		if got := cm.Data["site.rego"]; got != module {
			t.Errorf("policy ConfigMap site.rego = %q, want %q", got, module)
		}
		if v := volume(t, dep.Spec.Template.Spec, "policy"); v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
			t.Errorf("policy volume %s, want ConfigMap %s", js(v.VolumeSource), cm.Name)
		}
		if dir := flags(t, c)["policy-dir"]; dir == "" || dir != mountPath(t, c, "policy") {
			t.Errorf("--policy-dir=%q, want the policy mount path", dir)
		}
	})

	t.Run("existing policy ConfigMap", func(t *testing.T) {
		t.Parallel()
		r := template(t, helm, release, pdguardChart, "--set", "policy.existingConfigMap=site-policy")
		var dep appsv1.Deployment
		r.decode(t, "Deployment", &dep)
		if n := len(r.ofKind("ConfigMap")); n != 0 {
			t.Errorf("rendered %d ConfigMaps for an existing one", n)
		}
		if v := volume(t, dep.Spec.Template.Spec, "policy"); v.ConfigMap == nil || v.ConfigMap.Name != "site-policy" {
			t.Errorf("policy volume %s, want ConfigMap site-policy", js(v.VolumeSource))
		}
		if _, ok := flags(t, container(t, dep))["policy-dir"]; !ok {
			t.Error("--policy-dir missing")
		}
	})

	t.Run("ServiceMonitor", func(t *testing.T) {
		t.Parallel()
		r := template(t, helm, release, pdguardChart, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=prom")
		var svc corev1.Service
		r.decode(t, "Service", &svc)
		var sm struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
			Spec     struct {
				Selector  metav1.LabelSelector `json:"selector"`
				Endpoints []struct {
					Port string `json:"port"`
				} `json:"endpoints"`
			} `json:"spec"`
		}
		docs := r.ofKind("ServiceMonitor")
		if len(docs) != 1 {
			t.Fatalf("want one ServiceMonitor, got %d", len(docs))
		}
		if err := yaml.Unmarshal(docs[0].raw, &sm); err != nil {
			t.Fatal(err)
		}
		if sm.Metadata.Labels["release"] != "prom" {
			t.Errorf("ServiceMonitor labels %v lack release=prom", sm.Metadata.Labels)
		}
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(svc.Labels)) {
			t.Errorf("ServiceMonitor selector %v does not select the Service (%v)", sm.Spec.Selector, err)
		}
		if len(sm.Spec.Endpoints) != 1 || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sm.Spec.Endpoints[0].Port }) {
			t.Errorf("ServiceMonitor endpoints %+v do not name a Service port", sm.Spec.Endpoints)
		}
	})

	t.Run("one replica", func(t *testing.T) {
		t.Parallel()
		r := template(t, helm, release, pdguardChart, "--set", "replicaCount=1", "--set", "leaderElection.enabled=false")
		if n := len(r.ofKind("PodDisruptionBudget")); n != 0 {
			t.Error("a PDB with minAvailable 1 over one replica would block every node drain")
		}
	})
}

// renderStatefulSet renders the test chart's StatefulSet for the reference's release.
func renderStatefulSet(t *testing.T, helm string, args ...string) (appsv1.StatefulSet, rendered) {
	t.Helper()
	r := template(t, helm, referenceRelease, testChart, args...)
	var sts appsv1.StatefulSet
	r.decode(t, "StatefulSet", &sts)
	return sts, r
}

func TestPingDirectoryMatchesReference(t *testing.T) {
	raw, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	var want appsv1.StatefulSet
	if err := yaml.UnmarshalStrict(raw, &want); err != nil {
		t.Fatalf("%s: %v", referenceFile, err)
	}
	for _, helm := range helmBinaries {
		t.Run(helm, func(t *testing.T) {
			t.Parallel()
			// 300 is ping-devops' grace period; the fixture defaults to 1 for fast tests.
			got, _ := renderStatefulSet(t, helm, "--set", "terminationGracePeriodSeconds=300")
			want := *want.DeepCopy()
			// The reference's checksum is of the vendor's ConfigMap, which the fixture does not
			// reproduce; TestPingDirectoryConfigChecksum covers how it behaves.
			sum := got.Spec.Template.Annotations["checksum/config"]
			if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
				t.Errorf("checksum/config %q is not a sha256", sum)
			}
			delete(got.Spec.Template.Annotations, "checksum/config")
			delete(want.Spec.Template.Annotations, "checksum/config")
			if !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("rendered StatefulSet differs from %s:\n%s", referenceFile, yamlDiff(t, want, got))
			}
		})
	}
}

func yamlDiff(t *testing.T, want, got any) string {
	t.Helper()
	a, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	return unifiedDiff(t, "reference", "rendered", a, b)
}

func unifiedDiff(t *testing.T, fromName, toName string, from, to []byte) string {
	t.Helper()
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(from)), B: difflib.SplitLines(string(to)),
		FromFile: fromName, ToFile: toName, Context: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	return diff
}

func TestPingDirectoryDefaults(t *testing.T) {
	sts, r := renderStatefulSet(t, "helm")
	raw := string(r.ofKind("StatefulSet")[0].raw)
	// Rendered even at 0: that is what makes a plain `helm upgrade` reset a canary's partition.
	if !regexp.MustCompile(`(?m)^      partition: 0$`).MatchString(raw) {
		t.Errorf("partition: 0 is not rendered explicitly:\n%s", raw)
	}
	if ru := sts.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.Partition == nil || *ru.Partition != 0 {
		t.Errorf("rollingUpdate %s, want partition 0", js(sts.Spec.UpdateStrategy.RollingUpdate))
	}
	if sts.Name != referenceRelease+"-pingdirectory" {
		t.Errorf("name %q", sts.Name)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 2 {
		t.Errorf("replicas %s, want 2", show(sts.Spec.Replicas))
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if c.Name != "pingdirectory" || c.Image != "pingidentity/pingdirectory:9.0.0.1-latest" {
		t.Errorf("container %s image %s, want pingdirectory running pingidentity/pingdirectory:9.0.0.1-latest", c.Name, c.Image)
	}
	if g := sts.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 1 {
		t.Errorf("terminationGracePeriodSeconds %s, want 1 for tests", show(g))
	}
	var envFrom []string
	for _, e := range c.EnvFrom {
		switch {
		case e.ConfigMapRef != nil:
			envFrom = append(envFrom, fmt.Sprintf("configmap/%s optional=%v", e.ConfigMapRef.Name, e.ConfigMapRef.Optional != nil && *e.ConfigMapRef.Optional))
		case e.SecretRef != nil:
			envFrom = append(envFrom, fmt.Sprintf("secret/%s optional=%v", e.SecretRef.Name, e.SecretRef.Optional != nil && *e.SecretRef.Optional))
		}
	}
	wantEnvFrom := []string{
		"configmap/pd-upgrade-example-global-env-vars optional=true",
		"configmap/pd-upgrade-example-env-vars optional=true",
		"configmap/pd-upgrade-example-pingdirectory-env-vars optional=false",
		"secret/devops-secret optional=true",
		"secret/pd-upgrade-example-pingdirectory-git-secret optional=true",
	}
	if !slices.Equal(envFrom, wantEnvFrom) {
		t.Errorf("envFrom\n got %v\nwant %v", envFrom, wantEnvFrom)
	}
	var cm corev1.ConfigMap
	r.decode(t, "ConfigMap", &cm)
	if cm.Name != "pd-upgrade-example-pingdirectory-env-vars" || len(cm.Data) != 0 {
		t.Errorf("env ConfigMap %s data %v, want pd-upgrade-example-pingdirectory-env-vars with no data", cm.Name, cm.Data)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "out-dir" {
		t.Errorf("volumeClaimTemplates %s, want out-dir", js(sts.Spec.VolumeClaimTemplates))
	}
}

func TestPingDirectoryValues(t *testing.T) {
	const helm = "helm"
	t.Run("partition, image and replicas", func(t *testing.T) {
		t.Parallel()
		sts, _ := renderStatefulSet(t, helm, "--set", "partition=1", "--set", "image.tag=10.0.0.1-latest", "--set", "replicaCount=3")
		if p := sts.Spec.UpdateStrategy.RollingUpdate.Partition; p == nil || *p != 1 {
			t.Errorf("partition %s, want 1", show(p))
		}
		if img := sts.Spec.Template.Spec.Containers[0].Image; img != "pingidentity/pingdirectory:10.0.0.1-latest" {
			t.Errorf("image %s", img)
		}
		if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
			t.Errorf("replicas %s, want 3", show(sts.Spec.Replicas))
		}
	})

	t.Run("env", func(t *testing.T) {
		t.Parallel()
		_, r := renderStatefulSet(t, helm, "--set", "env.MAX_HEAP_SIZE=1g", "--set-string", "env.LDAP_PORT=1389")
		var cm corev1.ConfigMap
		r.decode(t, "ConfigMap", &cm)
		if want := map[string]string{"MAX_HEAP_SIZE": "1g", "LDAP_PORT": "1389"}; !equality.Semantic.DeepEqual(cm.Data, want) {
			t.Errorf("env ConfigMap data %v, want %v", cm.Data, want)
		}
	})

	t.Run("KWOK", func(t *testing.T) {
		t.Parallel()
		sts, _ := renderStatefulSet(t, helm, "--set", "persistence.enabled=false",
			"--set", "extraPodLabels.pdguard-test/stage=crash-loop",
			"--set", "extraPodLabels.app\\.kubernetes\\.io/name=other")
		if len(sts.Spec.VolumeClaimTemplates) != 0 {
			t.Errorf("volumeClaimTemplates rendered with persistence off: %s", js(sts.Spec.VolumeClaimTemplates))
		}
		if v := volume(t, sts.Spec.Template.Spec, "out-dir"); v.EmptyDir == nil {
			t.Errorf("out-dir %s, want an emptyDir", js(v.VolumeSource))
		}
		podLabels := sts.Spec.Template.Labels
		if podLabels["pdguard-test/stage"] != "crash-loop" {
			t.Errorf("pod labels %v lack the extra label", podLabels)
		}
		// The chart's own labels win, or an extra label could orphan the pods from the selector.
		if podLabels["app.kubernetes.io/name"] != "pingdirectory" {
			t.Errorf("extraPodLabels overrode app.kubernetes.io/name: %v", podLabels)
		}
		if _, ok := sts.Spec.Selector.MatchLabels["pdguard-test/stage"]; ok {
			t.Error("extraPodLabels leaked into the immutable selector")
		}
	})
}

// checksum/config is how ping-devops rolls pods on a configuration change; pdguard tells a
// config change from a version change by it, so it must move with env and only with env.
func TestPingDirectoryConfigChecksum(t *testing.T) {
	sum := func(args ...string) string {
		sts, _ := renderStatefulSet(t, "helm", args...)
		return sts.Spec.Template.Annotations["checksum/config"]
	}
	base := sum("--set", "env.A=1")
	if again := sum("--set", "env.A=1"); again != base {
		t.Errorf("checksum/config not stable across renders: %s, %s", base, again)
	}
	for _, args := range [][]string{
		{"--set", "env.A=1", "--set", "image.tag=10.0.0.1-latest"},
		{"--set", "env.A=1", "--set", "partition=1"},
		{"--set", "env.A=1", "--set", "replicaCount=3"},
		{"--set", "env.A=1", "--set", "extraPodLabels.x=y"},
	} {
		if got := sum(args...); got != base {
			t.Errorf("%v changed checksum/config (%s -> %s), which would bundle a config change with it", args, base, got)
		}
	}
	for _, args := range [][]string{
		{"--set", "env.A=2"},
		{"--set", "env.A=1", "--set", "env.B=1"},
		{},
	} {
		if got := sum(args...); got == base {
			t.Errorf("%v left checksum/config unchanged though env changed", args)
		}
	}
}

// goListPackage is the part of `go list -json` output the Docker context check needs.
type goListPackage struct {
	Dir        string
	GoFiles    []string
	EmbedFiles []string
	Standard   bool
	Module     *struct{ Path string }
}

// buildInputs lists the files of this module that `go build ./cmd/webhook` reads.
func buildInputs(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=Dir,GoFiles,EmbedFiles,Standard,Module", "./cmd/webhook")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("go list ./cmd/webhook: %v", err)
	}
	mod := goModulePath(t, root)
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goListPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Standard || p.Module == nil || p.Module.Path != mod {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	return files
}

func goModulePath(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// NOTES.txt only renders on install; a client-side dry run renders it without a cluster.
func TestPdguardNotes(t *testing.T) {
	caFile := writeFile(t, "ca.crt", fakeCA)
	for name, c := range map[string]struct {
		args []string
		want []string
	}{
		"cert-manager": {[]string{"--set", "certManager.enabled=true"}, []string{
			"kubectl -n " + namespace + " rollout status deployment/" + release,
			"certificate/" + release + "-serving",
			"--dry-run=server",
		}},
		"existing secret": {[]string{"--set", "certManager.enabled=false", "--set", "tls.secretName=my-tls", "--set-file", "tls.caBundle=" + caFile}, []string{
			"kubectl -n " + namespace + " rollout status deployment/" + release,
			"get secret my-tls",
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, err := runHelm(t, "helm", append([]string{"install", release, pdguardChart, "--namespace", namespace, "--dry-run=client"}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			_, notes, ok := strings.Cut(string(out), "\nNOTES:\n")
			if !ok {
				t.Fatalf("no NOTES in the install output:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
		})
	}
}

// TestPdguardShutdown: the kubelet's preStop sleep, pdguard's own drain and the grace period
// before SIGKILL come from the same two values, so a pod is never killed mid-drain.
func TestPdguardShutdown(t *testing.T) {
	for _, tc := range []struct {
		set                []string
		preStop, drain     int64
		timeout, grace     int64
		wantPreStopPresent bool
	}{
		{nil, 5, 5, 15, 40, true},
		{[]string{"shutdown.drainSeconds=12", "shutdown.timeoutSeconds=20"}, 12, 12, 20, 59, true},
		{[]string{"shutdown.drainSeconds=0"}, 0, 0, 15, 30, false},
		{[]string{"audit.drainTimeout=2m"}, 5, 5, 15, 150, true},
		{[]string{"audit.drainTimeout=1500ms"}, 5, 5, 15, 32, true},
	} {
		t.Run(strings.Join(tc.set, ","), func(t *testing.T) {
			t.Parallel()
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			var dep appsv1.Deployment
			template(t, "helm", release, pdguardChart, args...).decode(t, "Deployment", &dep)
			c := container(t, dep)
			f := flags(t, c)
			if got, want := f["shutdown-drain"], fmt.Sprintf("%ds", tc.drain); got != want {
				t.Errorf("--shutdown-drain=%s, want %s", got, want)
			}
			if got, want := f["shutdown-timeout"], fmt.Sprintf("%ds", tc.timeout); got != want {
				t.Errorf("--shutdown-timeout=%s, want %s", got, want)
			}
			if g := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != tc.grace {
				t.Errorf("terminationGracePeriodSeconds %s, want %d (preStop + drain + timeout + audit drain + 5)", show(g), tc.grace)
			}
			hasPreStop := c.Lifecycle != nil && c.Lifecycle.PreStop != nil
			if hasPreStop != tc.wantPreStopPresent {
				t.Fatalf("preStop present %v, want %v: %s", hasPreStop, tc.wantPreStopPresent, js(c.Lifecycle))
			}
			if hasPreStop && (c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != tc.preStop) {
				t.Errorf("preStop %s, want a sleep of %ds (the image has no shell)", js(c.Lifecycle.PreStop), tc.preStop)
			}
		})
	}
}

// TestPdguardCertModes: without cert-manager's API and without a CA bundle the chart
// makes pdguard manage its own certificate: an empty Secret for the leader to fill, the
// flags that point pdguard at it and at both webhook configurations, no caBundle for the
// chart to fill, and rights on exactly those objects by name.
func TestPdguardCertModes(t *testing.T) {
	for _, helm := range helmBinaries {
		t.Run(helm, func(t *testing.T) {
			t.Parallel()
			out, err := runHelm(t, helm, "template", release, pdguardChart, "--namespace", namespace)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte("kind: Certificate")) {
				t.Fatal("rendered cert-manager Certificates for a cluster without cert-manager's API")
			}
			r := template(t, helm, release, pdguardChart, "--set", "certManager.enabled=false")
			var dep appsv1.Deployment
			r.decode(t, "Deployment", &dep)
			args := flags(t, container(t, dep))
			want := map[string]string{
				"cert-mode":             "self-managed",
				"cert-secret":           release + "-tls",
				"cert-dns-names":        release + "." + namespace + ".svc," + release + "." + namespace + ".svc.cluster.local",
				"webhook-configuration": release,
				"cert-validity":         "8760h",
				"cert-renew-before":     "2160h",
			}
			for k, v := range want {
				if args[k] != v {
					t.Errorf("--%s=%q, want %q", k, args[k], v)
				}
			}
			var secret corev1.Secret
			r.decodeNamed(t, "Secret", release+"-tls", &secret)
			if secret.Type != corev1.SecretTypeOpaque || len(secret.Data) != 0 {
				t.Errorf("the serving Secret must be an empty Opaque one for pdguard to fill, got type %q with %d keys", secret.Type, len(secret.Data))
			}
			if v := volume(t, dep.Spec.Template.Spec, "serving-cert"); v.Secret == nil || v.Secret.SecretName != release+"-tls" {
				t.Errorf("serving-cert volume %s, want Secret %s-tls", js(v), release)
			}
			var mutating admissionregistrationv1.MutatingWebhookConfiguration
			var validating admissionregistrationv1.ValidatingWebhookConfiguration
			r.decode(t, "MutatingWebhookConfiguration", &mutating)
			r.decode(t, "ValidatingWebhookConfiguration", &validating)
			if len(mutating.Webhooks[0].ClientConfig.CABundle) != 0 || len(validating.Webhooks[0].ClientConfig.CABundle) != 0 || mutating.Annotations["cert-manager.io/inject-ca-from"] != "" {
				t.Error("self-managed: the chart must leave caBundle to pdguard")
			}
			var role rbacv1.Role
			r.decodeNamed(t, "Role", release+"-serving-cert", &role)
			var cr rbacv1.ClusterRole
			r.decode(t, "ClusterRole", &cr)
			for _, rule := range append(role.Rules, cr.Rules...) {
				for _, verb := range rule.Verbs {
					if (verb == "update" || verb == "get") && (slices.Contains(rule.Resources, "secrets") || slices.Contains(rule.Resources, "validatingwebhookconfigurations")) {
						if len(rule.ResourceNames) != 1 {
							t.Errorf("%s on %v must be limited by resourceNames: %s", verb, rule.Resources, js(rule))
						}
					}
				}
			}
			if !allows(role.Rules, "", "secrets", "update") || !allows(cr.Rules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "update") ||
				!allows(cr.Rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update") {
				t.Errorf("self-managed needs update on its Secret and both webhook configurations: %s %s", js(role.Rules), js(cr.Rules))
			}
		})
	}
}

// TestPdguardWritePolicy: the policy that narrows pdguard's own writes is on by default,
// names pdguard's ServiceAccount, checks each guard.selector label, and goes with
// rbac.writePolicy.enabled=false.
func TestPdguardWritePolicy(t *testing.T) {
	r := template(t, "helm", release, pdguardChart, "--set", "guard.selector.tier=directory")
	var policy admissionregistrationv1.ValidatingAdmissionPolicy
	r.decodeNamed(t, "ValidatingAdmissionPolicy", release+"-own-writes", &policy)
	var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
	r.decodeNamed(t, "ValidatingAdmissionPolicyBinding", release+"-own-writes", &binding)
	if binding.Spec.PolicyName != policy.Name || !slices.Equal(binding.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
		t.Errorf("binding %s does not deny with policy %s", js(binding.Spec), policy.Name)
	}
	if len(policy.Spec.MatchConditions) != 1 || !strings.Contains(policy.Spec.MatchConditions[0].Expression, "system:serviceaccount:"+namespace+":"+release) {
		t.Errorf("the policy must match pdguard's ServiceAccount only: %s", js(policy.Spec.MatchConditions))
	}
	var guarded string
	for _, v := range policy.Spec.Variables {
		if v.Name == "guarded" {
			guarded = v.Expression
		}
	}
	for _, want := range []string{"t.metadata.labels['app.kubernetes.io/name'] == 'pingdirectory'", "t.metadata.labels['tier'] == 'directory'"} {
		if !strings.Contains(guarded, want) {
			t.Errorf("guarded expression %q lacks %q", guarded, want)
		}
	}
	off := template(t, "helm", release, pdguardChart, "--set", "rbac.writePolicy.enabled=false")
	for _, m := range off.ofKind("ValidatingAdmissionPolicy") {
		if m.name == release+"-own-writes" {
			t.Error("rbac.writePolicy.enabled=false still renders the policy")
		}
	}
}

// TestPdguardSchedulingAndMatchConditions: system-cluster-critical by default, as
// Gatekeeper's pods; matchConditions reach both webhooks.
func TestPdguardSchedulingAndMatchConditions(t *testing.T) {
	r := template(t, "helm", release, pdguardChart,
		"--set", "webhook.matchConditions[0].name=not-argocd",
		"--set", "webhook.matchConditions[0].expression=request.userInfo.username != 'system:serviceaccount:argocd:argocd-application-controller'")
	var dep appsv1.Deployment
	r.decode(t, "Deployment", &dep)
	if got := dep.Spec.Template.Spec.PriorityClassName; got != "system-cluster-critical" {
		t.Errorf("priorityClassName %q, want system-cluster-critical", got)
	}
	var mutating admissionregistrationv1.MutatingWebhookConfiguration
	var validating admissionregistrationv1.ValidatingWebhookConfiguration
	r.decode(t, "MutatingWebhookConfiguration", &mutating)
	r.decode(t, "ValidatingWebhookConfiguration", &validating)
	for which, mc := range map[string][]admissionregistrationv1.MatchCondition{"mutating": mutating.Webhooks[0].MatchConditions, "validating": validating.Webhooks[0].MatchConditions} {
		if len(mc) != 1 || mc[0].Name != "not-argocd" {
			t.Errorf("%s webhook matchConditions %s, want the one set", which, js(mc))
		}
	}
}

// TestPdguardNamespacedRBAC: with rbac.namespaces pdguard gets its rights on workloads
// only through a Role in each listed namespace, watches only those, and the webhooks only
// see those.
func TestPdguardNamespacedRBAC(t *testing.T) {
	r := template(t, "helm", release, pdguardChart, "--set", "rbac.namespaces={ds-prod,ds-stage}")
	var cr rbacv1.ClusterRole
	r.decode(t, "ClusterRole", &cr)
	if allows(cr.Rules, "", "pods", "delete") || allows(cr.Rules, "apps", "statefulsets", "patch") {
		t.Errorf("with rbac.namespaces the ClusterRole still grants workload rights: %s", js(cr.Rules))
	}
	for _, ns := range []string{"ds-prod", "ds-stage"} {
		var role rbacv1.Role
		found := false
		for _, m := range r.ofKind("Role") {
			decodeStrict(t, m, &role)
			if role.Namespace == ns && role.Name == release+"-workloads" {
				found = true
				break
			}
		}
		if !found || !allows(role.Rules, "", "pods", "delete") || !allows(role.Rules, "apps", "statefulsets", "patch") || !allows(role.Rules, "", "pods/log", "get") {
			t.Errorf("no workload Role in %s with pdguard's rights (found %v): %s", ns, found, js(role.Rules))
		}
	}
	var dep appsv1.Deployment
	r.decode(t, "Deployment", &dep)
	if got := flags(t, container(t, dep))["watch-namespaces"]; got != "ds-prod,ds-stage" {
		t.Errorf("--watch-namespaces=%q, want ds-prod,ds-stage", got)
	}
	var validating admissionregistrationv1.ValidatingWebhookConfiguration
	r.decode(t, "ValidatingWebhookConfiguration", &validating)
	in := false
	for _, e := range validating.Webhooks[0].NamespaceSelector.MatchExpressions {
		if e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpIn && slices.Equal(e.Values, []string{"ds-prod", "ds-stage"}) {
			in = true
		}
	}
	if !in {
		t.Errorf("the validating webhook's namespaceSelector does not limit it to rbac.namespaces: %s", js(validating.Webhooks[0].NamespaceSelector))
	}
}

// TestPdguardMetricsAndNetworkPolicy: metrics are plain HTTP unless metrics.secure, which
// turns on HTTPS with token and access reviews and the rights those need; the optional
// NetworkPolicy admits the webhook and metrics ports only.
func TestPdguardMetricsAndNetworkPolicy(t *testing.T) {
	plain := template(t, "helm", release, pdguardChart)
	var dep appsv1.Deployment
	plain.decode(t, "Deployment", &dep)
	if got := flags(t, container(t, dep))["metrics-secure"]; got != "false" {
		t.Errorf("default --metrics-secure=%q, want false", got)
	}
	if n := len(plain.ofKind("NetworkPolicy")); n != 0 {
		t.Errorf("rendered %d NetworkPolicies by default", n)
	}
	secure := template(t, "helm", release, pdguardChart, "--set", "metrics.secure=true", "--set", "networkPolicy.enabled=true")
	secure.decode(t, "Deployment", &dep)
	if got := flags(t, container(t, dep))["metrics-secure"]; got != "true" {
		t.Errorf("--metrics-secure=%q, want true", got)
	}
	var cr rbacv1.ClusterRole
	secure.decode(t, "ClusterRole", &cr)
	if !allows(cr.Rules, "authentication.k8s.io", "tokenreviews", "create") || !allows(cr.Rules, "authorization.k8s.io", "subjectaccessreviews", "create") {
		t.Errorf("metrics.secure needs tokenreviews and subjectaccessreviews: %s", js(cr.Rules))
	}
	var np networkingv1.NetworkPolicy
	secure.decode(t, "NetworkPolicy", &np)
	var ports []string
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			ports = append(ports, p.Port.String())
		}
	}
	if !slices.Equal(ports, []string{"webhook", "metrics"}) {
		t.Errorf("NetworkPolicy ingress ports %v, want webhook and metrics only", ports)
	}
}
