package policy

import (
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/rollout/imageref"
	"github.com/pdguard/pdguard/internal/rollout/specdiff"
)

// Config is the server's settings for every guarded StatefulSet.
type Config struct {
	CanaryReplicas int32
	SingleReplica  string // warn | deny
	Enforcement    string // enforce | warn | dryrun
	OverrideGroups []string
	Soak           time.Duration
	// Diff names the product container and the template keys that are not config.
	Diff specdiff.Options
	// Trust checks that a pod's verdict was issued by pdguard; nil trusts every verdict.
	Trust rollout.VerdictTrust
}

// DefaultConfig is the documented flag defaults.
func DefaultConfig() Config {
	return Config{
		CanaryReplicas: 1,
		SingleReplica:  "warn",
		Enforcement:    "enforce",
		OverrideGroups: []string{"system:masters"},
		Soak:           30 * time.Second,
		Diff:           specdiff.DefaultOptions(),
	}
}

// Validate checks settings once at start-up so a typo fails the server, not a request.
func (o Config) Validate() error {
	var errs []error
	if o.CanaryReplicas < 1 {
		errs = append(errs, fmt.Errorf("--canary-replicas must be at least 1, got %d", o.CanaryReplicas))
	}
	if o.SingleReplica != "warn" && o.SingleReplica != "deny" {
		errs = append(errs, fmt.Errorf("--single-replica must be warn or deny, got %q", o.SingleReplica))
	}
	switch o.Enforcement {
	case "enforce", "warn", "dryrun":
	default:
		errs = append(errs, fmt.Errorf("--enforcement must be enforce, warn or dryrun, got %q", o.Enforcement))
	}
	if o.Soak < 0 {
		errs = append(errs, fmt.Errorf("--soak must not be negative, got %s", o.Soak))
	}
	if o.Diff.Container == "" {
		errs = append(errs, errors.New("--container must name the product container"))
	}
	return errors.Join(errs...)
}

// Request is one admission of a guarded StatefulSet.
type Request struct {
	Operation string // CREATE or UPDATE
	// Old is the live object (nil on CREATE); New is the requested object.
	Old, New *appsv1.StatefulSet
	// Pods of the StatefulSet, as the cache holds them; others are ignored.
	Pods []corev1.Pod
	User authenticationv1.UserInfo
}

// BuildInput gathers every fact the rules read from one admission request. It parses,
// compares and counts; it decides nothing.
func BuildInput(phase string, req *Request, cfg Config, now time.Time) (*Input, error) {
	if req.New == nil {
		return nil, fmt.Errorf("the request carries no StatefulSet")
	}
	in := &Input{
		Phase:     phase,
		Operation: req.Operation,
		Namespace: req.New.Namespace,
		Name:      req.New.Name,
		User:      User{Username: req.User.Username, Groups: req.User.Groups},
		Settings: Settings{
			Enforcement:    cfg.Enforcement,
			CanaryReplicas: cfg.CanaryReplicas,
			SingleReplica:  cfg.SingleReplica,
			OverrideGroups: cfg.OverrideGroups,
			SoakSeconds:    int64(cfg.Soak / time.Second),
			Container:      containerName(cfg),
		},
		Pods: []Pod{},
		Keys: AnnotationKeys(),
	}
	if in.User.Groups == nil {
		in.User.Groups = []string{}
	}
	newSummary, newRef, err := summarize(cfg, req.New)
	if err != nil {
		return nil, err
	}
	in.New = newSummary
	in.Change.ConfigPaths = []string{}
	if req.Old == nil {
		return in, nil
	}

	oldSummary, _, err := summarize(cfg, req.Old)
	if err != nil {
		return nil, err
	}
	in.Old = &oldSummary
	state := rollout.Observe(req.Old, req.Pods, rollout.ObserveOptions{
		Container: cfg.Diff.Container, Soak: cfg.Soak, Now: now, Trust: cfg.Trust,
	})
	in.Canary.Open = state.CanaryOpen
	in.Change.VersionChanged = specdiff.VersionChanged(req.Old, req.New, cfg.Diff)
	// Only the bundle rule (a version change) and the re-pin rule (an open canary) read
	// the paths: skip the diff on the common "nothing guarded is happening" path.
	if in.Change.VersionChanged || in.Canary.Open {
		in.Change.ConfigPaths = specdiff.ConfigChanges(req.Old, req.New, cfg.Diff)
	}
	if in.Change.ConfigPaths == nil {
		in.Change.ConfigPaths = []string{}
	}

	if rec := state.Record; rec != nil {
		in.Canary.Record = &CanaryRecord{
			FromImage: rec.FromImage, ToImage: rec.ToImage,
			FromVersion: rec.FromVersion, ToVersion: rec.ToVersion,
			Started: rec.Started.UTC().Format(time.RFC3339), RequestedBy: rec.RequestedBy,
		}
	}
	// Observe only reports an image that parses.
	stableRef, err := imageref.Parse(state.StableImage)
	if err != nil {
		return nil, fmt.Errorf("statefulset %s/%s: stable image: %w", req.Old.Namespace, req.Old.Name, err)
	}
	in.Canary.StableImage = imageOf(stableRef)

	if in.Change.VersionChanged {
		in.Change.RevertsCanary = in.Canary.Open && newRef.String() == stableRef.String()
		if order, ok := imageref.Compare(newRef.Version(), stableRef.Version()); ok {
			in.Change.VersionOrder = &order
		}
	}

	for i := range state.Pods {
		in.Pods = append(in.Pods, podFacts(&state.Pods[i]))
	}
	if state.CanaryOpen && oldSummary.Partition > 0 && in.New.Partition < oldSummary.Partition {
		in.Proof = state.ProofFrom(oldSummary.Partition)
	}
	return in, nil
}

// containerName is the product container the rules name in their messages.
func containerName(cfg Config) string {
	if cfg.Diff.Container == "" {
		return specdiff.DefaultContainer
	}
	return cfg.Diff.Container
}

func summarize(cfg Config, sts *appsv1.StatefulSet) (Summary, imageref.Ref, error) {
	image, ok := rollout.ContainerImage(&sts.Spec.Template.Spec, cfg.Diff.Container)
	if !ok {
		return Summary{}, imageref.Ref{}, &NotGuardedError{Reason: fmt.Sprintf("statefulset %s/%s has no container named %q", sts.Namespace, sts.Name, cfg.Diff.Container)}
	}
	if n := productContainers(&sts.Spec.Template.Spec, cfg.Diff.Container); n > 1 {
		return Summary{}, imageref.Ref{}, &InputError{fmt.Errorf("statefulset %s/%s has %d containers named %q: container names must be unique, so pdguard cannot tell which one runs the product", sts.Namespace, sts.Name, n, cfg.Diff.Container)}
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		return Summary{}, imageref.Ref{}, &InputError{fmt.Errorf("statefulset %s/%s: container %q: %w; set pingdirectory.image.tag to a valid tag", sts.Namespace, sts.Name, cfg.Diff.Container, err)}
	}
	partition, has := rollout.Partition(sts)
	annotations := sts.Annotations
	if annotations == nil {
		annotations = map[string]string{}
	}
	return Summary{
		Replicas:        rollout.Replicas(sts),
		Partition:       partition,
		HasPartition:    has,
		Image:           imageOf(ref),
		Annotations:     annotations,
		CurrentRevision: sts.Status.CurrentRevision,
		UpdateRevision:  rollout.PublishedUpdateRevision(sts),
	}, ref, nil
}

func productContainers(spec *corev1.PodSpec, name string) int {
	n := 0
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			n++
		}
	}
	return n
}

func podFacts(ps *rollout.PodState) Pod {
	p := Pod{
		Name: ps.Name, Ordinal: ps.Ordinal, Revision: ps.Revision,
		Ready: ps.Ready, ReadySecs: int64(ps.ReadyFor / time.Second),
		ContainerID: ps.Container.ID, Restarts: ps.Container.Restarts,
		OnUpdateRevision: ps.OnUpdateRevision, Soaked: ps.Soaked,
		Evidence: string(ps.Evidence), Proven: ps.Proven,
	}
	if ps.VerdictErr != nil {
		p.VerdictError = ps.VerdictErr.Error()
	}
	if v := ps.Verdict; v != nil && ps.Evidence != rollout.EvidenceUnreadable {
		p.Verdict = &PodVerdict{
			Verdict: v.Verdict, Revision: v.Revision, ContainerID: v.ContainerID,
			Reason: v.Reason, ObservedAt: v.ObservedAt.UTC().Format(time.RFC3339),
		}
	}
	return p
}

func imageOf(ref imageref.Ref) Image {
	v := ref.Version()
	parts := []int64{}
	if v.Known {
		parts = v.Parts[:]
	}
	return Image{
		Ref: ref.String(), Repository: ref.Repository, Tag: ref.Tag, Digest: ref.Digest,
		Version: Version{Known: v.Known, Parts: parts, Text: v.Text},
	}
}

// NotGuardedError means the object matched the selector but pdguard cannot guard it
// (no product container): the request is allowed with a warning that says so.
type NotGuardedError struct{ Reason string }

func (e *NotGuardedError) Error() string { return e.Reason }
