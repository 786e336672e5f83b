// Package webhook applies pdguard's policy to admission requests: the Guard turns the
// policy's decision into a JSON patch or a denial (the one code path behind the webhook
// and `webhook check`), and the thin handlers decode the request, skip what is not
// guarded, ask the Guard, and turn its answer into a response and an audit record. No
// rule lives here.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/policy"
)

// PodSource lists a StatefulSet's pods. In the server it reads the informer cache, so
// admission never calls the API server or waits on logs.
type PodSource interface {
	PodsFor(ctx context.Context, sts *appsv1.StatefulSet) ([]corev1.Pod, error)
}

// CachedPods lists pods through a controller-runtime cache-backed reader.
type CachedPods struct{ Reader client.Reader }

// PodsFor hands out the cache's own pods, not copies: a decision only reads them, and the
// informer replaces a cached pod on each change instead of writing into it. Copying them
// was half the cost of listing a canary's pods on every promotion attempt.
// TestDecisionsLeaveThePodsAsTheyWere holds every decision to reading only.
func (c CachedPods) PodsFor(ctx context.Context, sts *appsv1.StatefulSet) ([]corev1.Pod, error) {
	return rollout.ListPods(ctx, c.Reader, sts, client.UnsafeDisableDeepCopy)
}

// Handler answers one of the two webhook paths.
type Handler struct {
	// Phase is "mutate" or "validate".
	Phase    string
	Guard    *Guard
	Selector labels.Selector
	Pods     PodSource
	Audit    *audit.Pipeline
	// Container is the product container, whose image the audit record names.
	Container string
}

var statefulSetKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}

func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	d := audit.Record{
		Time: start, Kind: audit.KindAdmission, Webhook: h.Phase, Namespace: req.Namespace, Name: req.Name,
		Operation: string(req.Operation), User: req.UserInfo.Username, Groups: req.UserInfo.Groups,
		DryRun: req.DryRun != nil && *req.DryRun,
	}
	resp := h.decide(ctx, req, &d)
	d.Latency = time.Since(start)
	if d.Outcome != audit.Skipped && h.Audit != nil {
		h.Audit.Record(d)
	}
	return resp
}

func (h *Handler) decide(ctx context.Context, req admission.Request, d *audit.Record) admission.Response {
	if err := fromAPIServer(req); err != nil {
		d.Outcome, d.Err = audit.Errored, err
		return admission.Errored(http.StatusBadRequest, err)
	}
	if req.Kind != statefulSetKind {
		d.Outcome = audit.Skipped
		return admission.Allowed("pdguard only guards apps/v1 StatefulSets")
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		d.Outcome = audit.Skipped
		return admission.Allowed("")
	}
	gr, err := decodeRequest(req)
	if err != nil {
		d.Outcome, d.Err = audit.Errored, err
		return admission.Errored(http.StatusBadRequest, err)
	}
	if !h.Selector.Matches(labels.Set(gr.New.Labels)) {
		d.Outcome = audit.Skipped
		return admission.Allowed("not guarded: labels do not match pdguard's selector")
	}
	// Only guarded objects are recorded, so only they pay for the record's image facts.
	d.FromObjects(gr.Old, gr.New, h.Container)
	if gr.Old != nil && rollout.CanaryOpen(gr.Old) && h.Pods != nil {
		pods, err := h.Pods.PodsFor(ctx, gr.Old)
		if err != nil {
			d.Outcome, d.Err = audit.Errored, err
			return undecided(err)
		}
		gr.Pods = pods
	}

	if h.Phase == "mutate" {
		res, err := h.Guard.Mutate(ctx, gr)
		var refused *RefusedError
		if errors.As(err, &refused) {
			d.Outcome, d.Reasons = audit.Denied, []string{refused.Reason}
			resp := admission.Denied("pdguard: " + refused.Reason)
			resp.Result.Reason = metav1.StatusReasonForbidden
			return resp
		}
		if err != nil {
			d.Outcome, d.Err = audit.Errored, err
			return undecided(err)
		}
		d.Mode, d.Rules, d.Warnings, d.Outcome = res.Mode, res.Rules, res.Warnings, res.Outcome()
		resp := admission.Patched("", res.Patch...)
		if len(res.Patch) == 0 {
			resp = admission.Allowed("")
		}
		return resp.WithWarnings(res.Warnings...)
	}

	res, err := h.Guard.Validate(ctx, gr)
	if err != nil {
		d.Outcome, d.Err = audit.Errored, err
		return undecided(err)
	}
	d.Mode, d.Rules, d.Reasons, d.Warnings = res.Mode, res.Rules, res.Reasons, res.Warnings
	d.Outcome, d.Proof, d.Canary = res.Outcome(), res.Proof, res.Canary
	for _, f := range res.Decision.Denials {
		d.Details = append(d.Details, f.Details...)
	}
	if !res.Allowed {
		resp := admission.Denied(denialMessage(res.Reasons))
		resp.Result.Reason = metav1.StatusReasonForbidden
		return resp.WithWarnings(res.Warnings...)
	}
	return admission.Allowed("").WithWarnings(res.Warnings...)
}

// undecided answers a request pdguard could not decide. The API server then applies the
// webhook's failure policy, so the message says where to look and what to do.
func undecided(err error) admission.Response {
	var bad *policy.InputError
	if errors.As(err, &bad) {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("pdguard cannot decide on this change: %w", err))
	}
	return admission.Errored(http.StatusInternalServerError, fmt.Errorf(
		"pdguard could not decide on this change: %w. Retry in a moment; if it persists, read the pdguard webhook's logs (kubectl -n <pdguard namespace> logs -l app.kubernetes.io/name=pdguard) for this error", err))
}

func denialMessage(reasons []string) string {
	if len(reasons) == 1 {
		return "pdguard: " + reasons[0]
	}
	msg := fmt.Sprintf("pdguard blocked this change for %d reasons:", len(reasons))
	for i, r := range reasons {
		msg += fmt.Sprintf(" (%d) %s", i+1, r)
	}
	return msg
}

// decodeRequest reads the StatefulSets out of an admission request. An object that does
// not decode is an error, never an allow.
func decodeRequest(req admission.Request) (*policy.Request, error) {
	if len(req.Object.Raw) == 0 {
		return nil, fmt.Errorf("admission request %s carries no object", req.UID)
	}
	gr := &policy.Request{Operation: string(req.Operation), User: req.UserInfo, New: &appsv1.StatefulSet{}}
	if err := decodeStatefulSet(req.Object.Raw, gr.New); err != nil {
		return nil, fmt.Errorf("decoding the StatefulSet in admission request %s: %w", req.UID, err)
	}
	if req.Operation == admissionv1.Update {
		if len(req.OldObject.Raw) == 0 {
			return nil, fmt.Errorf("UPDATE admission request %s for %s/%s carries no oldObject", req.UID, req.Namespace, req.Name)
		}
		gr.Old = &appsv1.StatefulSet{}
		if err := decodeStatefulSet(req.OldObject.Raw, gr.Old); err != nil {
			return nil, fmt.Errorf("decoding the live StatefulSet in admission request %s: %w", req.UID, err)
		}
	}
	if gr.New.Namespace == "" {
		gr.New.Namespace = req.Namespace
	}
	if gr.Old != nil && gr.Old.Namespace == "" {
		gr.Old.Namespace = req.Namespace
	}
	if err := checkObjects(string(req.UID), gr); err != nil {
		return nil, err
	}
	return gr, nil
}

// fromAPIServer refuses a request the API server never sends: it gives every request a
// uid, the object's kind and resource, and the operation. A request without them carries
// nothing to decide on, so it is refused rather than allowed as not guarded.
func fromAPIServer(req admission.Request) error {
	if req.UID != "" && req.Kind.Kind != "" && req.Resource.Resource != "" && req.Operation != "" {
		return nil
	}
	var missing []string
	for _, f := range [...]struct{ name, value string }{
		{"request.uid", string(req.UID)}, {"request.kind", req.Kind.Kind},
		{"request.resource", req.Resource.Resource}, {"request.operation", string(req.Operation)},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	return fmt.Errorf("not an AdmissionReview from the API server: %s empty", strings.Join(missing, ", "))
}
