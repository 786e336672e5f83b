package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/rollout"
)

// EventRecorder is the part of client-go's events.k8s.io recorder that audit uses.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// Event is the Kubernetes Event a record is reported as.
type Event struct {
	Type, Reason, Action, Note string
}

// EventFor picks the Event for a record. Warning is kept for what needs a person's
// attention. The events API folds Events with the same reason and action into one series
// that keeps the first note, so the action carries a digest of the decision: the same
// decision repeated is one series, a different one is its own Event.
func EventFor(r *Record) (Event, bool) {
	var e Event
	switch r.Kind {
	case KindAdmission:
		if !r.Reported() {
			return e, false
		}
		switch {
		case r.Outcome == Warned && r.Mode == "warn":
			// Warn mode still opens the canary; what enforce mode would have refused is
			// what a person needs to read.
			e = Event{corev1.EventTypeWarning, ReasonRolloutWarned, "Warn", ""}
		case r.Canary != nil:
			e = Event{corev1.EventTypeNormal, ReasonCanaryStarted, "Open", ""}
		case r.Outcome == Denied:
			e = Event{corev1.EventTypeWarning, ReasonRolloutBlocked, "Deny", ""}
		case r.Overridden():
			e = Event{corev1.EventTypeWarning, ReasonOverride, "Override", ""}
		case r.Outcome == Warned:
			e = Event{corev1.EventTypeWarning, ReasonRolloutWarned, "Warn", ""}
		case len(r.Proof) > 0:
			e = Event{corev1.EventTypeNormal, ReasonPromoted, "Promote", ""}
		default:
			return e, false
		}
		rules := r.Rules
		if r.Canary != nil {
			rules = append([]string{"canary-partition"}, rules...)
		} else if len(r.Proof) > 0 {
			rules = []string{"partition-gate"}
		}
		e.Note = note1k(r.User, rules, r.Text())
	case KindVerdict:
		e = Event{corev1.EventTypeWarning, ReasonVerdict, "Judge", r.Message}
		if r.Verdict == rollout.VerdictSucceeded || !finalVerdict(r.Verdict) {
			e.Type = corev1.EventTypeNormal
		}
	case KindPromotion:
		e = Event{corev1.EventTypeNormal, ReasonPromoted, "Promote", r.Message}
	case KindPromotionHalted:
		e = Event{corev1.EventTypeWarning, ReasonPromotionHalted, "Promote", r.Message}
	case KindPodReplaced:
		e = Event{corev1.EventTypeWarning, ReasonBrokenPodReplaced, "Replace", r.Message}
	case KindForgedVerdict:
		e = Event{corev1.EventTypeWarning, ReasonForgedVerdict, "Judge", r.Message}
	default:
		return e, false
	}
	e.Action += "-" + digest(e.Reason, e.Note)
	e.Note = fit1k(e.Note)
	return e, true
}

// EventSink writes each record's Event on its StatefulSet.
//
// An Event repeated within one batch (the same decision retried in a loop, a CD tool
// re-applying a refused change) is recorded once: each call costs client-go's recorder two
// goroutines and copies of the Event on the core that answers admissions. An Event series
// then counts batches; the log line and the pdguard_admission_decisions_total metric count
// every decision. A batch holds what queued in one flush, 20 ms.
type EventSink struct {
	// Admission writes the webhooks' Events, Controller the evidence controller's, so
	// each names its reporting controller.
	Admission, Controller EventRecorder
}

func (EventSink) Name() string { return "events" }

// series is what client-go's recorder folds into one Event series; admission tells
// which of the two recorders writes it.
type series struct {
	admission                 bool
	regarding, related        corev1.ObjectReference
	eventType, reason, action string
}

func (s EventSink) Write(_ context.Context, records []Record) error {
	var recorded map[series]bool
	if len(records) > 1 {
		recorded = make(map[series]bool, 2)
	}
	for i := range records {
		r := &records[i]
		if r.Object == nil || r.DryRun {
			continue
		}
		e, ok := EventFor(r)
		if !ok {
			continue
		}
		admission := r.Kind == KindAdmission
		rec := s.Controller
		if admission {
			rec = s.Admission
		}
		if rec == nil {
			continue
		}
		regarding := objectRef("apps/v1", "StatefulSet", r.Object.Namespace, r.Object.Name, r.Object.UID)
		key := series{admission: admission, regarding: *regarding, eventType: e.Type, reason: e.Reason, action: e.Action}
		var related runtime.Object
		if r.RelatedPod != nil {
			ref := objectRef("v1", "Pod", r.RelatedPod.Namespace, r.RelatedPod.Name, r.RelatedPod.UID)
			key.related, related = *ref, ref
		}
		if recorded != nil {
			if recorded[key] {
				continue
			}
			recorded[key] = true
		}
		rec.Eventf(regarding, related, e.Type, e.Reason, e.Action, "%s", e.Note)
	}
	return nil
}

// objectRef is what an Event names, without the resourceVersion client-go's recorder would
// copy from the object: the recorder folds repeats of an Event into one series only when
// the references are equal, and the pod's resourceVersion changes with every status update
// (and with the verdict annotation itself), so the same Event would become a new object.
func objectRef(apiVersion, kind, namespace, name string, uid types.UID) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: name, UID: uid}
}

func digest(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:4])
}

// note1k fits an admission Event's note into the 1 KiB the events API accepts.
func note1k(user string, rules []string, msg string) string {
	return fit1k("[" + strings.Join(rules, ",") + "] by " + user + ": " + msg)
}

func fit1k(note string) string {
	if len(note) > 1024 {
		note = note[:1021] + "..."
	}
	return note
}
