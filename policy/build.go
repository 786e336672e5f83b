package policy

import (
	"errors"
	"fmt"
	"slices"
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

	oldSummary, oldRef, err := summarize(cfg, req.Old)
	if err != nil {
		return nil, err
	}
	in.Old = &oldSummary
	in.Canary.Open = rollout.CanaryOpen(req.Old)
	in.Change.VersionChanged = specdiff.VersionChanged(req.Old, req.New, cfg.Diff)
	// Only the bundle rule (a version change) and the re-pin rule (an open canary) read
	// the paths: skip the diff on the common "nothing guarded is happening" path.
	if in.Change.VersionChanged || in.Canary.Open {
		in.Change.ConfigPaths = specdiff.ConfigChanges(req.Old, req.New, cfg.Diff)
	}
	if in.Change.ConfigPaths == nil {
		in.Change.ConfigPaths = []string{}
	}

	rec := rollout.LiveCanaryRecord(req.Old, cfg.Diff.Container)
	if rec != nil {
		in.Canary.Record = &CanaryRecord{
			FromImage: rec.FromImage, ToImage: rec.ToImage,
			FromVersion: rec.FromVersion, ToVersion: rec.ToVersion,
			Started: rec.Started.UTC().Format(time.RFC3339), RequestedBy: rec.RequestedBy,
		}
	}
	stableRef := stableImage(cfg, req, in.Canary.Open, rec, oldRef)
	in.Canary.StableImage = imageOf(stableRef)

	if in.Change.VersionChanged {
		in.Change.RevertsCanary = in.Canary.Open && newRef.String() == stableRef.String()
		if order, ok := imageref.Compare(newRef.Version(), stableRef.Version()); ok {
			in.Change.VersionOrder = &order
		}
	}

	for i := range req.Pods {
		if p, ok := podFacts(cfg, req.Old, &req.Pods[i], now); ok {
			in.Pods = append(in.Pods, p)
		}
	}
	slices.SortFunc(in.Pods, func(a, b Pod) int { return int(a.Ordinal - b.Ordinal) })
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
	ref, err := imageref.Parse(image)
	if err != nil {
		return Summary{}, imageref.Ref{}, fmt.Errorf("statefulset %s/%s: container %q: %w", sts.Namespace, sts.Name, cfg.Diff.Container, err)
	}
	partition, has := rollout.Partition(sts)
	updateRevision := sts.Status.UpdateRevision
	if sts.Status.ObservedGeneration < sts.Generation {
		updateRevision = ""
	}
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
		UpdateRevision:  updateRevision,
	}, ref, nil
}

// stableImage is the image the pods below the partition run: what pdguard recorded when
// it opened the canary, else what a pod on the current revision runs, else the live spec.
func stableImage(cfg Config, req *Request, open bool, rec *rollout.CanaryRecord, oldRef imageref.Ref) imageref.Ref {
	if !open {
		return oldRef
	}
	if rec != nil && rec.FromImage != "" {
		if ref, err := imageref.Parse(rec.FromImage); err == nil {
			return ref
		}
	}
	for i := range req.Pods {
		pod := &req.Pods[i]
		if !rollout.OwnedBy(req.Old, pod) || pod.Labels[rollout.RevisionLabel] != req.Old.Status.CurrentRevision {
			continue
		}
		if image, ok := rollout.ContainerImage(&pod.Spec, cfg.Diff.Container); ok {
			if ref, err := imageref.Parse(image); err == nil {
				return ref
			}
		}
	}
	return oldRef
}

func podFacts(cfg Config, sts *appsv1.StatefulSet, pod *corev1.Pod, now time.Time) (Pod, bool) {
	if !rollout.OwnedBy(sts, pod) {
		return Pod{}, false
	}
	ordinal, ok := rollout.PodOrdinal(sts.Name, pod)
	if !ok {
		return Pod{}, false
	}
	p := Pod{Name: pod.Name, Ordinal: ordinal, Revision: pod.Labels[rollout.RevisionLabel]}
	if since, ready := rollout.ReadySince(pod); ready && pod.DeletionTimestamp == nil {
		p.Ready = true
		p.ReadySecs = max(0, int64(now.Sub(since)/time.Second))
	}
	if cs, ok := rollout.Container(pod, cfg.Diff.Container); ok {
		p.ContainerID = cs.ID
		p.Restarts = cs.Restarts
	}
	v, err := rollout.ReadVerdict(pod)
	switch {
	case err != nil:
		p.VerdictError = err.Error()
	case v != nil:
		p.Verdict = &PodVerdict{
			Verdict: v.Verdict, Revision: v.Revision, ContainerID: v.ContainerID,
			Reason: v.Reason, ObservedAt: v.ObservedAt.UTC().Format(time.RFC3339),
		}
	}
	return p, true
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
