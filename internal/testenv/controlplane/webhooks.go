package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// WebhookOptions describes the admission webhooks RegisterWebhooks points the
// apiserver at.
type WebhookOptions struct {
	// URL is the webhook server's base, https://127.0.0.1:PORT; /mutate and /validate
	// are appended.
	URL string
	// CABundle is the PEM CA the apiserver verifies the webhook's certificate with.
	CABundle []byte
	// Selector is the objectSelector's matchLabels; the default is
	// app.kubernetes.io/name=pingdirectory.
	Selector map[string]string
	// Failure policies; empty means Fail, which is what the chart installs.
	MutatingFailurePolicy   admissionregistrationv1.FailurePolicyType
	ValidatingFailurePolicy admissionregistrationv1.FailurePolicyType
	// Name names both configurations; the default is pdguard.
	Name string
}

// RegisterWebhooks creates (or replaces) a MutatingWebhookConfiguration calling
// URL/mutate and a ValidatingWebhookConfiguration calling URL/validate for CREATE and
// UPDATE of apps/v1 StatefulSets. The apiserver picks them up asynchronously; callers
// that need them in force must probe for it.
func (cp *ControlPlane) RegisterWebhooks(ctx context.Context, opts WebhookOptions) error {
	if !strings.HasPrefix(opts.URL, "https://") {
		return fmt.Errorf("controlplane: webhook URL %q must be https", opts.URL)
	}
	if len(opts.CABundle) == 0 {
		return errors.New("controlplane: webhook CABundle is empty")
	}
	if opts.Name == "" {
		opts.Name = "pdguard"
	}
	if opts.Selector == nil {
		opts.Selector = map[string]string{"app.kubernetes.io/name": "pingdirectory"}
	}
	if opts.MutatingFailurePolicy == "" {
		opts.MutatingFailurePolicy = admissionregistrationv1.Fail
	}
	if opts.ValidatingFailurePolicy == "" {
		opts.ValidatingFailurePolicy = admissionregistrationv1.Fail
	}
	base := strings.TrimSuffix(opts.URL, "/")
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	timeout := int32(10)
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups:   []string{"apps"},
			APIVersions: []string{"v1"},
			Resources:   []string{"statefulsets"},
		},
	}}
	clientConfig := func(path string) admissionregistrationv1.WebhookClientConfig {
		u := base + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: opts.CABundle}
	}
	selector := &metav1.LabelSelector{MatchLabels: opts.Selector}

	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: opts.Name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "mutate." + opts.Name + ".pdguard.io",
			ClientConfig:            clientConfig("/mutate"),
			Rules:                   rules,
			FailurePolicy:           &opts.MutatingFailurePolicy,
			ObjectSelector:          selector,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: opts.Name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validate." + opts.Name + ".pdguard.io",
			ClientConfig:            clientConfig("/validate"),
			Rules:                   rules,
			FailurePolicy:           &opts.ValidatingFailurePolicy,
			ObjectSelector:          selector,
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}

	cs, err := kubernetes.NewForConfig(cp.admin)
	if err != nil {
		return err
	}
	mutatingClient := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mutatingClient.Create(ctx, mutating, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		existing, getErr := mutatingClient.Get(ctx, opts.Name, metav1.GetOptions{})
		if getErr != nil {
			return fmt.Errorf("controlplane: reading MutatingWebhookConfiguration %s: %w", opts.Name, getErr)
		}
		mutating.ResourceVersion = existing.ResourceVersion
		_, err = mutatingClient.Update(ctx, mutating, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("controlplane: updating MutatingWebhookConfiguration %s: %w", opts.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("controlplane: creating MutatingWebhookConfiguration %s: %w", opts.Name, err)
	}
	validatingClient := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := validatingClient.Create(ctx, validating, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		existing, getErr := validatingClient.Get(ctx, opts.Name, metav1.GetOptions{})
		if getErr != nil {
			return fmt.Errorf("controlplane: reading ValidatingWebhookConfiguration %s: %w", opts.Name, getErr)
		}
		validating.ResourceVersion = existing.ResourceVersion
		_, err = validatingClient.Update(ctx, validating, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("controlplane: updating ValidatingWebhookConfiguration %s: %w", opts.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("controlplane: creating ValidatingWebhookConfiguration %s: %w", opts.Name, err)
	}
	return nil
}
