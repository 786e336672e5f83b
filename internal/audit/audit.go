// Package audit reports every admission decision that changed, warned about or blocked a
// guarded rollout: one structured log line, Prometheus metrics, and a Kubernetes Event
// on the StatefulSet so `kubectl describe` and `webhook report` show it.
package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pdguard/pdguard/internal/rollout"
)

// Decision outcomes, used as the `decision` log key and metric label.
const (
	Allowed = "allowed" // nothing to say
	Patched = "patched" // the mutating webhook changed the object
	Warned  = "warned"  // allowed with warnings (warn mode, overrides, advisories)
	Denied  = "denied"
	Errored = "error" // the request could not be decided; the failure policy applies
	Skipped = "skipped"
)

// Event reasons pdguard writes on StatefulSets. Stable: `webhook report` and users'
// alerts select on them.
const (
	ReasonCanaryStarted  = "CanaryStarted"
	ReasonRolloutBlocked = "RolloutBlocked"
	ReasonRolloutWarned  = "RolloutWarned"
	ReasonOverride       = "GuardOverridden"
	// Written by the evidence controller.
	ReasonVerdict           = "ReplaceProfileVerdict"
	ReasonPromoted          = "CanaryPromoted"
	ReasonPromotionHalted   = "PromotionHalted"
	ReasonBrokenPodReplaced = "BrokenPodReplaced"
	ReasonForgedVerdict     = "ForgedVerdict"
)

// Decision is one admission answer for one object.
type Decision struct {
	Webhook   string // mutate | validate
	Namespace string
	Name      string
	Operation string
	User      string
	Outcome   string
	Mode      string
	Rules     []string
	Reasons   []string
	Warnings  []string
	DryRun    bool
	Latency   time.Duration
	// Canary is set when the validating webhook admitted a request that opens a canary.
	Canary *rollout.CanaryRecord
	// Proof lists the verdicts an admitted promotion (a lowered partition of an open
	// canary) rested on.
	Proof []rollout.Proof
	Err   error
	// Object is the StatefulSet the Event is written on; nil skips the Event.
	Object *appsv1.StatefulSet
}

// EventRecorder is the part of client-go's events.k8s.io recorder that audit uses.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// Recorder writes decisions to logs, metrics and Events.
type Recorder struct {
	Log    logr.Logger
	Events EventRecorder // optional
	m      *metrics
}

// NewRecorder registers pdguard's metrics with reg (controller-runtime's registry when serving).
func NewRecorder(log logr.Logger, events EventRecorder, reg prometheus.Registerer) *Recorder {
	return &Recorder{Log: log, Events: events, m: newMetrics(reg)}
}

// Record reports one decision. It never blocks on the API server: Events are queued by
// client-go's broadcaster.
func (r *Recorder) Record(d Decision) {
	kv := []any{
		"webhook", d.Webhook, "namespace", d.Namespace, "name", d.Name, "operation", d.Operation,
		"user", d.User, "decision", d.Outcome, "mode", d.Mode, "rules", d.Rules,
		"latency", d.Latency.String(),
	}
	if len(d.Reasons) > 0 {
		kv = append(kv, "reason", strings.Join(d.Reasons, " | "))
	}
	if len(d.Warnings) > 0 {
		kv = append(kv, "warnings", d.Warnings)
	}
	if d.DryRun {
		kv = append(kv, "dryRun", true)
	}
	if d.Proof != nil {
		kv = append(kv, "proof", d.Proof)
	}
	if d.Err != nil {
		r.Log.Error(d.Err, "admission decision failed", kv...)
	} else {
		r.Log.Info("admission decision", kv...)
	}
	if r.m != nil {
		r.m.observe(d)
	}
	if r.Events != nil && d.Object != nil && !d.DryRun {
		if eventType, reason, note, ok := eventFor(d); ok {
			r.Events.Eventf(d.Object, nil, eventType, reason, d.Webhook, "%s", note)
		}
	}
}

// eventFor picks the Event for a decision. Only the validating webhook writes Events: it
// has the last word, so a canary is reported as started only when the request that opens
// it is admitted, and a request that passes both webhooks is reported once.
func eventFor(d Decision) (eventType, reason, note string, ok bool) {
	switch {
	case d.Webhook == "validate" && d.Canary != nil:
		c := d.Canary
		msg := fmt.Sprintf("canary opened: pods from ordinal %d up move from %s to %s, the others stay until its replace-profile is proven", c.Partition, c.FromImage, c.ToImage)
		return corev1.EventTypeNormal, ReasonCanaryStarted, note1k(d.User, append([]string{"canary-partition"}, d.Rules...), append([]string{msg}, d.Warnings...)), true
	case d.Webhook == "validate" && d.Outcome == Denied:
		return corev1.EventTypeWarning, ReasonRolloutBlocked, note1k(d.User, d.Rules, d.Reasons), true
	case d.Webhook == "validate" && d.Outcome == Warned && slices.Contains(d.Rules, "override"):
		return corev1.EventTypeWarning, ReasonOverride, note1k(d.User, d.Rules, d.Warnings), true
	case d.Webhook == "validate" && d.Outcome == Warned:
		return corev1.EventTypeWarning, ReasonRolloutWarned, note1k(d.User, d.Rules, d.Warnings), true
	case d.Webhook == "validate" && d.Outcome == Allowed && len(d.Proof) > 0:
		return corev1.EventTypeNormal, ReasonPromoted, note1k(d.User, []string{"partition-gate"}, []string{"promotion admitted on pdguard's verdicts: " + proofText(d.Proof)}), true
	}
	return "", "", "", false
}

func proofText(proof []rollout.Proof) string {
	parts := make([]string, 0, len(proof))
	for _, p := range proof {
		parts = append(parts, fmt.Sprintf("%s (container %s, revision %s, issued %s)", p.Pod, p.ContainerID, p.Revision, p.IssuedAt.UTC().Format(time.RFC3339)))
	}
	return strings.Join(parts, ", ")
}

// note1k fits the Event note into the 1 KiB the events API accepts.
func note1k(user string, rules, msgs []string) string {
	note := "[" + strings.Join(rules, ",") + "] by " + user + ": " + strings.Join(msgs, " | ")
	if len(note) > 1024 {
		note = note[:1021] + "..."
	}
	return note
}
