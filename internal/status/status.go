// Package status says where a guarded StatefulSet's rollout stands and what to run next,
// from the rollout model's State: it reads the facts internal/rollout worked out and
// works none out again.
package status

import (
	"fmt"
	"time"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/rollout/imageref"
)

// Phases of a rollout.
const (
	// PhaseStable: every pod runs the one revision.
	PhaseStable = "stable"
	// PhaseCanary: the pods at or above the partition run the update revision, the others
	// wait for its proof.
	PhaseCanary = "canary"
	// PhaseRolling: the partition was lowered and the remaining pods restart.
	PhaseRolling = "rolling"
)

// Kinds of a next step.
const (
	StepNone = "none"
	StepWait = "wait"
	// StepHelm: change a chart value in the same helm upgrade.
	StepHelm = "helm"
	// StepKubectl: a kubectl command.
	StepKubectl = "kubectl"
)

// Chart values a next step names.
const (
	PartitionValue = "pingdirectory.workload.statefulSet.partition"
	ImageTagValue  = "pingdirectory.image.tag"
)

// SameUpgrade is how a next step names the helm command to run.
const SameUpgrade = "the same helm upgrade you ran (same -f values files)"

// Status is one guarded StatefulSet's rollout.
type Status struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Phase     string `json:"phase"`
	Replicas  int32  `json:"replicas"`
	Partition int32  `json:"partition"`
	// CanaryOpen: see rollout.CanaryOpen.
	CanaryOpen     bool   `json:"canaryOpen"`
	StableRevision string `json:"stableRevision"`
	StableImage    string `json:"stableImage"`
	// UpdateRevision is "" while the StatefulSet controller has not observed the spec.
	UpdateRevision string `json:"updateRevision"`
	UpdateImage    string `json:"updateImage"`
	AutoPromote    bool   `json:"autoPromote"`
	Pods           []Pod  `json:"pods"`
	// Blockers say why the partition may not go lower now, one per canary pod not proven.
	Blockers []string `json:"blockers"`
	Next     Step     `json:"next"`
}

// Settled reports whether the rollout needs nothing more.
func (s Status) Settled() bool { return s.Phase == PhaseStable }

// Pod is one pod of the StatefulSet.
type Pod struct {
	Name     string `json:"name"`
	Ordinal  int32  `json:"ordinal"`
	Revision string `json:"revision"`
	// Canary: at or above the partition of an open canary.
	Canary bool   `json:"canary"`
	Image  string `json:"image"`
	Ready  bool   `json:"ready"`
	// ReadySeconds is how long it has been Ready.
	ReadySeconds int64 `json:"readySeconds"`
	// Verdict is the replace-profile verdict, "" when there is none.
	Verdict string `json:"verdict,omitempty"`
	// VerdictAgeSeconds is how long ago the verdict was observed.
	VerdictAgeSeconds int64 `json:"verdictAgeSeconds,omitempty"`
	// Evidence: see rollout.Evidence.
	Evidence rollout.Evidence `json:"evidence"`
	// Reason is the verdict's reason, or why it cannot be trusted or read.
	Reason string `json:"reason,omitempty"`
	Proven bool   `json:"proven"`
}

// Step is the next thing to do.
type Step struct {
	Kind string `json:"kind"`
	// Text says what to do and why.
	Text string `json:"text"`
	// Value and To name the chart value to set (StepHelm).
	Value string `json:"value,omitempty"`
	To    string `json:"to,omitempty"`
	// Command is a command to run (StepKubectl, or the alternative of a StepHelm).
	Command string `json:"command,omitempty"`
}

// Options are what Of needs beyond the state.
type Options struct {
	Namespace, Name string
	// AutoPromote: the StatefulSet carries pdguard.io/auto-promote: "true".
	AutoPromote bool
	// Soak is the webhook's --soak.
	Soak time.Duration
	Now  time.Time
}

// Of is the status of the rollout s.
func Of(s *rollout.State, o Options) Status {
	st := Status{
		Namespace: o.Namespace, Name: o.Name, Replicas: s.Replicas, Partition: s.Partition, CanaryOpen: s.CanaryOpen,
		StableRevision: s.CurrentRevision, StableImage: s.StableImage, UpdateRevision: s.UpdateRevision, UpdateImage: s.Image,
		AutoPromote: o.AutoPromote, Pods: []Pod{}, Blockers: []string{},
	}
	for _, p := range s.Pods {
		st.Pods = append(st.Pods, podStatus(p, s.CanaryOpen && p.Ordinal >= s.Partition, o.Now))
	}
	switch {
	case s.CanaryOpen:
		st.Phase = PhaseCanary
		st.Blockers = blockers(s, o)
		st.Next = canaryStep(s, st, o)
	case s.Active:
		st.Phase = PhaseRolling
		st.Next = Step{Kind: StepWait, Text: fmt.Sprintf("wait for the remaining pods to restart on %s; follow with kubectl -n %s rollout status statefulset %s", s.Image, o.Namespace, o.Name),
			Command: fmt.Sprintf("kubectl -n %s rollout status statefulset %s", o.Namespace, o.Name)}
	default:
		st.Phase = PhaseStable
		st.Next = Step{Kind: StepNone, Text: fmt.Sprintf("nothing to do: every pod runs %s", s.Image)}
	}
	return st
}

func podStatus(p rollout.PodState, canary bool, now time.Time) Pod {
	out := Pod{Name: p.Name, Ordinal: p.Ordinal, Revision: p.Revision, Canary: canary, Image: p.Image,
		Ready: p.Ready, ReadySeconds: int64(p.ReadyFor / time.Second), Evidence: p.Evidence, Proven: p.Proven}
	if p.Verdict != nil {
		out.Verdict, out.Reason = p.Verdict.Verdict, p.Verdict.Reason
		if !p.Verdict.ObservedAt.IsZero() {
			out.VerdictAgeSeconds = int64(max(0, now.Sub(p.Verdict.ObservedAt)) / time.Second)
		}
	}
	if p.VerdictErr != nil {
		out.Reason = p.VerdictErr.Error()
	}
	return out
}

// blockers say, for each canary pod that is not proven, what it lacks.
func blockers(s *rollout.State, o Options) []string {
	out := []string{}
	for _, ordinal := range s.CanaryOrdinals() {
		p, ok := s.Pod(ordinal)
		name := fmt.Sprintf("%s-%d", o.Name, ordinal)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("pod %s does not exist yet", name))
		case p.Proven:
		case !p.OnUpdateRevision:
			out = append(out, fmt.Sprintf("pod %s runs revision %s, not the update revision %s yet", name, p.Revision, orUnknown(s.UpdateRevision)))
		case !p.Ready:
			out = append(out, fmt.Sprintf("pod %s is not Ready", name))
		case p.Evidence == rollout.EvidenceNone:
			out = append(out, fmt.Sprintf("pod %s has no replace-profile verdict yet", name))
		case p.Evidence == rollout.EvidenceUntrusted || p.Evidence == rollout.EvidenceUnreadable:
			out = append(out, fmt.Sprintf("pod %s: its verdict proves nothing: %v", name, p.VerdictErr))
		case p.Evidence.Stale():
			out = append(out, fmt.Sprintf("pod %s: its verdict is about an earlier container or revision (%s)", name, p.Evidence))
		case p.Verdict.Verdict != rollout.VerdictSucceeded:
			out = append(out, fmt.Sprintf("pod %s: replace-profile verdict is %s%s", name, p.Verdict.Verdict, reasonSuffix(p.Verdict.Reason)))
		case !p.Soaked:
			out = append(out, fmt.Sprintf("pod %s has been Ready for %s of the %s soak", name, p.ReadyFor.Truncate(time.Second), o.Soak))
		}
	}
	return out
}

func canaryStep(s *rollout.State, st Status, o Options) Step {
	if failed := failedCanary(s); failed != nil {
		tag := tagOf(s.StableImage)
		return Step{Kind: StepHelm, Value: ImageTagValue, To: tag,
			Text: fmt.Sprintf("the canary %s failed replace-profile%s: roll it back by setting %s back to %s in %s; pdguard keeps the partition, so only the canary returns", failed.Name, reasonSuffix(failed.Verdict.Reason), ImageTagValue, tag, SameUpgrade)}
	}
	if len(st.Blockers) > 0 {
		text := "wait for verdict: " + st.Blockers[0]
		if len(st.Blockers) > 1 {
			text += fmt.Sprintf(" (and %d more)", len(st.Blockers)-1)
		}
		return Step{Kind: StepWait, Text: text + "; the evidence controller reads the canary's log and records the verdict"}
	}
	if o.AutoPromote {
		return Step{Kind: StepWait, Text: "wait: the canary is proven and pdguard.io/auto-promote is on, so the evidence controller lowers the partition one ordinal at a time"}
	}
	patch := fmt.Sprintf(`kubectl -n %s patch statefulset %s -p '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}'`, o.Namespace, o.Name)
	return Step{Kind: StepHelm, Value: PartitionValue, To: "0", Command: patch,
		Text: fmt.Sprintf("promote: the canary is proven; run %s, which sends %s=0 (the chart's default), or %s", SameUpgrade, PartitionValue, patch)}
}

// failedCanary is a canary pod whose current verdict is Failed.
func failedCanary(s *rollout.State) *rollout.PodState {
	for _, ordinal := range s.CanaryOrdinals() {
		if p, ok := s.Pod(ordinal); ok && p.Evidence == rollout.EvidenceCurrent && p.Verdict.Verdict == rollout.VerdictFailed {
			return p
		}
	}
	return nil
}

func tagOf(image string) string {
	ref, err := imageref.Parse(image)
	if err != nil || ref.Tag == "" {
		return image
	}
	return ref.Tag
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

func orUnknown(s string) string {
	if s == "" {
		return "(not published yet)"
	}
	return s
}
