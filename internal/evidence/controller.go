package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/pdguard/pdguard/internal/evidence/logscan"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/rollout/imageref"
)

// Options configure the controller.
type Options struct {
	Selector      labels.Selector
	Container     string
	LogLimitBytes int64
	// Recheck is how soon a canary whose verdict is not final is read again.
	Recheck time.Duration
	// AutoPromote promotes every guarded StatefulSet; without it only those annotated
	// pdguard.io/auto-promote: "true".
	AutoPromote    bool
	Soak           time.Duration
	CanaryReplicas int32
}

// LogReader returns the current container's log, at most limit bytes.
type LogReader interface {
	ReadLog(ctx context.Context, namespace, pod, container string, limit int64) (io.ReadCloser, error)
}

// EventRecorder is client-go's events.k8s.io recorder.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// Reconciler judges the canary pods of one StatefulSet per call.
type Reconciler struct {
	Client client.Client
	Logs   LogReader
	Events EventRecorder
	Opts   Options
	Now    func() time.Time
}

// SetupWithManager wires the controller: StatefulSets matching the selector, and their
// pods, so a pod turning Ready or restarting triggers a new judgement at once.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("evidence controller: %w", err)
	}
	r := &Reconciler{
		Client: mgr.GetClient(),
		Logs:   PodLogs{Client: cs},
		Events: mgr.GetEventRecorder("pdguard-evidence"),
		Opts:   opts,
		Now:    time.Now,
	}
	guarded := predicate.NewPredicateFuncs(func(o client.Object) bool { return opts.Selector.Matches(labels.Set(o.GetLabels())) })
	return ctrl.NewControllerManagedBy(mgr).
		Named("canary-evidence").
		For(&appsv1.StatefulSet{}, builder.WithPredicates(guarded)).
		Owns(&corev1.Pod{}, builder.WithPredicates(guarded)).
		Complete(r)
}

// PodLogs reads logs through the pods/log API.
type PodLogs struct{ Client kubernetes.Interface }

func (p PodLogs) ReadLog(ctx context.Context, namespace, pod, container string, limit int64) (io.ReadCloser, error) {
	return p.Client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, LimitBytes: &limit}).Stream(ctx)
}

// Event reasons on the StatefulSet.
const (
	ReasonVerdict           = "ReplaceProfileVerdict"
	ReasonPromoted          = "CanaryPromoted"
	ReasonPromotionHalted   = "PromotionHalted"
	ReasonBrokenPodReplaced = "BrokenPodReplaced"
)

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logr.FromContextOrDiscard(ctx).WithValues("namespace", req.Namespace, "name", req.Name)
	var sts appsv1.StatefulSet
	if err := r.Client.Get(ctx, req.NamespacedName, &sts); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	updateRevision := sts.Status.UpdateRevision
	if updateRevision == "" || sts.Status.ObservedGeneration < sts.Generation {
		// The StatefulSet controller has not published the new revision yet; its
		// status update will trigger us again.
		return ctrl.Result{}, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("statefulset selector: %w", err)
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(sts.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.replaceBrokenRollbacks(ctx, log, &sts, pods.Items); err != nil {
		return ctrl.Result{}, err
	}
	if !rolloutActive(&sts) && !r.verdictsOwed(&sts, pods.Items) {
		return ctrl.Result{}, nil
	}
	from := stableVersion(&sts, pods.Items, r.Opts.Container)

	partition, _ := rollout.Partition(&sts)
	replicas := rollout.Replicas(&sts)
	proven := map[int32]bool{}
	recheck := false
	for i := range pods.Items {
		pod := &pods.Items[i]
		ordinal, ok := rollout.PodOrdinal(sts.Name, pod)
		if !ok || !rollout.OwnedBy(&sts, pod) || pod.Labels[rollout.RevisionLabel] != updateRevision || pod.DeletionTimestamp != nil {
			continue
		}
		v, err := r.judgePod(ctx, &sts, pod, from)
		if err != nil {
			log.Error(err, "judging canary pod", "pod", pod.Name)
			recheck = true
			continue
		}
		if !Final(v.Verdict) {
			recheck = true
		}
		if v.Verdict == rollout.VerdictSucceeded {
			if since, ready := rollout.ReadySince(pod); ready && r.Now().Sub(since) >= r.Opts.Soak {
				proven[ordinal] = true
			} else {
				recheck = true
			}
		}
	}

	if r.autoPromote(&sts) && partition > 0 {
		if res, done, err := r.promote(ctx, log, &sts, partition, replicas, proven); done {
			return res, err
		}
	}
	if recheck {
		return ctrl.Result{RequeueAfter: r.Opts.Recheck}, nil
	}
	return ctrl.Result{}, nil
}

// rolloutActive: some pods run, or will run, a revision the others do not. This is wider
// than a canary being open: after the last promotion (partition 0) the remaining pods are
// still judged, so every migrated pod gets a verdict.
func rolloutActive(sts *appsv1.StatefulSet) bool {
	return rollout.CanaryOpen(sts) || (sts.Status.UpdateRevision != "" && sts.Status.CurrentRevision != sts.Status.UpdateRevision)
}

// replaceBrokenRollbacks deletes a crash-looping pod that the StatefulSet controller
// should move to the update revision but will not: it never replaces a pod that is not
// Ready, so after a failed canary's tag is reverted the canary keeps crash-looping on
// the bad version (Kubernetes documents deleting it by hand). Only pods at or above the
// partition, off the update revision, and restarting forever qualify; the controller
// recreates each on the update revision with its volume.
func (r *Reconciler) replaceBrokenRollbacks(ctx context.Context, log logr.Logger, sts *appsv1.StatefulSet, pods []corev1.Pod) error {
	partition, _ := rollout.Partition(sts)
	for i := range pods {
		pod := &pods[i]
		ordinal, ok := rollout.PodOrdinal(sts.Name, pod)
		if !ok || ordinal < partition || !rollout.OwnedBy(sts, pod) || pod.DeletionTimestamp != nil {
			continue
		}
		if pod.Labels[rollout.RevisionLabel] == sts.Status.UpdateRevision {
			continue
		}
		if _, ready := rollout.ReadySince(pod); ready {
			continue
		}
		cs, _ := rollout.Container(pod, r.Opts.Container)
		why := crashLoopReason(cs)
		if why == "" {
			continue
		}
		uid := pod.UID
		if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				continue
			}
			return fmt.Errorf("replacing crash-looping pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		log.Info("replaced a crash-looping pod left on an old revision", "pod", pod.Name, "revision", pod.Labels[rollout.RevisionLabel], "updateRevision", sts.Status.UpdateRevision)
		if r.Events != nil {
			r.Events.Eventf(sts, pod, corev1.EventTypeWarning, ReasonBrokenPodReplaced, "Replace",
				"pod %s runs revision %s, not the update revision %s, and the StatefulSet controller does not replace a pod that is not Ready (%s): deleted it so it is recreated on %s",
				pod.Name, pod.Labels[rollout.RevisionLabel], sts.Status.UpdateRevision, why, sts.Status.UpdateRevision)
		}
	}
	return nil
}

// verdictsOwed: the last pods of a version rollout are created as it completes, after
// which the rollout no longer looks active. Each pod of the rollout pdguard recorded, or
// that it started judging, still gets a final verdict for its running container.
func (r *Reconciler) verdictsOwed(sts *appsv1.StatefulSet, pods []corev1.Pod) bool {
	tracked := rollout.LiveCanaryRecord(sts, r.Opts.Container) != nil
	for i := range pods {
		pod := &pods[i]
		if pod.Labels[rollout.RevisionLabel] != sts.Status.UpdateRevision || !rollout.OwnedBy(sts, pod) {
			continue
		}
		v, _ := rollout.ReadVerdict(pod)
		cs, _ := rollout.Container(pod, r.Opts.Container)
		switch {
		case v != nil && v.Revision == sts.Status.UpdateRevision && v.ContainerID == cs.ID && Final(v.Verdict):
		case v != nil && v.Revision == sts.Status.UpdateRevision:
			return true
		case tracked:
			return true
		}
	}
	return false
}

// judgePod reads the pod's log when needed and records the verdict when it changed.
func (r *Reconciler) judgePod(ctx context.Context, sts *appsv1.StatefulSet, pod *corev1.Pod, from string) (rollout.Verdict, error) {
	cs, _ := rollout.Container(pod, r.Opts.Container)
	_, ready := rollout.ReadySince(pod)
	state := PodState{Container: cs, Ready: ready}
	prev, _ := rollout.ReadVerdict(pod)
	if prev != nil && prev.Revision == sts.Status.UpdateRevision && prev.ContainerID == cs.ID && Final(prev.Verdict) && crashLoopReason(cs) == "" {
		return *prev, nil
	}

	to := ""
	if image, ok := rollout.ContainerImage(&pod.Spec, r.Opts.Container); ok {
		if ref, err := imageref.Parse(image); err == nil && ref.Version().Known {
			to = ref.Version().Text
		}
	}
	var scan *logscan.Result
	if needsLog(state) {
		rc, err := r.Logs.ReadLog(ctx, pod.Namespace, pod.Name, r.Opts.Container, r.Opts.LogLimitBytes)
		if err != nil {
			return rollout.Verdict{}, fmt.Errorf("reading log of %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		want := logscan.Expect{From: from, To: to}
		if to == "" {
			// The canary's tag names no version (latest, edge): any migration will do.
			want.From = ""
		}
		res, err := logscan.Scan(rc, want)
		rc.Close()
		if err != nil {
			return rollout.Verdict{}, fmt.Errorf("scanning log of %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		scan = &res
	}
	verdict, reason := Judge(state, scan)
	v := rollout.Verdict{
		Verdict: verdict, Revision: sts.Status.UpdateRevision, ContainerID: cs.ID,
		From: from, To: to, ObservedAt: r.Now().UTC().Truncate(time.Second), Reason: reason,
	}
	if scan != nil {
		if scan.From != "" {
			v.From = scan.From
		}
		if scan.To != "" {
			v.To = scan.To
		}
	}
	if prev != nil && prev.Verdict == v.Verdict && prev.Revision == v.Revision && prev.ContainerID == v.ContainerID && prev.Reason == v.Reason {
		return *prev, nil
	}
	if err := r.writeVerdict(ctx, pod, v); err != nil {
		return rollout.Verdict{}, err
	}
	if prev == nil || prev.Verdict != v.Verdict || prev.ContainerID != v.ContainerID {
		eventType := corev1.EventTypeWarning
		if v.Verdict == rollout.VerdictSucceeded {
			eventType = corev1.EventTypeNormal
		}
		if r.Events != nil {
			r.Events.Eventf(sts, pod, eventType, ReasonVerdict, "Judge", "pod %s: replace-profile %s (%s -> %s): %s", pod.Name, v.Verdict, orUnknown(v.From), orUnknown(v.To), v.Reason)
			if r.autoPromote(sts) && (v.Verdict == rollout.VerdictFailed || v.Verdict == rollout.VerdictNotUpgraded) {
				stable := "the stable tag"
				if rec := rollout.LiveCanaryRecord(sts, r.Opts.Container); rec != nil {
					stable = rec.FromImage
				}
				r.Events.Eventf(sts, pod, corev1.EventTypeWarning, ReasonPromotionHalted, "Promote",
					"auto-promotion stopped at pod %s: replace-profile %s. Nothing more is promoted; set the image back to %s to roll the canary back, or fix the profile and upgrade again", pod.Name, v.Verdict, stable)
			}
		}
	}
	return v, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// writeVerdict patches only the annotation, so it never races the kubelet's status writes.
func (r *Reconciler) writeVerdict(ctx context.Context, pod *corev1.Pod, v rollout.Verdict) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{rollout.ReplaceProfileAnnotation: string(raw)}}})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing verdict on %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// stableVersion is the version the pods below the partition run, which the canary's log
// must show it migrated from; "" when no readable version is known.
func stableVersion(sts *appsv1.StatefulSet, pods []corev1.Pod, container string) string {
	if rec := rollout.LiveCanaryRecord(sts, container); rec != nil && rec.FromVersion != "" {
		return rec.FromVersion
	}
	for i := range pods {
		if pods[i].Labels[rollout.RevisionLabel] != sts.Status.CurrentRevision {
			continue
		}
		if image, ok := rollout.ContainerImage(&pods[i].Spec, container); ok {
			if ref, err := imageref.Parse(image); err == nil && ref.Version().Known {
				return ref.Version().Text
			}
		}
	}
	return ""
}

func (r *Reconciler) autoPromote(sts *appsv1.StatefulSet) bool {
	return r.Opts.AutoPromote || sts.Annotations[rollout.AutoPromoteAnnotation] == "true"
}

// promote lowers the partition by one ordinal once every pod at or above it is proven.
// The patch goes through the API server and so through pdguard's own validating gate:
// the controller has no way around the rules it serves.
func (r *Reconciler) promote(ctx context.Context, log logr.Logger, sts *appsv1.StatefulSet, partition, replicas int32, proven map[int32]bool) (ctrl.Result, bool, error) {
	var waiting []int32
	for i := partition; i < replicas; i++ {
		if !proven[i] {
			waiting = append(waiting, i)
		}
	}
	if len(waiting) > 0 {
		return ctrl.Result{}, false, nil
	}
	next := partition - 1
	patch := []byte(fmt.Sprintf(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":%d}}}}`, next))
	if err := r.Client.Patch(ctx, sts, client.RawPatch(types.MergePatchType, patch)); err != nil {
		var status apierrors.APIStatus
		if errors.As(err, &status) && apierrors.IsForbidden(err) {
			// Denied by the gate: the evidence the controller saw is not what admission
			// sees yet (cache lag) or a rule forbids it. Say so and try again later.
			if r.Events != nil {
				r.Events.Eventf(sts, nil, corev1.EventTypeWarning, ReasonPromotionHalted, "Promote", "lowering partition %d -> %d was denied: %s", partition, next, status.Status().Message)
			}
			return ctrl.Result{RequeueAfter: r.Opts.Recheck}, true, nil
		}
		return ctrl.Result{}, true, fmt.Errorf("lowering partition of %s/%s to %d: %w", sts.Namespace, sts.Name, next, err)
	}
	log.Info("canary promoted", "partition", next, "proven", slices.Sorted(maps.Keys(proven)))
	if r.Events != nil {
		r.Events.Eventf(sts, nil, corev1.EventTypeNormal, ReasonPromoted, "Promote", "every pod from ordinal %d up proved its replace-profile; partition lowered %d -> %d", partition, partition, next)
	}
	return ctrl.Result{RequeueAfter: r.Opts.Recheck}, true, nil
}
