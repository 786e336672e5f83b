// Package audit is where every audit record goes: admission decisions that changed,
// warned about or blocked a guarded rollout, and what the evidence controller judged,
// promoted or replaced. A Pipeline writes each record's log line and metrics at once and
// feeds the slow sinks (Kubernetes Events, OpenReports Reports) from a bounded queue, so
// admission never waits on the API server.
package audit

// Decision outcomes, used as the `decision` log key and metric label.
const (
	Allowed = "allowed" // nothing to say
	Patched = "patched" // the mutating webhook changed the object
	Warned  = "warned"  // allowed with warnings (warn mode, overrides, advisories)
	Denied  = "denied"
	Errored = "error" // the request could not be decided; the failure policy applies
	Skipped = "skipped"
)

// Event reasons pdguard writes on StatefulSets. Stable: `webhook report`, `webhook
// audit` and users' alerts select on them.
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
