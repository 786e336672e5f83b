package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pdguard/pdguard/internal/rollout"
)

// verdictKeyField is the Secret's data key that holds the verdict key.
const verdictKeyField = "key"

// pdguardNamespace is where pdguard's own objects live: --namespace, else the pod's
// namespace (POD_NAMESPACE from the downward API, or the ServiceAccount's), else default.
func pdguardNamespace(flag string) string {
	if flag != "" {
		return flag
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if raw, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(raw)); ns != "" {
			return ns
		}
	}
	return "default"
}

// loadVerdictKey reads the key that signs verdicts from pdguard's Secret, creating the
// Secret with a new key when there is none. Every replica does this at start: the first
// creates it, the others (and every restart) read the same key, so a verdict signed by
// one replica is trusted by all.
func loadVerdictKey(ctx context.Context, cs kubernetes.Interface, namespace, name string) (rollout.VerdictKey, error) {
	secrets := cs.CoreV1().Secrets(namespace)
	for attempt := 0; attempt < 2; attempt++ {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			key, err := rollout.ParseVerdictKey(s.Data[verdictKeyField])
			if err != nil {
				return nil, fmt.Errorf("secret %s/%s, field %q: %w; delete the Secret and restart pdguard to make a new key (open canaries are then judged again)", namespace, name, verdictKeyField, err)
			}
			return key, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the verdict key from secret %s/%s: %w", namespace, name, err)
		}
		key, err := rollout.NewVerdictKey()
		if err != nil {
			return nil, err
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/name": "pdguard", "app.kubernetes.io/component": "verdict-key"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{verdictKeyField: key},
		}, metav1.CreateOptions{})
		if err == nil {
			return key, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the verdict key secret %s/%s: %w", namespace, name, err)
		}
		// Another replica created it first: read theirs.
	}
	return nil, fmt.Errorf("secret %s/%s was created and removed while pdguard started: restart it", namespace, name)
}
