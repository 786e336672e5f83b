package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pdguard/pdguard/internal/rollout"
)

type selftestOptions struct {
	kube        kubeFlags
	statefulSet string
	container   string
	image       string
	webhook     string
	timeout     time.Duration
}

// newSelftestCommand is what the chart's `helm test` Pod runs: the image has no shell,
// so the check is a subcommand of the binary it already ships.
func newSelftestCommand() *cobra.Command {
	o := selftestOptions{kube: newKubeFlags(false)}
	cmd := &cobra.Command{
		Use:   "selftest --statefulset NAME -n NS --image IMAGE",
		Short: "Prove through the API server that pdguard's webhooks answer: a dry-run version change bundled with a scale-up must come back refused by pdguard",
		Long: `selftest sends the API server a server-side dry run of an update to a guarded StatefulSet
(the chart's test hook makes one with 0 replicas and pdguard.io/enforcement: enforce): the
product container's image changes to --image and the replicas go from 0 to 2. pdguard's
mutating webhook pins a canary partition and its validating webhook refuses the change as a
version change bundled with a configuration change. Nothing is stored and no pod starts.

It passes when the refusal comes from pdguard's validating webhook and does not complain about
a missing canary partition (which would mean the mutating webhook did not answer). Transient
answers (the StatefulSet or the RBAC not there yet, a webhook not reachable yet) are retried
until --timeout. Exit code 0: pdguard answered; 1: it did not, with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.statefulSet == "" || o.image == "" {
				return badInput(errors.New("--statefulset and --image are required"))
			}
			ns, _, err := o.kube.namespace()
			if err != nil {
				return badInput(err)
			}
			cs, err := o.kube.clientset()
			if err != nil {
				return badInput(err)
			}
			msg, err := selftest(cmd.Context(), cs, ns, o)
			if err != nil {
				return &exitCodeError{Code: exitDenied, Err: fmt.Errorf("selftest failed: %w", err)}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "selftest passed: "+msg)
			return nil
		},
	}
	fs := cmd.Flags()
	o.kube.AddFlags(fs)
	fs.StringVar(&o.statefulSet, "statefulset", "", "the guarded StatefulSet to send the dry-run update for (0 replicas)")
	fs.StringVar(&o.container, "container", "pingdirectory", "name of the product container whose image changes (the chart's guard.container)")
	fs.StringVar(&o.image, "image", "", "the image the dry run changes the product container to; its version must differ")
	fs.StringVar(&o.webhook, "validating-webhook", "validate.statefulsets.pdguard.io", "name of pdguard's validating webhook, which must be the one that refuses")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long transient answers are retried")
	return cmd
}

// selftest returns pdguard's answer when it is the expected refusal.
func selftest(ctx context.Context, cs kubernetes.Interface, ns string, o selftestOptions) (string, error) {
	deadline := time.Now().Add(o.timeout)
	for {
		msg, err := selftestOnce(ctx, cs, ns, o)
		var retry *transientError
		if !errors.As(err, &retry) || time.Now().After(deadline) {
			return msg, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (interrupted: %v)", err, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// transientError is an answer that may change by itself in a moment.
type transientError struct{ error }

func (e *transientError) Unwrap() error { return e.error }

func selftestOnce(ctx context.Context, cs kubernetes.Interface, ns string, o selftestOptions) (string, error) {
	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, o.statefulSet, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", &transientError{fmt.Errorf("StatefulSet %s/%s does not exist; the chart's test hook creates it before this command runs", ns, o.statefulSet)}
	case apierrors.IsForbidden(err):
		return "", &transientError{fmt.Errorf("reading StatefulSet %s/%s: %w; the test hook's Role grants get and update on it", ns, o.statefulSet, err)}
	case err != nil:
		return "", &transientError{fmt.Errorf("reading StatefulSet %s/%s: %w", ns, o.statefulSet, err)}
	}
	image, ok := rollout.ContainerImage(&sts.Spec.Template.Spec, o.container)
	if !ok {
		return "", fmt.Errorf("StatefulSet %s/%s has no container %q (--container, the chart's guard.container)", ns, o.statefulSet, o.container)
	}
	if image == o.image {
		return "", fmt.Errorf("StatefulSet %s/%s already runs %s: --image must be another version", ns, o.statefulSet, o.image)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 0 {
		return "", fmt.Errorf("StatefulSet %s/%s must have 0 replicas, so that the test starts no pod", ns, o.statefulSet)
	}
	req := sts.DeepCopy()
	for i := range req.Spec.Template.Spec.Containers {
		if req.Spec.Template.Spec.Containers[i].Name == o.container {
			req.Spec.Template.Spec.Containers[i].Image = o.image
		}
	}
	two := int32(2)
	req.Spec.Replicas = &two
	_, err = cs.AppsV1().StatefulSets(ns).Update(ctx, req, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "pdguard-selftest"})
	return judgeSelftest(ns, o.statefulSet, o.webhook, err)
}

// judgeSelftest reads the API server's answer to the dry run.
func judgeSelftest(ns, name, webhookName string, err error) (string, error) {
	what := fmt.Sprintf("dry-run update of StatefulSet %s/%s (image change with replicas 0 to 2)", ns, name)
	if err == nil {
		return "", fmt.Errorf("the API server admitted the %s without pdguard refusing it: pdguard's webhook configurations are missing, do not select this namespace or these labels (guard.selector, webhook.excludeNamespaces, webhook.namespaceSelectorExpressions), or webhook.matchConditions skip dry runs", what)
	}
	msg := apiStatusMessage(err)
	if strings.Contains(msg, "failed calling webhook") {
		return "", &transientError{fmt.Errorf("the API server could not call pdguard for the %s: %s. Check that the pdguard pods are Ready and the Service has endpoints (kubectl -n <release namespace> get pods,endpoints)", what, msg)}
	}
	denied := `admission webhook "` + webhookName + `" denied the request: pdguard`
	if !apierrors.IsForbidden(err) || !strings.Contains(msg, denied) {
		if apierrors.IsForbidden(err) && !strings.Contains(msg, "admission webhook") {
			return "", &transientError{fmt.Errorf("the API server refused the %s before admission: %s; the test hook's Role grants get and update on it", what, msg)}
		}
		return "", fmt.Errorf("the %s was refused, but not by pdguard's validating webhook %s: %s", what, webhookName, msg)
	}
	if strings.Contains(msg, "without a canary partition") {
		return "", fmt.Errorf("pdguard's validating webhook answered, but the request reached it without the canary partition its mutating webhook sets: the mutating webhook (failurePolicy Ignore) did not answer. %s", msg)
	}
	return msg, nil
}

func apiStatusMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}
