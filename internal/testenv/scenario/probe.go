package scenario

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The apiserver loads webhook configurations asynchronously, so a scenario that starts
// right after registering (or re-pointing) them could slip past the guard. A probe
// StatefulSet with no replicas shows which webhooks are in force: a server-side dry run
// that changes its image together with a pod annotation is always denied by the
// validating webhook (bundled-config-and-version), and the mutating webhook answers it
// with its single-replica warning.
const (
	probeNamespace = "pdguard-probe"
	probeName      = "probe"
	// webhookConfig is the name pdguardproc registers both configurations under.
	webhookConfig = "pdguard"
)

type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningCollector) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func (e *Env) ensureProbe(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNamespace}}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return errorf("creating namespace %s: %w", probeNamespace, err)
	}
	replicas := int32(0)
	labels := map[string]string{"app.kubernetes.io/name": "pingdirectory", "app.kubernetes.io/instance": probeName}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: probeName, Namespace: probeNamespace, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: probeName,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "pingdirectory", Image: Image(OldTag),
				}}},
			},
		},
	}
	_, err := e.Client.AppsV1().StatefulSets(probeNamespace).Create(ctx, sts, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return errorf("creating the probe StatefulSet: %w", err)
	}
	return nil
}

// probeWebhooks reports which of pdguard's webhooks the apiserver calls right now.
func (e *Env) probeWebhooks(ctx context.Context, client kubernetes.Interface, warnings *warningCollector) (mutating, validating bool, err error) {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"pdguard.test/probe":%q}},"spec":{"containers":[{"name":"pingdirectory","image":%q}]}}}}`,
		time.Now().Format(time.RFC3339Nano), Image("9.9.9.9-probe"))
	warnings.take()
	_, err = client.AppsV1().StatefulSets(probeNamespace).Patch(ctx, probeName, types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	for _, w := range warnings.take() {
		if strings.Contains(w, "cannot hold back a canary") {
			mutating = true
		}
	}
	switch {
	case err == nil:
		return mutating, false, nil
	case strings.Contains(err.Error(), "validate.pdguard.pdguard.io") && strings.Contains(err.Error(), "denied the request"):
		return mutating, true, nil
	default:
		return mutating, false, err
	}
}

func (e *Env) probeClient() (kubernetes.Interface, *warningCollector, error) {
	warnings := &warningCollector{}
	cfg := e.CP.RESTConfig()
	cfg.WarningHandler = warnings
	client, err := kubernetes.NewForConfig(cfg)
	return client, warnings, err
}

// waitWebhooks polls the probe until the apiserver calls the mutating webhook or not,
// as wanted, and the validating webhook in any case.
func (e *Env) waitWebhooks(ctx context.Context, wantMutating bool) error {
	if err := e.ensureProbe(ctx); err != nil {
		return err
	}
	client, warnings, err := e.probeClient()
	if err != nil {
		return err
	}
	began := time.Now()
	var mutating, validating bool
	var last error
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		mutating, validating, last = e.probeWebhooks(ctx, client, warnings)
		return last == nil && validating && mutating == wantMutating, nil
	})
	if err != nil {
		return errorf("waiting for the webhooks (mutating called: want %v, got %v; validating called: %v; last error: %v): %w",
			wantMutating, mutating, validating, last, err)
	}
	e.logf("scenario: webhooks in force as wanted (mutating %v) after %s", wantMutating, shortDuration(time.Since(began)))
	return nil
}

func (e *Env) waitWebhooksInForce(ctx context.Context) error { return e.waitWebhooks(ctx, true) }

// SetMutatingReachable points the mutating webhook at a closed port (reachable=false),
// as when every pdguard pod is down: with the chart's failurePolicy Ignore the apiserver
// then admits requests without it, and only the validating webhook stands. true points
// it back at pdguard. Either way it returns once the apiserver behaves accordingly.
func (e *Env) SetMutatingReachable(ctx context.Context, reachable bool) error {
	url := e.Guard.URL + "/mutate"
	if !reachable {
		port, err := closedPort()
		if err != nil {
			return err
		}
		url = fmt.Sprintf("https://127.0.0.1:%d/mutate", port)
	}
	configs := e.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := configs.Get(ctx, webhookConfig, metav1.GetOptions{})
	if err != nil {
		return errorf("reading MutatingWebhookConfiguration %s: %w", webhookConfig, err)
	}
	for i := range cfg.Webhooks {
		cfg.Webhooks[i].ClientConfig.URL = &url
	}
	if _, err := configs.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		return errorf("updating MutatingWebhookConfiguration %s: %w", webhookConfig, err)
	}
	return e.waitWebhooks(ctx, reachable)
}

// MutatingFailurePolicy is the failure policy the mutating webhook is registered with.
func (e *Env) MutatingFailurePolicy(ctx context.Context) (string, error) {
	cfg, err := e.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if len(cfg.Webhooks) == 0 || cfg.Webhooks[0].FailurePolicy == nil {
		return "", errorf("MutatingWebhookConfiguration %s has no failure policy", webhookConfig)
	}
	return string(*cfg.Webhooks[0].FailurePolicy), nil
}

// closedPort is a loopback port nothing listens on: bound, then released.
func closedPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

var _ rest.WarningHandler = (*warningCollector)(nil)
