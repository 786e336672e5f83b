package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/evidence/logscan"
	"github.com/pdguard/pdguard/internal/rollout"
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

// Auditor takes the controller's audit records (verdicts, promotions, replaced pods,
// forged verdicts): audit.Pipeline, which logs, counts and reports them as Events and
// Report results.
type Auditor interface {
	Record(audit.Record)
}

// CanaryGauge is told which StatefulSets have a canary open, and since when.
type CanaryGauge interface {
	Canary(sts types.NamespacedName, open bool, since time.Time)
}

// Reconciler judges the canary pods of one StatefulSet per call.
type Reconciler struct {
	Client client.Client
	Logs   LogReader
	Audit  Auditor
	// Canaries is optional.
	Canaries CanaryGauge
	Opts     Options
	// Key signs the verdicts the controller writes and checks the ones it reads; nil
	// writes unsigned verdicts and trusts every verdict (tests of the judging alone).
	Key rollout.VerdictKey
	Now func() time.Time
}

// SetupWithManager wires the controller: StatefulSets matching the selector, and their
// pods, so a pod turning Ready or restarting triggers a new judgement at once.
func SetupWithManager(mgr ctrl.Manager, key rollout.VerdictKey, opts Options, auditor Auditor, canaries CanaryGauge) error {
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("evidence controller: %w", err)
	}
	r := &Reconciler{
		Client:   mgr.GetClient(),
		Logs:     PodLogs{Client: cs},
		Audit:    auditor,
		Canaries: canaries,
		Opts:     opts,
		Now:      time.Now,
		Key:      key,
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

func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logr.FromContextOrDiscard(ctx).WithValues("namespace", req.Namespace, "name", req.Name)
	var sts appsv1.StatefulSet
	if err := r.Client.Get(ctx, req.NamespacedName, &sts); err != nil {
		if apierrors.IsNotFound(err) && r.Canaries != nil {
			r.Canaries.Canary(req.NamespacedName, false, time.Time{})
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if rollout.PublishedUpdateRevision(&sts) == "" {
		// The StatefulSet controller has not published the new revision yet; its
		// status update will trigger us again.
		return ctrl.Result{}, nil
	}
	pods, err := rollout.ListPods(ctx, r.Client, &sts)
	if err != nil {
		return ctrl.Result{}, err
	}
	state := rollout.Observe(&sts, pods, rollout.ObserveOptions{
		Container: r.Opts.Container, Soak: r.Opts.Soak, Now: r.Now(), Trust: r.trust(),
	})
	if r.Canaries != nil {
		var since time.Time
		if state.Record != nil {
			since = state.Record.Started
		}
		r.Canaries.Canary(req.NamespacedName, state.CanaryOpen, since)
	}
	if err := r.replaceBrokenRollbacks(ctx, &sts, state); err != nil {
		return ctrl.Result{}, err
	}
	if !state.Active && !verdictsOwed(state) {
		return ctrl.Result{}, nil
	}
	from := state.MigrationFrom()
	recheck := false
	for i := range state.Pods {
		p := &state.Pods[i]
		if !p.OnUpdateRevision || p.Terminating {
			continue
		}
		v, err := r.judgePod(ctx, &sts, state, p, from)
		if errors.Is(err, errStalePod) {
			// The pod's change that made the cache stale triggers the next judgement.
			log.V(1).Info("pod changed since it was read; judging it again", "pod", p.Name)
			recheck = true
			continue
		}
		if err != nil {
			log.Error(err, "judging canary pod", "pod", p.Name)
			recheck = true
			continue
		}
		if !Final(v.Verdict) || (v.Verdict == rollout.VerdictSucceeded && !p.Proven) {
			recheck = true
		}
	}

	if r.autoPromote(&sts) && state.Partition > 0 {
		if res, done, err := r.promote(ctx, &sts, state); done {
			return res, err
		}
	}
	if recheck {
		return ctrl.Result{RequeueAfter: r.Opts.Recheck}, nil
	}
	return ctrl.Result{}, nil
}

// replaceBrokenRollbacks deletes a crash-looping pod that the StatefulSet controller
// should move to the update revision but will not: it never replaces a pod that is not
// Ready, so after a failed canary's tag is reverted the canary keeps crash-looping on
// the bad version (Kubernetes documents deleting it by hand). Only pods at or above the
// partition, off the update revision, and restarting forever qualify; the controller
// recreates each on the update revision with its volume.
func (r *Reconciler) replaceBrokenRollbacks(ctx context.Context, sts *appsv1.StatefulSet, state *rollout.State) error {
	for i := range state.Pods {
		p := &state.Pods[i]
		if p.Ordinal < state.Partition || p.Terminating || p.OnUpdateRevision || p.Ready {
			continue
		}
		why := crashLoopReason(p.Container)
		if why == "" {
			continue
		}
		pod := p.Pod
		uid := pod.UID
		if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				continue
			}
			return fmt.Errorf("replacing crash-looping pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		r.record(sts, pod, audit.Record{Kind: audit.KindPodReplaced, Message: fmt.Sprintf(
			"pod %s runs revision %s, not the update revision %s, and the StatefulSet controller does not replace a pod that is not Ready (%s): deleted it so it is recreated on %s",
			pod.Name, pod.Labels[rollout.RevisionLabel], sts.Status.UpdateRevision, why, sts.Status.UpdateRevision), Basis: string(uid)})
	}
	return nil
}

// verdictsOwed: the last pods of a version rollout are created as it completes, after
// which the rollout no longer looks active. Each pod of the rollout pdguard recorded, or
// that it started judging, still gets a final verdict for its running container.
func verdictsOwed(state *rollout.State) bool {
	tracked := state.Record != nil
	for i := range state.Pods {
		p := &state.Pods[i]
		switch {
		case !p.OnUpdateRevision:
		case p.Evidence == rollout.EvidenceCurrent && Final(p.Verdict.Verdict):
		case tracked, p.Verdict != nil && p.Evidence != rollout.EvidenceStaleRevision:
			return true
		}
	}
	return false
}

// judgePod reads the pod's log when needed and records the verdict when it changed.
func (r *Reconciler) judgePod(ctx context.Context, sts *appsv1.StatefulSet, state *rollout.State, p *rollout.PodState, from string) (rollout.Verdict, error) {
	pod := p.Pod
	crashLooping := crashLoopReason(p.Container) != ""
	if p.Evidence == rollout.EvidenceCurrent && Final(p.Verdict.Verdict) && !crashLooping {
		return *p.Verdict, nil
	}
	if p.Evidence == rollout.EvidenceUntrusted {
		r.reportForgery(sts, p)
	}

	to := rollout.VersionOf(p.Image)
	var scan *logscan.Result
	var readErr error
	podState := PodState{Container: p.Container, Ready: p.Ready}
	if needsLog(podState) {
		want := logscan.Expect{From: from, To: to}
		if to == "" {
			// The canary's tag names no version (latest, edge): any migration will do.
			want.From = ""
		}
		res, err := r.scanLog(ctx, pod, want)
		switch {
		case err == nil:
			scan = &res
		case ctx.Err() != nil:
			return rollout.Verdict{}, err
		default:
			// The pod says why it is not proven, where status and the gate show it.
			logr.FromContextOrDiscard(ctx).Error(err, "reading canary log", "namespace", pod.Namespace, "name", sts.Name, "pod", pod.Name)
			readErr = err
		}
	}
	verdict, reason := Judge(podState, scan)
	if readErr != nil {
		verdict, reason = Unreadable(readErr)
	}
	v := rollout.Verdict{
		Verdict: verdict, Revision: state.UpdateRevision, ContainerID: p.Container.ID,
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
	// A forged or unreadable verdict is never kept, even when it says the same.
	prev := p.Verdict
	trusted := p.Evidence != rollout.EvidenceUntrusted && p.Evidence != rollout.EvidenceUnreadable
	if !trusted {
		prev = nil
	}
	// A cache that lags the controller's own last write (the pod's status updates trigger
	// reconciles before the patch's watch event arrives; a watch re-established after an
	// API server restart) shows an older verdict or none: writeVerdict's condition on the
	// pod's resourceVersion refuses that write, so a verdict is written and reported once.
	if prev != nil && sameJudgement(*prev, v) {
		return *prev, nil
	}
	if r.Key != nil {
		r.Key.Sign(pod, &v)
	}
	// A write sent when the stop signal ends the reconcile may still land, and then the
	// next leader finds the verdict already there and does not report it: the write and
	// its record finish on a context the stop does not cancel, bounded by writeTimeout.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := r.writeVerdict(wctx, pod, v); err != nil {
		return rollout.Verdict{}, err
	}
	p.Record(v)
	if worthReporting(prev, v) {
		rec := audit.Record{
			Kind: audit.KindVerdict, Verdict: v.Verdict, UpdateRevision: v.Revision, Basis: v.ContainerID,
			FromVersion: v.From, ToVersion: v.To, ToImage: p.Image,
			Message: fmt.Sprintf("pod %s: replace-profile %s (%s -> %s): %s", pod.Name, v.Verdict, orUnknown(v.From), orUnknown(v.To), v.Reason),
		}
		if state.Record != nil {
			rec.FromImage = state.Record.FromImage
		}
		r.record(sts, pod, rec)
		if r.autoPromote(sts) && (v.Verdict == rollout.VerdictFailed || v.Verdict == rollout.VerdictNotUpgraded) {
			stable := "the stable tag"
			if state.Record != nil {
				stable = state.Record.FromImage
			}
			r.record(sts, pod, audit.Record{Kind: audit.KindPromotionHalted, Verdict: v.Verdict, UpdateRevision: v.Revision, Basis: v.ContainerID, Message: fmt.Sprintf(
				"auto-promotion stopped at pod %s: replace-profile %s. Nothing more is promoted; set pingdirectory.image.tag back to %s to roll the canary back, or fix the profile and upgrade again", pod.Name, v.Verdict, stable)})
		}
	}
	return v, nil
}

// scanLog reads the pod's log and judges it; an error means the log could not be read.
func (r *Reconciler) scanLog(ctx context.Context, pod *corev1.Pod, want logscan.Expect) (logscan.Result, error) {
	rc, err := r.Logs.ReadLog(ctx, pod.Namespace, pod.Name, r.Opts.Container, r.Opts.LogLimitBytes)
	if err != nil {
		return logscan.Result{}, err
	}
	defer rc.Close()
	return logscan.Scan(rc, want)
}

// reportForgery says who wrote a verdict pdguard did not issue. The pod's managedFields
// name the field manager and when; a manager name can be spoofed, so the Event says it is
// what the writer claimed, and the API server's audit log has the authenticated user.
func (r *Reconciler) reportForgery(sts *appsv1.StatefulSet, p *rollout.PodState) {
	writer := rollout.AnnotationWriter(p.Pod, rollout.ReplaceProfileAnnotation)
	r.record(sts, p.Pod, audit.Record{Kind: audit.KindForgedVerdict, Verdict: p.Verdict.Verdict, User: writer, Basis: p.Pod.ResourceVersion, Message: fmt.Sprintf(
		"pod %s carried a pdguard.io/replace-profile verdict %s that pdguard did not issue (%s), written by %s; pdguard ignores it, judges the pod itself and overwrites it",
		p.Name, p.Verdict.Verdict, p.VerdictErr, writer)})
}

func (r *Reconciler) trust() rollout.VerdictTrust {
	if r.Key == nil {
		return nil
	}
	return r.Key.Trust
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// writeTimeout bounds a verdict write that outlives the stop signal.
const writeTimeout = 10 * time.Second

// errStalePod: the pod changed after the cache gave it to the controller.
var errStalePod = errors.New("pod changed since it was read")

// writeVerdict patches only the annotation, so it never races the kubelet's status writes.
func (r *Reconciler) writeVerdict(ctx context.Context, pod *corev1.Pod, v rollout.Verdict) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// The resourceVersion makes the patch conditional: a verdict judged from a cached pod
	// that is already out of date (this controller's own last write not seen yet, another
	// replica's) is refused, and the fresh pod is judged again, so one verdict is written
	// and reported once.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": pod.ResourceVersion,
		"annotations":     map[string]string{rollout.ReplaceProfileAnnotation: string(raw)},
	}})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsConflict(err) {
			return errStalePod
		}
		return fmt.Errorf("writing verdict on %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

func (r *Reconciler) autoPromote(sts *appsv1.StatefulSet) bool {
	return r.Opts.AutoPromote || sts.Annotations[rollout.AutoPromoteAnnotation] == "true"
}

// promote lowers the partition by one ordinal once every pod at or above it is proven.
// The patch goes through the API server and so through pdguard's own validating gate:
// the controller has no way around the rules it serves.
func (r *Reconciler) promote(ctx context.Context, sts *appsv1.StatefulSet, state *rollout.State) (ctrl.Result, bool, error) {
	partition := state.Partition
	if !state.ProvenFrom(partition) {
		return ctrl.Result{}, false, nil
	}
	next := partition - 1
	// Conditional on the resourceVersion the evidence was read with, as verdicts are: a
	// reconcile from a cache that has not yet seen this controller's last step would
	// otherwise send the same step again, which admission lets through as a no-op, and
	// report a second promotion. Refused, the fresh StatefulSet is judged again.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": sts.ResourceVersion},
		"spec":     map[string]any{"updateStrategy": map[string]any{"rollingUpdate": map[string]any{"partition": next}}},
	})
	if err != nil {
		return ctrl.Result{}, true, err
	}
	if err := r.Client.Patch(ctx, sts, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: r.Opts.Recheck}, true, nil
		}
		var status apierrors.APIStatus
		if errors.As(err, &status) && apierrors.IsForbidden(err) {
			// Denied by the gate: the evidence the controller saw is not what admission
			// sees yet (cache lag) or a rule forbids it. Say so and try again later.
			r.record(sts, nil, audit.Record{Kind: audit.KindPromotionHalted, Basis: sts.ResourceVersion, Message: fmt.Sprintf("lowering partition %d -> %d was denied: %s", partition, next, status.Status().Message)})
			return ctrl.Result{RequeueAfter: r.Opts.Recheck}, true, nil
		}
		return ctrl.Result{}, true, fmt.Errorf("lowering partition of %s/%s to %d: %w", sts.Namespace, sts.Name, next, err)
	}
	r.record(sts, nil, audit.Record{Kind: audit.KindPromotion, Proof: state.ProofFrom(partition), Basis: sts.ResourceVersion, Message: fmt.Sprintf(
		"every pod from ordinal %d up proved its replace-profile; partition lowered %d -> %d", partition, partition, next)})
	return ctrl.Result{RequeueAfter: r.Opts.Recheck}, true, nil
}

// worthReporting: a final verdict is reported when it is new for the container; a
// verdict still being worked out (the container has not started, replace-profile is
// running) only the first time the pod is seen on its revision, so a canary coming up
// is one Normal Event, not one per step.
func worthReporting(prev *rollout.Verdict, v rollout.Verdict) bool {
	switch {
	case prev == nil, prev.Revision != v.Revision:
		return true
	case Final(v.Verdict):
		return prev.Verdict != v.Verdict || prev.ContainerID != v.ContainerID
	}
	return false
}

// record hands one of the controller's records to the audit pipeline, on the
// StatefulSet and the pod it is about.
func (r *Reconciler) record(sts *appsv1.StatefulSet, pod *corev1.Pod, rec audit.Record) {
	if r.Audit == nil {
		return
	}
	rec.Time = r.Now()
	rec.Namespace, rec.Name, rec.UID, rec.Object = sts.Namespace, sts.Name, sts.UID, sts
	if rec.UpdateRevision == "" {
		rec.UpdateRevision = sts.Status.UpdateRevision
	}
	if pod != nil {
		rec.Pod, rec.RelatedPod = pod.Name, pod
	}
	if rec.User == "" {
		rec.User = "pdguard"
	}
	r.Audit.Record(rec)
}

func sameJudgement(a, b rollout.Verdict) bool {
	return a.Verdict == b.Verdict && a.Revision == b.Revision && a.ContainerID == b.ContainerID && a.Reason == b.Reason
}
