package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/rollout/imageref"
)

// State is the rollout of one StatefulSet as its live object and its pods show it. The
// policy input, the evidence controller, `report` and the audit records are all built
// from it, so each fact below is worked out here and nowhere else.
type State struct {
	Replicas     int32
	Partition    int32
	HasPartition bool
	// CanaryOpen: see CanaryOpen.
	CanaryOpen bool
	// Active: some pods run, or will run, a revision the others do not. Wider than
	// CanaryOpen: after the last promotion (partition 0) the remaining pods still roll.
	Active          bool
	CurrentRevision string
	// UpdateRevision is "" while the StatefulSet controller has not observed the latest
	// spec: the revision its status names then belongs to an earlier change.
	UpdateRevision string
	// Image is the product container's image in the pod template.
	Image string
	// StableImage is what the pods below the partition run (see stableImage); it differs
	// from Image only while a canary is open.
	StableImage string
	// Record is the canary record of the rollout in progress, nil when there is none.
	Record *CanaryRecord
	// Pods are the StatefulSet's own pods, by ordinal.
	Pods []PodState
}

// PodState is what a rollout needs to know about one pod.
type PodState struct {
	Pod     *corev1.Pod
	Name    string
	Ordinal int32
	// Revision is the pod's controller-revision-hash label.
	Revision         string
	OnUpdateRevision bool
	// OnStableRevision: the pod runs the current revision while the update revision is
	// another one, as the pods below an open canary's partition do. It needs no verdict.
	OnStableRevision bool
	Terminating      bool
	// Ready is true only for a Ready pod that is not being deleted.
	Ready    bool
	ReadyFor time.Duration
	// Container is the product container's status; HasContainer is false until the
	// kubelet reports one.
	Container    ContainerState
	HasContainer bool
	Image        string
	// Verdict is the pdguard.io/replace-profile annotation; VerdictErr says why one that is
	// present cannot be read or cannot be trusted.
	Verdict    *Verdict
	VerdictErr error
	// Evidence is what the verdict says about the container the pod runs now.
	Evidence Evidence
	// Soaked: Ready for at least the soak time.
	Soaked bool
	// Proven: on the update revision, soaked, with a current Succeeded verdict that
	// pdguard issued. Only a proven pod lets the partition go lower.
	Proven bool
}

// Evidence classifies a pod's verdict against the container it runs now.
type Evidence string

const (
	// EvidenceNone: the pod has no verdict.
	EvidenceNone Evidence = "none"
	// EvidenceUnreadable: the annotation is not a verdict.
	EvidenceUnreadable Evidence = "unreadable"
	// EvidenceUntrusted: the verdict was not issued by pdguard for this pod.
	EvidenceUntrusted Evidence = "untrusted"
	// EvidenceStaleRevision: the verdict is about another revision than the pod's.
	EvidenceStaleRevision Evidence = "stale-revision"
	// EvidenceStaleContainer: the verdict is about an earlier container of the pod.
	EvidenceStaleContainer Evidence = "stale-container"
	// EvidenceCurrent: the verdict is about the container the pod runs now.
	EvidenceCurrent Evidence = "current"
)

// Stale reports whether the verdict is about something the pod no longer runs.
func (e Evidence) Stale() bool {
	return e == EvidenceStaleRevision || e == EvidenceStaleContainer
}

// ObserveOptions say how to read a rollout.
type ObserveOptions struct {
	// Container is the product container's name.
	Container string
	// Soak is how long a canary must stay Ready before it counts as proven.
	Soak time.Duration
	Now  time.Time
	// Trust checks that a verdict was issued by pdguard for this pod; nil trusts every
	// verdict (offline checks without the key).
	Trust VerdictTrust
}

// VerdictTrust returns an error that says why a verdict on the pod is not pdguard's.
type VerdictTrust func(pod *corev1.Pod, v *Verdict) error

// Observe reads the rollout of sts from its live object and pods. Pods that the
// StatefulSet does not own, or whose names carry no ordinal, are left out.
func Observe(sts *appsv1.StatefulSet, pods []corev1.Pod, opts ObserveOptions) *State {
	partition, has := Partition(sts)
	image, _ := ContainerImage(&sts.Spec.Template.Spec, opts.Container)
	s := &State{
		Replicas:        Replicas(sts),
		Partition:       partition,
		HasPartition:    has,
		CanaryOpen:      CanaryOpen(sts),
		CurrentRevision: sts.Status.CurrentRevision,
		UpdateRevision:  PublishedUpdateRevision(sts),
		Image:           image,
		Record:          LiveCanaryRecord(sts, opts.Container),
	}
	s.Active = s.CanaryOpen || (sts.Status.UpdateRevision != "" && sts.Status.CurrentRevision != sts.Status.UpdateRevision)
	for i := range pods {
		if p, ok := observePod(sts, s.UpdateRevision, &pods[i], opts); ok {
			s.Pods = append(s.Pods, p)
		}
	}
	slices.SortFunc(s.Pods, func(a, b PodState) int { return int(a.Ordinal - b.Ordinal) })
	s.StableImage = s.stableImage()
	return s
}

// PublishedUpdateRevision is status.updateRevision once the StatefulSet controller has
// observed the latest spec, else "".
func PublishedUpdateRevision(sts *appsv1.StatefulSet) string {
	if sts.Status.ObservedGeneration < sts.Generation {
		return ""
	}
	return sts.Status.UpdateRevision
}

func observePod(sts *appsv1.StatefulSet, updateRevision string, pod *corev1.Pod, opts ObserveOptions) (PodState, bool) {
	if !OwnedBy(sts, pod) {
		return PodState{}, false
	}
	ordinal, ok := PodOrdinal(sts.Name, pod)
	if !ok {
		return PodState{}, false
	}
	p := PodState{
		Pod: pod, Name: pod.Name, Ordinal: ordinal,
		Revision:    pod.Labels[RevisionLabel],
		Terminating: pod.DeletionTimestamp != nil,
	}
	p.OnUpdateRevision = updateRevision != "" && p.Revision == updateRevision
	p.OnStableRevision = !p.OnUpdateRevision && p.Revision != "" && p.Revision == sts.Status.CurrentRevision
	if since, ready := ReadySince(pod); ready && !p.Terminating {
		p.Ready = true
		p.ReadyFor = max(0, opts.Now.Sub(since))
	}
	p.Soaked = p.Ready && p.ReadyFor >= opts.Soak
	p.Container, p.HasContainer = Container(pod, opts.Container)
	p.Image, _ = ContainerImage(&pod.Spec, opts.Container)
	p.Verdict, p.VerdictErr = ReadVerdict(pod)
	if p.VerdictErr == nil && p.Verdict != nil && opts.Trust != nil {
		if err := opts.Trust(pod, p.Verdict); err != nil {
			p.VerdictErr = err
			p.Evidence = EvidenceUntrusted
		}
	}
	if p.Evidence == "" {
		p.Evidence = evidenceOf(p)
	}
	p.prove()
	return p, true
}

// Record takes a verdict pdguard has just issued for the pod's running container.
func (p *PodState) Record(v Verdict) {
	p.Verdict, p.VerdictErr = &v, nil
	p.Evidence = evidenceOf(*p)
	p.prove()
}

func (p *PodState) prove() {
	p.Proven = p.OnUpdateRevision && p.Soaked && p.Evidence == EvidenceCurrent && p.Verdict.Verdict == VerdictSucceeded
}

func evidenceOf(p PodState) Evidence {
	switch {
	case p.VerdictErr != nil:
		return EvidenceUnreadable
	case p.Verdict == nil:
		return EvidenceNone
	case p.Verdict.Revision != p.Revision:
		return EvidenceStaleRevision
	case p.Container.ID == "" || p.Verdict.ContainerID != p.Container.ID:
		return EvidenceStaleContainer
	}
	return EvidenceCurrent
}

// stableImage is the image the pods below the partition run while a canary is open:
// what pdguard recorded when it opened the canary, else what a pod on the current
// revision runs, else the template. With no canary open the template is the stable
// image, also while the last pods of a promoted rollout still restart: they migrate to
// it, so nothing lower may follow.
func (s *State) stableImage() string {
	if !s.CanaryOpen {
		return s.Image
	}
	if s.Record != nil && s.Record.FromImage != "" {
		if _, err := imageref.Parse(s.Record.FromImage); err == nil {
			return s.Record.FromImage
		}
	}
	if image := s.currentRevisionImage(); image != "" {
		return image
	}
	return s.Image
}

func (s *State) currentRevisionImage() string {
	for _, p := range s.Pods {
		if p.Revision == s.CurrentRevision && p.Image != "" {
			if _, err := imageref.Parse(p.Image); err == nil {
				return p.Image
			}
		}
	}
	return ""
}

// MigrationFrom is the product version the pods of the update revision migrate from,
// which their logs must show: the canary record's, else the version a pod on the
// current revision runs; "" when none is known.
func (s *State) MigrationFrom() string {
	if s.Record != nil && s.Record.FromVersion != "" {
		return s.Record.FromVersion
	}
	return VersionOf(s.currentRevisionImage())
}

// VersionOf is the product version an image's tag names, "" when it names none.
func VersionOf(image string) string {
	ref, err := imageref.Parse(image)
	if err != nil || !ref.Version().Known {
		return ""
	}
	return ref.Version().Text
}

// CanaryOrdinals are the ordinals at or above the partition: the pods that run, or are
// about to run, the update revision.
func (s *State) CanaryOrdinals() []int32 {
	var out []int32
	for i := s.Partition; i < s.Replicas; i++ {
		out = append(out, i)
	}
	return out
}

// Pod returns the pod with the given ordinal.
func (s *State) Pod(ordinal int32) (*PodState, bool) {
	for i := range s.Pods {
		if s.Pods[i].Ordinal == ordinal {
			return &s.Pods[i], true
		}
	}
	return nil, false
}

// ProvenFrom reports whether every pod from ordinal lo up to the replicas is proven.
func (s *State) ProvenFrom(lo int32) bool {
	for i := lo; i < s.Replicas; i++ {
		p, ok := s.Pod(i)
		if !ok || !p.Proven {
			return false
		}
	}
	return true
}

// Proof is what one proven pod's promotion rests on, for audit records.
type Proof struct {
	Pod         string    `json:"pod"`
	ContainerID string    `json:"containerID"`
	Revision    string    `json:"revision"`
	IssuedAt    time.Time `json:"issuedAt"`
}

// ProofFrom lists the verdicts of the proven pods from ordinal lo up.
func (s *State) ProofFrom(lo int32) []Proof {
	var out []Proof
	for _, p := range s.Pods {
		if p.Ordinal >= lo && p.Proven {
			out = append(out, Proof{Pod: p.Name, ContainerID: p.Verdict.ContainerID, Revision: p.Verdict.Revision, IssuedAt: p.Verdict.ObservedAt})
		}
	}
	return out
}

// AnnotationWriter names the field manager that last set an annotation on the object,
// with the operation and time, from its managedFields; "an unknown writer" when none did.
func AnnotationWriter(obj metav1.Object, key string) string {
	field := `"f:` + key + `"`
	writer := "an unknown writer"
	var latest time.Time
	for _, mf := range obj.GetManagedFields() {
		if mf.FieldsV1 == nil || !strings.Contains(string(mf.FieldsV1.Raw), field) {
			continue
		}
		at := time.Time{}
		if mf.Time != nil {
			at = mf.Time.Time
		}
		if writer == "an unknown writer" || at.After(latest) {
			latest = at
			writer = fmt.Sprintf("field manager %q (%s at %s)", mf.Manager, mf.Operation, at.UTC().Format(time.RFC3339))
		}
	}
	return writer
}
