package main

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/manifest"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/webhook"
)

// liveReader reads what admission reads, from the API server instead of an informer cache:
// a StatefulSet, its pods (rollout.ListPods, as the webhook) and pdguard's verdict key.
type liveReader struct {
	client client.Client
}

func (f kubeFlags) liveReader() (*liveReader, error) {
	cfg, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return &liveReader{client: c}, nil
}

// statefulSet returns the live object, nil when there is none.
func (r *liveReader) statefulSet(ctx context.Context, namespace, name string) (*appsv1.StatefulSet, error) {
	sts := &appsv1.StatefulSet{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, sts)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading StatefulSet %s/%s: %w", namespace, name, err)
	}
	return sts, nil
}

func (r *liveReader) pods(ctx context.Context, sts *appsv1.StatefulSet) ([]corev1.Pod, error) {
	return webhook.CachedPods{Reader: r.client}.PodsFor(ctx, sts)
}

// trust returns the signature check of pdguard's verdict key in the Secret ref
// (NAMESPACE/NAME), or nil and a note saying why verdicts are trusted unchecked.
func (r *liveReader) trust(ctx context.Context, ref string) (rollout.VerdictTrust, string, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return nil, "", fmt.Errorf("--verdict-key-secret must be NAMESPACE/NAME, got %q", ref)
	}
	secret := &corev1.Secret{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, secret); err != nil {
		reason := err.Error()
		switch {
		case apierrors.IsNotFound(err):
			reason = "it does not exist"
		case apierrors.IsForbidden(err):
			reason = "you may not read it"
		}
		return nil, fmt.Sprintf("verdicts are trusted unchecked: pdguard's verdict key Secret %s cannot be read (%s), so their signatures are not checked; the webhook checks them, and a verdict it does not trust would not promote. Pass --verdict-key-secret NAMESPACE/NAME if pdguard keeps it elsewhere", ref, reason), nil
	}
	key, err := rollout.ParseVerdictKey(secret.Data[verdictKeyField])
	if err != nil {
		return nil, "", fmt.Errorf("secret %s, field %q: %w", ref, verdictKeyField, err)
	}
	return key.Trust, "", nil
}

// readLive reads the live counterpart of every StatefulSet of the release, with its pods.
func (o *checkOptions) readLive(ctx context.Context, release *manifest.Release) (*oldState, error) {
	r, err := o.kube.liveReader()
	if err != nil {
		return nil, err
	}
	old := &oldState{release: &manifest.Release{}, live: true}
	for _, s := range release.StatefulSets {
		sts, err := r.statefulSet(ctx, s.Namespace, s.Name)
		if err != nil {
			return nil, err
		}
		if sts == nil {
			continue
		}
		old.release.StatefulSets = append(old.release.StatefulSets, manifest.StatefulSet{StatefulSet: sts, Source: "cluster", NamespaceGiven: true})
		pods, err := r.pods(ctx, sts)
		if err != nil {
			return nil, err
		}
		old.pods = append(old.pods, pods...)
	}
	trust, note, err := r.trust(ctx, o.verdictKey)
	if err != nil {
		return nil, err
	}
	old.trust = trust
	if note != "" {
		old.notes = append(old.notes, note)
	}
	return old, nil
}
