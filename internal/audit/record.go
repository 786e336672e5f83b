package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/rollout"
)

// Record kinds: what produced the record.
const (
	KindAdmission       = "admission"        // an answer of the mutating or validating webhook
	KindVerdict         = "verdict"          // the evidence controller judged a pod's replace-profile
	KindPromotion       = "promotion"        // the evidence controller lowered the partition
	KindPromotionHalted = "promotion-halted" // auto-promotion stopped
	KindPodReplaced     = "pod-replaced"     // a crash-looping pod left on an old revision was deleted
	KindForgedVerdict   = "forged-verdict"   // a pod carried a verdict pdguard did not issue
)

// Record is one audit record: an admission decision or an act of the evidence
// controller. Every sink reads the same record.
type Record struct {
	Time time.Time
	Kind string
	// Webhook is mutate or validate for admission records.
	Webhook   string
	Namespace string
	Name      string
	UID       types.UID
	Operation string
	User      string
	Groups    []string
	Rules     []string
	// FromImage/ToImage are the product container's image before and after the change,
	// FromVersion/ToVersion the product versions they name.
	FromImage      string
	ToImage        string
	FromVersion    string
	ToVersion      string
	UpdateRevision string
	Mode           string
	Outcome        string
	// Message is what happened in one text: the denial, the warnings, the verdict's reason.
	Message string
	Reasons []string
	// Details is what a denial keeps out of its short message: the commands to run and
	// the revisions involved. It is logged and kept in the Report, not sent to the client.
	Details  []string
	Warnings []string
	// DryRun marks a request sent with dryRun (kubectl --dry-run=server): logged only.
	DryRun  bool
	Latency time.Duration
	// Canary is set when the validating webhook admitted a request that opens a canary.
	Canary *rollout.CanaryRecord
	// Proof lists the verdicts an admitted promotion rested on.
	Proof []rollout.Proof
	Err   error
	// Pod and Verdict are set on the evidence controller's records about one pod.
	Pod     string
	Verdict string
	// Basis is what the decision was made against: the live object's generation for
	// admission (not its resourceVersion, which the StatefulSet controller's status writes
	// move: a request retried after such a conflict is the same decision), the judged
	// container's ID for a verdict. With the decision's content it makes the record's key,
	// so a retried identical request is one record and a changed situation is another.
	Basis string
	// Object is the StatefulSet the record is about (the Event is written on it); nil
	// skips the Event. RelatedPod is the pod, for the controller's records.
	Object     *appsv1.StatefulSet
	RelatedPod *corev1.Pod
}

// FromObjects fills the object identity and the image change from the request's live
// and new StatefulSets.
func (r *Record) FromObjects(old, cur *appsv1.StatefulSet, container string) {
	if cur == nil {
		return
	}
	r.Object = cur
	if r.Name == "" {
		r.Name = cur.Name
	}
	r.UID = cur.UID
	if old != nil {
		r.UID = old.UID
		r.Basis = "generation " + strconv.FormatInt(old.Generation, 10)
		r.UpdateRevision = rollout.PublishedUpdateRevision(old)
		r.FromImage, _ = rollout.ContainerImage(&old.Spec.Template.Spec, container)
		r.FromVersion = rollout.VersionOf(r.FromImage)
	}
	r.ToImage, _ = rollout.ContainerImage(&cur.Spec.Template.Spec, container)
	r.ToVersion = rollout.VersionOf(r.ToImage)
}

// Reported says whether the record is worth keeping beyond the log line: something was
// blocked, warned about, overridden, opened, judged for good or promoted.
func (r *Record) Reported() bool {
	if r.DryRun || r.Err != nil || r.Outcome == Skipped {
		return false
	}
	switch r.Kind {
	case KindAdmission:
		if r.Webhook == "mutate" {
			// The validating webhook has the last word and reports admitted requests;
			// a mutating refusal never reaches it.
			return r.Outcome == Denied
		}
		return r.Outcome == Denied || r.Outcome == Warned || r.Canary != nil || len(r.Proof) > 0
	case KindVerdict:
		return finalVerdict(r.Verdict)
	}
	return true
}

func finalVerdict(v string) bool {
	switch v {
	case rollout.VerdictSucceeded, rollout.VerdictFailed, rollout.VerdictNotUpgraded, rollout.VerdictUnknown:
		return true
	}
	return false
}

// Overridden: the request was admitted on a break-glass override.
func (r *Record) Overridden() bool {
	return r.Kind == KindAdmission && r.Outcome == Warned && slices.Contains(r.Rules, "override")
}

// Report results, in the words of the OpenReports API.
const (
	ResultPass = "pass"
	ResultWarn = "warn"
	ResultFail = "fail"
)

// Result says whether the record is a failure, a warning or a pass.
func (r *Record) Result() string {
	switch r.Kind {
	case KindAdmission:
		switch r.Outcome {
		case Denied:
			return ResultFail
		case Warned:
			return ResultWarn
		}
		return ResultPass
	case KindVerdict:
		if r.Verdict == rollout.VerdictSucceeded {
			return ResultPass
		}
		return ResultFail
	case KindPromotion:
		return ResultPass
	case KindForgedVerdict:
		return ResultFail
	}
	return ResultWarn
}

// Rule is the one rule id a report result is filed under.
func (r *Record) Rule() string {
	switch r.Kind {
	case KindAdmission:
		switch {
		case r.Canary != nil:
			return "canary-partition"
		case len(r.Proof) > 0:
			return "partition-gate"
		case r.Overridden():
			return "override"
		case len(r.Rules) > 0:
			return r.Rules[0]
		}
		return "admission"
	case KindVerdict:
		return "replace-profile"
	}
	return r.Kind
}

// Text is the record's message: set by the producer, or made from the reasons and
// warnings of an admission decision.
func (r *Record) Text() string {
	if r.Message != "" {
		return r.Message
	}
	switch {
	case r.Canary != nil:
		c := r.Canary
		msgs := append([]string{fmt.Sprintf("canary opened: pods from ordinal %d up move from %s to %s, the others stay until its replace-profile is proven", c.Partition, c.FromImage, c.ToImage)}, r.Warnings...)
		return strings.Join(msgs, " | ")
	case len(r.Proof) > 0:
		return "promotion admitted on pdguard's verdicts: " + proofText(r.Proof)
	case r.Outcome == Denied:
		return strings.Join(r.Reasons, " | ")
	}
	return strings.Join(r.Warnings, " | ")
}

// Key identifies the record for idempotent writes: the same decision on the same live
// object (a retried request, a second replica judging the same container) has the same
// key; a different decision or message has another.
func (r *Record) Key() string {
	h := sha256.New()
	for _, s := range []string{
		r.Kind, r.Webhook, r.Namespace, r.Name, string(r.UID), r.Operation, r.User, strings.Join(r.Rules, ","),
		r.FromImage, r.ToImage, r.UpdateRevision, r.Mode, r.Outcome, r.Text(), r.Pod, r.Verdict, r.Basis,
	} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

func proofText(proof []rollout.Proof) string {
	parts := make([]string, 0, len(proof))
	for _, p := range proof {
		parts = append(parts, fmt.Sprintf("%s (container %s, revision %s, issued %s)", p.Pod, p.ContainerID, p.Revision, p.IssuedAt.UTC().Format(time.RFC3339)))
	}
	return strings.Join(parts, ", ")
}
