package policy

import "github.com/pdguard/pdguard/internal/rollout"

// Input is the document every Rego rule reads (input.*). Go builds it from the admission
// request, the live StatefulSet and the cached pods; Rego decides. Field names are the
// JSON names Rego sees, so they are part of the policy contract: change them together
// with the .rego files and their tests.
type Input struct {
	// Proof lists the verdicts of the pods at or above the live partition that are proven,
	// for the audit record of a promotion. Not sent to the policy.
	Proof []rollout.Proof `json:"-"`

	// Phase is "mutate" for the mutating webhook and "validate" for the validating one.
	// In "validate", New is the object after pdguard's own mutation.
	Phase     string   `json:"phase"`
	Operation string   `json:"operation"` // CREATE or UPDATE
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	User      User     `json:"user"`
	Settings  Settings `json:"settings"`

	// Old is the live object (nil on CREATE); New is the requested object.
	Old *Summary `json:"old"`
	New Summary  `json:"new"`

	// Change describes what the request changes, computed from Old and New.
	Change Change `json:"change"`

	// Canary is the state of the live rollout (from Old's spec and status).
	Canary Canary `json:"canary"`

	// Pods are the StatefulSet's pods as the informer cache sees them, by ordinal.
	Pods []Pod `json:"pods"`

	// Keys are the annotation keys pdguard reads and writes, so that Rego names them the
	// way Go does (internal/rollout) instead of spelling them out.
	Keys Keys `json:"keys"`
}

// Keys name pdguard's annotations. BuildInput sets them to AnnotationKeys().
type Keys struct {
	Enforcement    string `json:"enforcement"`     // pdguard.io/enforcement
	OverrideReason string `json:"override_reason"` // pdguard.io/override-reason
	OverrideUsed   string `json:"override_used"`   // pdguard.io/override-used
	Canary         string `json:"canary"`          // pdguard.io/canary
	ReplaceProfile string `json:"replace_profile"` // pdguard.io/replace-profile (on pods)
}

type User struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// Settings are the server's flags, not yet combined with per-object annotations.
type Settings struct {
	Enforcement    string   `json:"enforcement"`     // enforce | warn | dryrun
	CanaryReplicas int32    `json:"canary_replicas"` // pods updated by a canary, default 1
	SingleReplica  string   `json:"single_replica"`  // warn | deny
	OverrideGroups []string `json:"override_groups"`
	SoakSeconds    int64    `json:"soak_seconds"`
	// Container is the product container's name (the --container flag).
	Container string `json:"container"`
}

// Summary is the part of a StatefulSet the rules look at.
type Summary struct {
	Replicas int32 `json:"replicas"`
	// Partition is spec.updateStrategy.rollingUpdate.partition; 0 when absent.
	Partition    int32             `json:"partition"`
	HasPartition bool              `json:"has_partition"`
	Image        Image             `json:"image"`
	Annotations  map[string]string `json:"annotations"`
	// CurrentRevision and UpdateRevision come from status (only meaningful on Old).
	// UpdateRevision is empty while status.observedGeneration is behind the spec: the
	// revision status names then belongs to an earlier change and proves nothing.
	CurrentRevision string `json:"current_revision"`
	UpdateRevision  string `json:"update_revision"`
}

// Image is a parsed container image reference.
type Image struct {
	Ref        string  `json:"ref"`
	Repository string  `json:"repository"`
	Tag        string  `json:"tag"`
	Digest     string  `json:"digest"`
	Version    Version `json:"version"`
}

// Version is the PingDirectory product version read from a tag.
type Version struct {
	// Known is false for tags with no readable version (latest, edge, 2602...).
	Known bool    `json:"known"`
	Parts []int64 `json:"parts"` // four numbers, e.g. [9,1,0,0]
	Text  string  `json:"text"`  // "9.1.0.0", or the tag when not Known
}

type Change struct {
	// VersionChanged is true when the product image reference (tag or digest) differs,
	// including sidecars that run the same image repository.
	VersionChanged bool `json:"version_changed"`
	// ConfigPaths lists every other changed field under spec.template and spec.replicas,
	// as readable paths, sorted; chart-only labels and ignored keys are left out.
	ConfigPaths []string `json:"config_paths"`
	// VersionOrder compares New's version with the stable version: -1 lower, 0 equal,
	// 1 higher; null when either version is not readable.
	VersionOrder *int `json:"version_order"`
	// RevertsCanary is true when an open canary's image is set back to the stable image.
	RevertsCanary bool `json:"reverts_canary"`
}

type Canary struct {
	// Open: the live object has partition > 0 and current revision != update revision.
	Open bool `json:"open"`
	// StableImage is the image the pods below the partition run (from the canary record,
	// else from a pod on the current revision, else Old's image).
	StableImage Image `json:"stable_image"`
	// Record is the pdguard.io/canary annotation, when pdguard opened the canary.
	Record *CanaryRecord `json:"record"`
}

type CanaryRecord struct {
	FromImage   string `json:"from_image"`
	ToImage     string `json:"to_image"`
	FromVersion string `json:"from_version"`
	ToVersion   string `json:"to_version"`
	Started     string `json:"started"`
	RequestedBy string `json:"requested_by"`
}

// Pod is what admission knows about one pod of the StatefulSet.
type Pod struct {
	Name        string `json:"name"`
	Ordinal     int32  `json:"ordinal"`
	Revision    string `json:"revision"` // controller-revision-hash label
	Ready       bool   `json:"ready"`
	ReadySecs   int64  `json:"ready_seconds"` // seconds since Ready turned True; 0 when not Ready
	ContainerID string `json:"container_id"`  // product container's current ID
	Restarts    int32  `json:"restarts"`
	// Verdict is the pdguard.io/replace-profile annotation; nil when absent or unreadable.
	Verdict *PodVerdict `json:"verdict"`
	// VerdictError explains why an annotation present on the pod could not be read, or
	// why its verdict cannot be trusted.
	VerdictError string `json:"verdict_error"`
	// The facts below come from the rollout model (internal/rollout), which the evidence
	// controller reads too, so admission and the controller agree on them.
	// OnUpdateRevision: the pod runs the update revision the controller has published.
	OnUpdateRevision bool `json:"on_update_revision"`
	// Soaked: Ready for at least settings.soak_seconds.
	Soaked bool `json:"soaked"`
	// Evidence classifies the verdict against the running container: none, unreadable,
	// untrusted (not issued by pdguard), stale-revision, stale-container or current.
	Evidence string `json:"evidence"`
	// Proven: on the update revision, soaked, with a current Succeeded verdict that
	// pdguard issued.
	Proven bool `json:"proven"`
}

type PodVerdict struct {
	Verdict     string `json:"verdict"`
	Revision    string `json:"revision"`
	ContainerID string `json:"container_id"`
	Reason      string `json:"reason"`
	ObservedAt  string `json:"observed_at"`
}

// AnnotationKeys are the keys of internal/rollout, as every Input carries them.
func AnnotationKeys() Keys {
	return Keys{
		Enforcement:    rollout.EnforcementAnnotation,
		OverrideReason: rollout.OverrideReasonAnnotation,
		OverrideUsed:   rollout.OverrideUsedAnnotation,
		Canary:         rollout.CanaryAnnotation,
		ReplaceProfile: rollout.ReplaceProfileAnnotation,
	}
}
