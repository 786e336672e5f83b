// Package guard turns an admission request for a guarded StatefulSet into the policy's
// input document, asks the policy for a decision, and turns the decision into a JSON
// patch and a response. It is the one code path behind the webhook and `webhook check`.
package guard

import (
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/rollout/imageref"
	"github.com/pdguard/pdguard/internal/rollout/specdiff"
	"github.com/pdguard/pdguard/policy"
)

// Request is one admission of a guarded StatefulSet.
type Request struct {
	Operation string // CREATE or UPDATE
	// Old is the live object (nil on CREATE); New is the requested object.
	Old, New *appsv1.StatefulSet
	// Pods of the StatefulSet, as the cache holds them; others are ignored.
	Pods []corev1.Pod
	User authenticationv1.UserInfo
}

// buildInput gathers every fact the rules read. It parses, compares and counts; it
// decides nothing.
func (g *Guard) buildInput(phase string, req *Request) (*policy.Input, error) {
	if req.New == nil {
		return nil, fmt.Errorf("the request carries no StatefulSet")
	}
	in := &policy.Input{
		Phase:     phase,
		Operation: req.Operation,
		Namespace: req.New.Namespace,
		Name:      req.New.Name,
		User:      policy.User{Username: req.User.Username, Groups: req.User.Groups},
		Settings: policy.Settings{
			Enforcement:    g.opts.Enforcement,
			CanaryReplicas: g.opts.CanaryReplicas,
			SingleReplica:  g.opts.SingleReplica,
			OverrideGroups: g.opts.OverrideGroups,
			SoakSeconds:    int64(g.opts.Soak / time.Second),
		},
		Pods: []policy.Pod{},
	}
	if in.User.Groups == nil {
		in.User.Groups = []string{}
	}
	newSummary, newRef, err := g.summarize(req.New)
	if err != nil {
		return nil, err
	}
	in.New = newSummary
	in.Change.ConfigPaths = []string{}
	if req.Old == nil {
		return in, nil
	}

	oldSummary, oldRef, err := g.summarize(req.Old)
	if err != nil {
		return nil, err
	}
	in.Old = &oldSummary
	in.Canary.Open = rollout.CanaryOpen(req.Old)
	in.Change.VersionChanged = specdiff.VersionChanged(req.Old, req.New, g.opts.Diff)
	// Only the bundle rule (a version change) and the re-pin rule (an open canary) read
	// the paths: skip the diff on the common "nothing guarded is happening" path.
	if in.Change.VersionChanged || in.Canary.Open {
		in.Change.ConfigPaths = specdiff.ConfigChanges(req.Old, req.New, g.opts.Diff)
	}
	if in.Change.ConfigPaths == nil {
		in.Change.ConfigPaths = []string{}
	}

	rec := rollout.LiveCanaryRecord(req.Old, g.opts.Diff.Container)
	if rec != nil {
		in.Canary.Record = &policy.CanaryRecord{
			FromImage: rec.FromImage, ToImage: rec.ToImage,
			FromVersion: rec.FromVersion, ToVersion: rec.ToVersion,
			Started: rec.Started.UTC().Format(time.RFC3339), RequestedBy: rec.RequestedBy,
		}
	}
	stableRef := g.stableImage(req, in.Canary.Open, rec, oldRef)
	in.Canary.StableImage = imageOf(stableRef)

	if in.Change.VersionChanged {
		in.Change.RevertsCanary = in.Canary.Open && newRef.String() == stableRef.String()
		if order, ok := imageref.Compare(newRef.Version(), stableRef.Version()); ok {
			in.Change.VersionOrder = &order
		}
	}

	now := g.now()
	for i := range req.Pods {
		if p, ok := g.podFacts(req.Old, &req.Pods[i], now); ok {
			in.Pods = append(in.Pods, p)
		}
	}
	slices.SortFunc(in.Pods, func(a, b policy.Pod) int { return int(a.Ordinal - b.Ordinal) })
	return in, nil
}

func (g *Guard) summarize(sts *appsv1.StatefulSet) (policy.Summary, imageref.Ref, error) {
	image, ok := rollout.ContainerImage(&sts.Spec.Template.Spec, g.opts.Diff.Container)
	if !ok {
		return policy.Summary{}, imageref.Ref{}, &NotGuardedError{Reason: fmt.Sprintf("statefulset %s/%s has no container named %q", sts.Namespace, sts.Name, g.opts.Diff.Container)}
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		return policy.Summary{}, imageref.Ref{}, fmt.Errorf("statefulset %s/%s: container %q: %w", sts.Namespace, sts.Name, g.opts.Diff.Container, err)
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
	return policy.Summary{
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
func (g *Guard) stableImage(req *Request, open bool, rec *rollout.CanaryRecord, oldRef imageref.Ref) imageref.Ref {
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
		if image, ok := rollout.ContainerImage(&pod.Spec, g.opts.Diff.Container); ok {
			if ref, err := imageref.Parse(image); err == nil {
				return ref
			}
		}
	}
	return oldRef
}

func (g *Guard) podFacts(sts *appsv1.StatefulSet, pod *corev1.Pod, now time.Time) (policy.Pod, bool) {
	if !rollout.OwnedBy(sts, pod) {
		return policy.Pod{}, false
	}
	ordinal, ok := rollout.PodOrdinal(sts.Name, pod)
	if !ok {
		return policy.Pod{}, false
	}
	p := policy.Pod{Name: pod.Name, Ordinal: ordinal, Revision: pod.Labels[rollout.RevisionLabel]}
	if since, ready := rollout.ReadySince(pod); ready && pod.DeletionTimestamp == nil {
		p.Ready = true
		p.ReadySecs = max(0, int64(now.Sub(since)/time.Second))
	}
	if cs, ok := rollout.Container(pod, g.opts.Diff.Container); ok {
		p.ContainerID = cs.ID
		p.Restarts = cs.Restarts
	}
	v, err := rollout.ReadVerdict(pod)
	switch {
	case err != nil:
		p.VerdictError = err.Error()
	case v != nil:
		p.Verdict = &policy.PodVerdict{
			Verdict: v.Verdict, Revision: v.Revision, ContainerID: v.ContainerID,
			Reason: v.Reason, ObservedAt: v.ObservedAt.UTC().Format(time.RFC3339),
		}
	}
	return p, true
}

func imageOf(ref imageref.Ref) policy.Image {
	v := ref.Version()
	parts := []int64{}
	if v.Known {
		parts = v.Parts[:]
	}
	return policy.Image{
		Ref: ref.String(), Repository: ref.Repository, Tag: ref.Tag, Digest: ref.Digest,
		Version: policy.Version{Known: v.Known, Parts: parts, Text: v.Text},
	}
}

// NotGuardedError means the object matched the selector but pdguard cannot guard it
// (no product container): the request is allowed with a warning that says so.
type NotGuardedError struct{ Reason string }

func (e *NotGuardedError) Error() string { return e.Reason }
