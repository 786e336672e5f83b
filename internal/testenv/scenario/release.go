package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pdguard/pdguard/internal/rollout"
)

// Release is one helm release of the test chart in a namespace of its own.
type Release struct {
	Env       *Env
	Helm      Helm
	Name      string
	Namespace string
	// Logf receives how long each wait took; nil discards it.
	Logf func(format string, args ...any)
}

// NewRelease names a release; nothing is installed until Upgrade.
func (e *Env) NewRelease(h Helm, name, namespace string) *Release {
	return &Release{Env: e, Helm: h, Name: name, Namespace: namespace}
}

func (r *Release) logf(format string, args ...any) {
	if r.Logf != nil {
		r.Logf(format, args...)
	}
}

// StatefulSet is the name the chart gives the StatefulSet.
func (r *Release) StatefulSet() string { return r.Name + "-pingdirectory" }

// ConfigMap is the env ConfigMap the pods read with envFrom.
func (r *Release) ConfigMap() string { return r.StatefulSet() + "-env-vars" }

// PodName is the pod of the given ordinal.
func (r *Release) PodName(ordinal int) string { return fmt.Sprintf("%s-%d", r.StatefulSet(), ordinal) }

// Upgrade runs `helm upgrade --install` of the test chart with the given --set values,
// as a person would after editing their values. Every value is explicit because helm
// reuses the previous release's values when an upgrade passes none.
func (r *Release) Upgrade(ctx context.Context, set ...string) Result {
	return r.UpgradeWith(ctx, nil, set...)
}

// UpgradeWith is Upgrade with extra helm flags (e.g. --force-conflicts).
func (r *Release) UpgradeWith(ctx context.Context, flags []string, set ...string) Result {
	args := []string{"upgrade", "--install", r.Name, Chart, "-n", r.Namespace, "--create-namespace"}
	args = append(args, flags...)
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return r.Env.RunHelm(ctx, r.Helm, args...)
}

// Kubectl runs kubectl as the admin in the release's namespace.
func (r *Release) Kubectl(ctx context.Context, args ...string) Result {
	return r.Env.Kubectl(ctx, append([]string{"-n", r.Namespace}, args...)...)
}

// KubectlAs runs kubectl with another kubeconfig in the release's namespace.
func (r *Release) KubectlAs(ctx context.Context, kubeconfig string, args ...string) Result {
	return r.Env.KubectlAs(ctx, kubeconfig, append([]string{"-n", r.Namespace}, args...)...)
}

// Get reads the live StatefulSet.
func (r *Release) Get(ctx context.Context) (*appsv1.StatefulSet, error) {
	return r.Env.Client.AppsV1().StatefulSets(r.Namespace).Get(ctx, r.StatefulSet(), metav1.GetOptions{})
}

// Pod is what a scenario needs to know about one pod of the release.
type Pod struct {
	Name        string
	Ordinal     int
	UID         string
	Image       string
	Revision    string
	Ready       bool
	ReadySince  time.Time
	ContainerID string
	Restarts    int32
	Terminating bool
	// Verdict is the evidence controller's pdguard.io/replace-profile annotation, nil
	// when absent; VerdictError says why it could not be read.
	Verdict      *rollout.Verdict
	VerdictError string
}

// Tag is the tag of the pod's image.
func (p Pod) Tag() string { return Tag(p.Image) }

// Pods lists the StatefulSet's pods by ordinal.
func (r *Release) Pods(ctx context.Context) ([]Pod, error) {
	list, err := r.Env.Client.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/instance=" + r.Name + ",app.kubernetes.io/name=pingdirectory",
	})
	if err != nil {
		return nil, err
	}
	var pods []Pod
	for i := range list.Items {
		p := &list.Items[i]
		var ordinal int
		if _, err := fmt.Sscanf(strings.TrimPrefix(p.Name, r.StatefulSet()+"-"), "%d", &ordinal); err != nil {
			continue
		}
		pods = append(pods, podOf(p, ordinal))
	}
	slices.SortFunc(pods, func(a, b Pod) int { return a.Ordinal - b.Ordinal })
	return pods, nil
}

func podOf(p *corev1.Pod, ordinal int) Pod {
	out := Pod{
		Name: p.Name, Ordinal: ordinal, UID: string(p.UID),
		Revision:    p.Labels[rollout.RevisionLabel],
		Terminating: p.DeletionTimestamp != nil,
	}
	out.Image, _ = rollout.ContainerImage(&p.Spec, "pingdirectory")
	out.ReadySince, out.Ready = rollout.ReadySince(p)
	if cs, ok := rollout.Container(p, "pingdirectory"); ok {
		out.ContainerID, out.Restarts = cs.ID, cs.Restarts
	}
	v, err := rollout.ReadVerdict(p)
	switch {
	case err != nil:
		out.VerdictError = err.Error()
	case v != nil:
		out.Verdict = v
	}
	return out
}

// DescribePods is a short account of pods for failure messages.
func DescribePods(pods []Pod) string {
	if len(pods) == 0 {
		return "no pods"
	}
	var b strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&b, "\n  %s uid=%s image=%s revision=%s ready=%v restarts=%d", p.Name, shortUID(p.UID), p.Tag(), p.Revision, p.Ready, p.Restarts)
		if p.Terminating {
			b.WriteString(" terminating")
		}
		if p.Verdict != nil {
			fmt.Fprintf(&b, " verdict=%s (%s)", p.Verdict.Verdict, p.Verdict.Reason)
		}
	}
	return b.String()
}

func shortUID(uid string) string {
	if len(uid) > 8 {
		return uid[:8]
	}
	return uid
}

// poll calls cond until it reports done, logging how long that took. what names the
// condition in the log and the error; describe adds the last state seen to a timeout.
func (r *Release) poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error), describe func() string) error {
	began := time.Now()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		done, err := cond(ctx)
		if err != nil {
			if fatal, ok := err.(fatalError); ok {
				return false, fatal.error
			}
			// An error from the deadline itself says nothing about the condition.
			if ctx.Err() == nil && !strings.Contains(err.Error(), "would exceed context deadline") {
				last = err
			}
			return false, nil
		}
		return done, nil
	})
	if err != nil {
		msg := fmt.Sprintf("waiting %s for %s: %v", shortDuration(time.Since(began)), what, err)
		if last != nil {
			msg += fmt.Sprintf(" (last error: %v)", last)
		}
		if describe != nil {
			msg += "; " + describe()
		}
		return errorf("%s", msg)
	}
	r.logf("%s: %s after %s", r.Name, what, shortDuration(time.Since(began)))
	return nil
}

// fatalError ends a poll at once: the condition can no longer come true.
type fatalError struct{ error }

// WaitTimeout bounds each wait. A rollout of two pods on KWOK takes seconds; the margin
// is for a loaded two-core machine.
var WaitTimeout = 90 * time.Second

// WaitTags waits until the StatefulSet controller has acted on the latest spec and pod
// i runs tags[i] and is Ready, for every ordinal, with no other pods around; the pods
// at or above the partition must also run the update revision, so a change that keeps
// the tag (configuration only, a revert) is waited for as well.
func (r *Release) WaitTags(ctx context.Context, tags ...string) ([]Pod, error) {
	var pods []Pod
	var sts *appsv1.StatefulSet
	err := r.poll(ctx, WaitTimeout, fmt.Sprintf("pods on %s and Ready", strings.Join(tags, ", ")), func(ctx context.Context) (bool, error) {
		got, err := r.Get(ctx)
		if err != nil {
			return false, err
		}
		sts = got
		list, err := r.Pods(ctx)
		if err != nil {
			return false, err
		}
		pods = list
		if sts.Status.ObservedGeneration < sts.Generation || len(pods) != len(tags) {
			return false, nil
		}
		partition, _ := rollout.Partition(sts)
		for i, p := range pods {
			if p.Ordinal != i || p.Tag() != tags[i] || !p.Ready || p.Terminating {
				return false, nil
			}
			if int32(i) >= partition && p.Revision != sts.Status.UpdateRevision {
				return false, nil
			}
		}
		return true, nil
	}, func() string { return "pods: " + DescribePods(pods) + "; statefulset: " + describeSet(sts) })
	return pods, err
}

// WaitComplete waits until the StatefulSet reports every replica updated and Ready, on
// one revision: the rollout is over. Its status trails the pods by a moment.
func (r *Release) WaitComplete(ctx context.Context) (*appsv1.StatefulSet, error) {
	var sts *appsv1.StatefulSet
	err := r.poll(ctx, WaitTimeout, "the rollout to complete", func(ctx context.Context) (bool, error) {
		got, err := r.Get(ctx)
		if err != nil {
			return false, err
		}
		sts = got
		st, replicas := sts.Status, rollout.Replicas(sts)
		return st.ObservedGeneration >= sts.Generation && st.CurrentRevision == st.UpdateRevision &&
			st.UpdatedReplicas == replicas && st.ReadyReplicas == replicas, nil
	}, func() string { return "statefulset: " + describeSet(sts) })
	return sts, err
}

func describeSet(sts *appsv1.StatefulSet) string {
	if sts == nil {
		return "not read"
	}
	partition, _ := rollout.Partition(sts)
	return fmt.Sprintf("generation=%d observed=%d partition=%d current=%s update=%s updated=%d ready=%d",
		sts.Generation, sts.Status.ObservedGeneration, partition, sts.Status.CurrentRevision, sts.Status.UpdateRevision,
		sts.Status.UpdatedReplicas, sts.Status.ReadyReplicas)
}

// VerdictCheck decides whether a verdict on a pod is the one waited for.
type VerdictCheck func(v *rollout.Verdict, pod Pod, sts *appsv1.StatefulSet) bool

// CurrentVerdict accepts only the given verdict, recorded for the pod's running
// container on the update revision: what the partition gate counts.
func CurrentVerdict(verdict string) VerdictCheck {
	return func(v *rollout.Verdict, pod Pod, sts *appsv1.StatefulSet) bool {
		return v != nil && v.Verdict == verdict && v.Revision == sts.Status.UpdateRevision && v.ContainerID == pod.ContainerID
	}
}

// WaitVerdict waits until the verdict on the pod of the ordinal passes check. A final
// verdict (Succeeded, Failed, NotUpgraded) for the running container that does not pass
// ends the wait at once when stopOnOtherFinal is set: it will not change any more.
func (r *Release) WaitVerdict(ctx context.Context, ordinal int, what string, check VerdictCheck, stopOnOtherFinal bool) (Pod, error) {
	var pod Pod
	var sts *appsv1.StatefulSet
	name := r.PodName(ordinal)
	err := r.poll(ctx, WaitTimeout, fmt.Sprintf("%s on %s", what, name), func(ctx context.Context) (bool, error) {
		got, err := r.Get(ctx)
		if err != nil {
			return false, err
		}
		sts = got
		p, err := r.Env.Client.CoreV1().Pods(r.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = podOf(p, ordinal)
		if check(pod.Verdict, pod, sts) {
			return true, nil
		}
		if v := pod.Verdict; stopOnOtherFinal && v != nil && isFinal(v.Verdict) && v.ContainerID == pod.ContainerID && v.Revision == sts.Status.UpdateRevision {
			return false, fatalError{fmt.Errorf("the verdict is final and not the one wanted: %s", verdictText(v))}
		}
		return false, nil
	}, func() string { return "pod: " + DescribePods([]Pod{pod}) + "; statefulset: " + describeSet(sts) })
	return pod, err
}

func isFinal(verdict string) bool {
	switch verdict {
	case rollout.VerdictSucceeded, rollout.VerdictFailed, rollout.VerdictNotUpgraded:
		return true
	}
	return false
}

func verdictText(v *rollout.Verdict) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprintf("%s (revision %s, container %s, %s -> %s): %s", v.Verdict, v.Revision, shortContainer(v.ContainerID), v.From, v.To, v.Reason)
}

func shortContainer(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	if len(id) > 12 {
		return id[:12]
	}
	if id == "" {
		return "none"
	}
	return id
}

// WaitSoaked waits until the pod of the ordinal has been Ready for soak, the time the
// partition gate wants a canary to have proved itself for. The guard counts whole
// seconds of a second-precision timestamp, so one more second is waited.
func (r *Release) WaitSoaked(ctx context.Context, ordinal int, soak time.Duration) error {
	var pod Pod
	name := r.PodName(ordinal)
	return r.poll(ctx, WaitTimeout, fmt.Sprintf("%s Ready for %s", name, soak), func(ctx context.Context) (bool, error) {
		p, err := r.Env.Client.CoreV1().Pods(r.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = podOf(p, ordinal)
		return pod.Ready && time.Since(pod.ReadySince) >= soak+time.Second, nil
	}, func() string { return DescribePods([]Pod{pod}) })
}

// ServeLog makes the pods/log API return lines as the log of the pingdirectory
// container of the pod of the ordinal, also for a pod created later under that name.
func (r *Release) ServeLog(ctx context.Context, ordinal int, lines []string) error {
	return r.Env.CP.ServePodLogs(ctx, r.Namespace, r.PodName(ordinal), lines, nil)
}

// Event is one Event pdguard wrote about the release's StatefulSet.
type Event struct {
	Reason string
	Type   string
	Note   string
}

// Events lists the Events about the StatefulSet, oldest first.
func (r *Release) Events(ctx context.Context) ([]Event, error) {
	list, err := r.Env.Client.EventsV1().Events(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	items := list.Items
	slices.SortStableFunc(items, func(a, b eventsv1.Event) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	var out []Event
	for _, e := range items {
		if e.Regarding.Kind == "StatefulSet" && e.Regarding.Name == r.StatefulSet() {
			out = append(out, Event{Reason: e.Reason, Type: e.Type, Note: e.Note})
		}
	}
	return out, nil
}

// WaitEvent waits for an Event about the StatefulSet with the reason whose note contains
// every one of contains. Events are written asynchronously after the request returned.
func (r *Release) WaitEvent(ctx context.Context, reason string, contains ...string) (Event, error) {
	var found Event
	var seen []Event
	err := r.poll(ctx, WaitTimeout, "a "+reason+" event", func(ctx context.Context) (bool, error) {
		events, err := r.Events(ctx)
		if err != nil {
			return false, err
		}
		seen = events
		for _, e := range seen {
			if e.Reason == reason && containsAll(e.Note, contains) {
				found = e
				return true, nil
			}
		}
		return false, nil
	}, func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "want note containing %q; events seen:", contains)
		for _, e := range seen {
			fmt.Fprintf(&b, "\n  %s %s: %.200s", e.Type, e.Reason, e.Note)
		}
		return b.String()
	})
	return found, err
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// ConfigMapData is the data of the env ConfigMap.
func (r *Release) ConfigMapData(ctx context.Context) (map[string]string, error) {
	cm, err := r.Env.Client.CoreV1().ConfigMaps(r.Namespace).Get(ctx, r.ConfigMap(), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}
