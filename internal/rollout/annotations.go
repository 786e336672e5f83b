// Package rollout reads the canary state of a guarded StatefulSet and its pods: the
// partition, whether a canary is open, which pods run the update revision, and the
// evidence recorded on them. It is shared by admission and the evidence controller so
// both agree on what "open", "stale" and "proven" mean.
package rollout

import "time"

// Annotation and label keys that pdguard reads and writes.
const (
	// AnnotationPrefix starts every annotation key pdguard reads and writes, so that a cache
	// can keep these and drop the rest.
	AnnotationPrefix = "pdguard.io/"
	// CanaryAnnotation on a StatefulSet records the canary that pdguard opened (JSON CanaryRecord).
	CanaryAnnotation = "pdguard.io/canary"
	// ReplaceProfileAnnotation on a pod records the evidence controller's verdict (JSON Verdict).
	ReplaceProfileAnnotation = "pdguard.io/replace-profile"
	// OverrideReasonAnnotation on a StatefulSet asks to lift the guard's rules for one change.
	OverrideReasonAnnotation = "pdguard.io/override-reason"
	// OverrideUsedAnnotation records the override that the mutating webhook consumed: the
	// reason comes off the object so it cannot lift the rules for a later change.
	OverrideUsedAnnotation = "pdguard.io/override-used"
	// EnforcementAnnotation on a StatefulSet sets its mode: enforce, warn or dryrun.
	EnforcementAnnotation = "pdguard.io/enforcement"
	// AutoPromoteAnnotation on a StatefulSet ("true") lets the controller lower the partition
	// one ordinal at a time once each canary is proven.
	AutoPromoteAnnotation = "pdguard.io/auto-promote"

	// RevisionLabel is set by the StatefulSet controller on every pod it creates.
	RevisionLabel = "controller-revision-hash"
)

// CanaryRecord is what pdguard writes in CanaryAnnotation when it opens a canary.
type CanaryRecord struct {
	FromImage   string    `json:"fromImage"`
	ToImage     string    `json:"toImage"`
	FromVersion string    `json:"fromVersion,omitempty"`
	ToVersion   string    `json:"toVersion,omitempty"`
	Partition   int32     `json:"partition"`
	Started     time.Time `json:"started"`
	RequestedBy string    `json:"requestedBy,omitempty"`
}

// OverrideUse is what OverrideUsedAnnotation holds.
type OverrideUse struct {
	Reason string    `json:"reason"`
	User   string    `json:"user"`
	At     time.Time `json:"at"`
	Rules  []string  `json:"rules"`
}

// Verdict values written by the evidence controller.
const (
	VerdictSucceeded   = "Succeeded"
	VerdictFailed      = "Failed"
	VerdictInProgress  = "InProgress"
	VerdictNotUpgraded = "NotUpgraded"
	VerdictUnknown     = "Unknown"
)

// Verdict is what the evidence controller writes in ReplaceProfileAnnotation on a pod.
// Revision and ContainerID pin it to one container of one revision: a verdict about an
// earlier container or revision is stale and proves nothing.
type Verdict struct {
	Verdict     string    `json:"verdict"`
	Revision    string    `json:"revision"`
	ContainerID string    `json:"containerID"`
	From        string    `json:"from,omitempty"`
	To          string    `json:"to,omitempty"`
	ObservedAt  time.Time `json:"observedAt"`
	Reason      string    `json:"reason,omitempty"`
	// Signature is pdguard's HMAC over the fields above and the pod (see VerdictKey).
	Signature string `json:"signature,omitempty"`
}
