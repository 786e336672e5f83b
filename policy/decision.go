package policy

// Finding is one rule's message. Rule is a stable id (canary-partition, partition-gate...)
// used in responses, logs, metrics and audit.
type Finding struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	// Details is what a reader needs only to dig deeper (commands, revisions): kept out of
	// the message, which users read in the response, and carried by the audit record.
	Details []string `json:"details,omitempty"`
}

// String is the finding as users see it in responses and logs: "[rule] message".
func (f Finding) String() string { return "[" + f.Rule + "] " + f.Message }

// Messages formats findings with String; nil when there are none.
func Messages(findings []Finding) []string {
	if len(findings) == 0 {
		return nil
	}
	out := make([]string, len(findings))
	for i, f := range findings {
		out[i] = f.String()
	}
	return out
}

// Mutation is what data.pdguard.framework.mutate_result returns: the mutate rules' change
// and advisories with the mode and the override already applied.
type Mutation struct {
	// Partition, when set, is the partition the object must carry.
	Partition *int32 `json:"partition"`
	// RecordCanary asks Go to write the pdguard.io/canary annotation for this change.
	RecordCanary bool `json:"record_canary"`
	// CloseCanary asks Go to remove the pdguard.io/canary annotation.
	CloseCanary bool `json:"close_canary"`
	// Fired lists the rules that changed the object, with what they did and why.
	Fired []Finding `json:"fired"`
	// Warnings are shown to the user without changing anything (empty in dryrun).
	Warnings []Finding `json:"warnings"`
	// Shown is everything the response shows: Fired then Warnings, nothing in dryrun.
	Shown []Finding `json:"shown"`
	// Apply is true when Go must apply Partition, RecordCanary and CloseCanary, and spend
	// an override the change needs (enforce and warn mode; dryrun changes nothing).
	Apply bool `json:"apply"`
	// Mode is the effective enforcement mode, for logs and audit.
	Mode string `json:"mode"`
}

// Validation is what data.pdguard.framework.validate_result returns: the validate rules'
// findings with the mode and the override already applied.
type Validation struct {
	Allowed bool `json:"allowed"`
	// Denials are the violations that deny this request (empty when Allowed).
	Denials []Finding `json:"denials"`
	// Warnings include violations that warn/dryrun mode or an override let through.
	Warnings []Finding `json:"warnings"`
	// Violations are every rule that fired, whatever the mode, for logs and audit.
	Violations []Finding `json:"violations"`
	Mode       string    `json:"mode"`
	Overridden bool      `json:"overridden"`
}
