package policy

// Finding is one rule's message. Rule is a stable id (canary-partition, partition-gate...)
// used in responses, logs, metrics and audit.
type Finding struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// Mutation is what data.pdguard.mutate.result returns.
type Mutation struct {
	// Partition, when set, is the partition the object must carry.
	Partition *int32 `json:"partition"`
	// RecordCanary asks Go to write the pdguard.io/canary annotation for this change.
	RecordCanary bool `json:"record_canary"`
	// CloseCanary asks Go to remove the pdguard.io/canary annotation.
	CloseCanary bool `json:"close_canary"`
	// Fired lists the rules that changed the object, with what they did and why.
	Fired []Finding `json:"fired"`
	// Warnings are shown to the user without changing anything.
	Warnings []Finding `json:"warnings"`
	// Mode is the effective enforcement mode; only "enforce" applies the patch.
	Mode string `json:"mode"`
}

// Validation is what data.pdguard.validate.result returns.
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
