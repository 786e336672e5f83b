// Package report builds the offline report of guarded StatefulSets, their canaries and
// verdicts, and the rollouts pdguard blocked, warned about or let through.
package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
)

// ReportedReasons are the Event reasons a report lists: every blocked, warned or
// overridden rollout, every canary opened, judged or promoted.
var ReportedReasons = []string{
	audit.ReasonRolloutBlocked, audit.ReasonRolloutWarned, audit.ReasonOverride, audit.ReasonCanaryStarted,
	audit.ReasonVerdict, audit.ReasonPromoted, audit.ReasonPromotionHalted, audit.ReasonBrokenPodReplaced,
	audit.ReasonForgedVerdict,
}

// Report is the state of every guarded StatefulSet and what pdguard did to them.
type Report struct {
	GeneratedAt  time.Time     `json:"generatedAt"`
	StatefulSets []StatefulSet `json:"statefulSets"`
	Events       []Event       `json:"events"`
}

type StatefulSet struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Replicas   int32  `json:"replicas"`
	Partition  int32  `json:"partition"`
	CanaryOpen bool   `json:"canaryOpen"`
	Image      string `json:"image"`
	// StableImage is set while a canary is open.
	StableImage string      `json:"stableImage,omitempty"`
	Pods        []PodStatus `json:"pods"`
}

type PodStatus struct {
	Name     string `json:"name"`
	Revision string `json:"revision"`
	Image    string `json:"image"`
	Ready    bool   `json:"ready"`
	// Stable: the pod runs the stable revision (below an open canary's partition), so it
	// needs no verdict; a verdict left from an earlier revision is not shown.
	Stable  bool   `json:"stable,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

type Event struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	Object    string    `json:"object"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Note      string    `json:"note"`
	Count     int32     `json:"count"`
}

// BuildReport assembles a report from listed objects. Events older than since, or with
// reasons pdguard does not write, are left out.
func BuildReport(now time.Time, sets []appsv1.StatefulSet, pods []corev1.Pod, events []eventsv1.Event, container string, since time.Duration) Report {
	r := Report{GeneratedAt: now.UTC(), StatefulSets: []StatefulSet{}, Events: []Event{}}
	for i := range sets {
		sts := &sets[i]
		var own []corev1.Pod
		for j := range pods {
			if pods[j].Namespace == sts.Namespace {
				own = append(own, pods[j])
			}
		}
		state := rollout.Observe(sts, own, rollout.ObserveOptions{Container: container, Now: now})
		s := StatefulSet{
			Namespace: sts.Namespace, Name: sts.Name, Replicas: state.Replicas, Partition: state.Partition,
			CanaryOpen: state.CanaryOpen, Image: state.Image, Pods: []PodStatus{},
		}
		if state.CanaryOpen {
			s.StableImage = state.StableImage
		}
		for _, p := range state.Pods {
			ps := PodStatus{Name: p.Name, Revision: p.Revision, Image: p.Image, Ready: p.Ready, Stable: p.OnStableRevision}
			switch {
			case p.OnStableRevision && p.Evidence.Stale():
			case p.Evidence == rollout.EvidenceUnreadable:
				ps.Verdict, ps.Reason = "Unreadable", p.VerdictErr.Error()
			case p.Verdict != nil:
				ps.Verdict, ps.Reason = p.Verdict.Verdict, p.Verdict.Reason
				if p.Evidence.Stale() {
					ps.Verdict += " (stale)"
				}
			}
			s.Pods = append(s.Pods, ps)
		}
		slices.SortFunc(s.Pods, func(a, b PodStatus) int { return strings.Compare(a.Name, b.Name) })
		r.StatefulSets = append(r.StatefulSets, s)
	}
	slices.SortFunc(r.StatefulSets, func(a, b StatefulSet) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for i := range events {
		e := &events[i]
		if !slices.Contains(ReportedReasons, e.Reason) || e.Regarding.Kind != "StatefulSet" {
			continue
		}
		at := eventTime(e)
		if since > 0 && now.Sub(at) > since {
			continue
		}
		count := int32(1)
		if e.Series != nil {
			count = e.Series.Count
		} else if e.DeprecatedCount > 0 {
			count = e.DeprecatedCount
		}
		r.Events = append(r.Events, Event{
			Time: at.UTC(), Namespace: e.Namespace, Object: e.Regarding.Name, Type: e.Type,
			Reason: e.Reason, Note: e.Note, Count: count,
		})
	}
	slices.SortFunc(r.Events, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return r
}

func eventTime(e *eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// WriteText prints the report for people.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATEFULSET\tREPLICAS\tPARTITION\tCANARY\tIMAGE")
	for _, s := range r.StatefulSets {
		canary := "-"
		if s.CanaryOpen {
			canary = "open (stable " + orDash(s.StableImage) + ")"
		}
		fmt.Fprintf(tw, "%s/%s\t%d\t%d\t%s\t%s\n", s.Namespace, s.Name, s.Replicas, s.Partition, canary, s.Image)
		for _, p := range s.Pods {
			fmt.Fprintf(tw, "  %s\t\t\tready=%v\t%s %s\n", p.Name, p.Ready, p.Image, verdictText(p))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d pdguard events\n", len(r.Events))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range r.Events {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\tx%d\t%s\n", e.Time.Format(time.RFC3339), e.Namespace, e.Object, e.Type, e.Reason, e.Count, e.Note)
	}
	return tw.Flush()
}

func verdictText(p PodStatus) string {
	if p.Verdict == "" {
		if p.Stable {
			return "stable revision (no verdict needed)"
		}
		return ""
	}
	if p.Reason == "" {
		return "verdict=" + p.Verdict
	}
	return "verdict=" + p.Verdict + " (" + p.Reason + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
