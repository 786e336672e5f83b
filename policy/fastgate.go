package policy

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// The partition gate in Go: validate.rego's two partition-gate violations, for the
// promotion attempts (a lowered partition while a canary is open, no version change) that
// helm repeats, and a controller retries, until the canary is proven. Its message groups the
// unproven pods by what they lack and fits them into gateMaxMessage characters, which in
// topdown costs more than the rest of a request together. Like the rest of the fast path it
// answers only under the embedded rules in enforce mode without an override, returns
// ok=false on any input it is not sure of, and Options.CrossCheck holds it to the policy.

// gateMaxNamed and gateMaxMessage are validate.rego's max_named and max_message.
const (
	gateMaxNamed   = 3
	gateMaxMessage = 600
	// gateMaxCanary bounds the canary ordinals the fast path walks; a larger canary goes to
	// the policy, which words it the same way.
	gateMaxCanary = 1000
)

// gateApplies is validate.rego's gate_applies (which both violations also require).
func gateApplies(in *Input) bool {
	return isUpdate(in) && in.Canary.Open && !in.Change.VersionChanged && in.New.Partition < in.Old.Partition
}

// fastGate is validate_result for a request the gate applies to, in plain enforce mode
// with no advisory (every other violation and advisory needs a version change).
func fastGate(in *Input) (Validation, bool) {
	lo, hi := in.Old.Partition, in.New.Replicas
	if int64(hi)-int64(lo) > gateMaxCanary {
		return Validation{}, false
	}
	var v Finding
	if lo >= hi {
		if in.New.Partition >= desiredPartition(in) {
			return Validation{Allowed: true, Mode: "enforce"}, true
		}
		v = noCanaryGate(in)
	} else {
		var unproven []int32
		for i := lo; i < hi; i++ {
			if !gateProven(in, i) {
				unproven = append(unproven, i)
			}
		}
		if len(unproven) == 0 {
			return Validation{Allowed: true, Mode: "enforce"}, true
		}
		v = unprovenGate(in, unproven)
	}
	return Validation{Denials: []Finding{v}, Violations: []Finding{v}, Mode: "enforce"}, true
}

// gateProven is validate.rego's proven(i): some pod with that ordinal is proven.
func gateProven(in *Input, ordinal int32) bool {
	for i := range in.Pods {
		if in.Pods[i].Ordinal == ordinal && in.Pods[i].Proven {
			return true
		}
	}
	return false
}

// gatePodIssue is validate.rego's pod_issue(i), read off the first pod with the ordinal.
func gatePodIssue(in *Input, ordinal int32) string {
	i := slices.IndexFunc(in.Pods, func(p Pod) bool { return p.Ordinal == ordinal })
	if i < 0 {
		return "does not exist"
	}
	pod := &in.Pods[i]
	var issues []string
	switch {
	case pod.OnUpdateRevision:
	case in.Old.UpdateRevision == "":
		issues = append(issues, "the StatefulSet controller has not observed the latest change yet (status.observedGeneration is behind metadata.generation), so no pod can be proven on its revision: retry in a few seconds")
	default:
		issues = append(issues, fmt.Sprintf("runs revision %s, not the update revision %s", pod.Revision, in.Old.UpdateRevision))
	}
	switch {
	case pod.Soaked:
	case pod.Ready:
		issues = append(issues, fmt.Sprintf("not Ready for %ds yet (ready %ds)", in.Settings.SoakSeconds, pod.ReadySecs))
	default:
		issues = append(issues, "not Ready")
	}
	if s, ok := gateVerdictIssue(pod, in.Old.UpdateRevision); ok {
		issues = append(issues, s)
	}
	if len(issues) == 0 {
		return "is not proven"
	}
	return strings.Join(issues, "; ")
}

// gateVerdictIssue is validate.rego's verdict_issue(pod); ok=false for none.
func gateVerdictIssue(pod *Pod, updateRevision string) (string, bool) {
	v := pod.Verdict
	switch {
	case pod.Evidence == "current" && v != nil && v.Verdict == "Succeeded":
		return "", false
	case pod.Evidence == "unreadable":
		return fmt.Sprintf("its pdguard.io/replace-profile annotation cannot be read (%s)", pod.VerdictError), true
	case pod.Evidence == "untrusted":
		return fmt.Sprintf("its pdguard.io/replace-profile verdict was not issued by pdguard (%s), so it proves nothing; pdguard replaces it with its own judgement", pod.VerdictError), true
	case v != nil && v.Verdict != "Succeeded":
		stale := ""
		switch {
		case pod.Evidence == "stale-revision":
			stale = " (recorded for an earlier revision)"
		case pod.Evidence == "stale-container" && v.ContainerID != "":
			stale = " (recorded for an earlier container)"
		}
		reason := ""
		if v.Reason != "" {
			reason = ": " + v.Reason
		}
		return "verdict " + v.Verdict + stale + reason, true
	case v != nil && pod.Evidence == "stale-revision":
		return fmt.Sprintf("its Succeeded verdict is stale: it is about revision %s, not the update revision %s", v.Revision, updateRevision), true
	case v != nil && pod.Evidence == "stale-container":
		return fmt.Sprintf("its Succeeded verdict is stale: it is about an earlier container (%s), not the running one (%s)", v.ContainerID, pod.ContainerID), true
	}
	return "no pdguard.io/replace-profile verdict yet", true
}

// gatePluralIssue is validate.rego's plural_issue: the two problems that read as a verb.
func gatePluralIssue(issue string) (string, bool) {
	switch issue {
	case "does not exist":
		return "do not exist", true
	case "is not proven":
		return "are not proven", true
	}
	return "", false
}

// unprovenGate is the partition-gate violation that names the unproven canary pods.
func unprovenGate(in *Input, unproven []int32) Finding {
	podName := func(i int32) string { return fmt.Sprintf("%s-%d", in.Name, i) }
	issueOf := make([]string, len(unproven))
	var order []string
	groups := map[string][]int32{}
	for k, i := range unproven {
		s := gatePodIssue(in, i)
		issueOf[k] = s
		if _, seen := groups[s]; !seen {
			order = append(order, s)
		}
		groups[s] = append(groups[s], i)
	}
	texts := make([]string, len(order))
	for k, s := range order {
		ords := groups[s]
		names := "Pod " + podName(ords[0])
		if len(ords) > 1 {
			rest := make([]string, 0, gateMaxNamed-1)
			for _, i := range ords[1:min(len(ords), gateMaxNamed)] {
				rest = append(rest, fmt.Sprintf("-%d", i))
			}
			names = "Pods " + podName(ords[0]) + ", " + strings.Join(rest, ", ")
		}
		plural, isPlural := gatePluralIssue(s)
		switch {
		case isPlural && len(ords) == 1:
			texts[k] = "Pod " + podName(ords[0]) + " " + s
		case isPlural:
			texts[k] = names + " " + plural
		default:
			texts[k] = names + ": " + strings.TrimRight(s, ".")
		}
	}
	named := func(k int) int {
		n := 0
		for _, s := range order[:k] {
			n += min(len(groups[s]), gateMaxNamed)
		}
		return n
	}
	tail := func(k int) string {
		rest := len(unproven) - named(k)
		switch {
		case rest == 0:
			return ""
		case rest == 1:
			return fmt.Sprintf(". 1 more pod: see kubectl pdguard status %s -n %s", in.Name, in.Namespace)
		}
		return fmt.Sprintf(". %d more pods: see kubectl pdguard status %s -n %s", rest, in.Name, in.Namespace)
	}
	stable := stableTag(stableImage(in))
	head := fmt.Sprintf("pdguard refused to lower the partition of %s from %d to %d: the canary is not proven. ", objectName(in), in.Old.Partition, in.New.Partition)
	next := fmt.Sprintf(". Next: once Succeeded, re-run the same helm upgrade (same -f values files); if Failed, with pingdirectory.image.tag=%s.", stable)
	room := func(k int) int {
		return gateMaxMessage - utf8.RuneCountInString(head) - utf8.RuneCountInString(next) - utf8.RuneCountInString(tail(k))
	}
	shown, length := 1, -2
	for k := 1; k <= len(texts); k++ {
		length += utf8.RuneCountInString(texts[k-1]) + 2
		if length <= room(k) {
			shown = k
		}
	}
	cut := make([]string, shown)
	for k, t := range texts[:shown] {
		cut[k] = cutText(t, room(shown))
	}
	msg := head + strings.Join(cut, ". ") + tail(shown) + next

	details := make([]string, 0, len(unproven)+5)
	for k, i := range unproven {
		if _, isPlural := gatePluralIssue(issueOf[k]); isPlural {
			details = append(details, "Pod "+podName(i)+" "+issueOf[k])
		} else {
			details = append(details, "Pod "+podName(i)+": "+issueOf[k])
		}
	}
	details = append(details,
		fmt.Sprintf("%s would move to the update revision %s (image %s)",
			podsText(in.Name, int64(in.New.Partition), int64(min(in.Old.Partition, in.New.Replicas))), in.Old.UpdateRevision, in.New.Image.Ref),
		"verdict: "+verdictCommand(in, int64(unproven[0])),
		fmt.Sprintf("logs: kubectl -n %s logs %s -c %s, or pdguard's webhook scan-log", in.Namespace, podName(unproven[0]), in.Settings.Container),
		helmRollbackText(stable),
		breakGlassText(in),
	)
	return Finding{Rule: "partition-gate", Message: msg, Details: details}
}

// noCanaryGate is the partition-gate violation for a live partition at or above the
// replicas: no pod runs the new image, so there is nothing to prove.
func noCanaryGate(in *Input) Finding {
	desired := desiredPartition(in)
	msg := fmt.Sprintf("pdguard refused to lower the partition of %s from %d to %d: no pod runs the new image. The partition is not below the %d replicas: no pod runs %s yet, so nothing proves replace-profile succeeds on it. Next: the same helm upgrade you ran (same -f values files) with pingdirectory.workload.statefulSet.partition=%d, so only %s updates as the canary; lower it further once its verdict is Succeeded.",
		objectName(in), in.Old.Partition, in.New.Partition, in.New.Replicas, in.New.Image.Ref,
		desired, podsText(in.Name, int64(desired), int64(in.New.Replicas)))
	return Finding{Rule: "partition-gate", Message: msg, Details: []string{
		"update revision: " + in.Old.UpdateRevision,
		"verdict: " + verdictCommand(in, int64(in.New.Replicas)-1),
		helmRollbackText(stableTag(stableImage(in))),
		breakGlassText(in),
	}}
}

// cutText is validate.rego's cut(s, n), counted in characters as Rego counts strings.
func cutText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:min(len(r), max(n, 60)-1)]) + "…"
}

// helmRollbackText is validate.rego's helm_rollback_text.
func helmRollbackText(stableTag string) string {
	return fmt.Sprintf("helm --atomic / --rollback-on-failure: helm's automatic rollback to the revision that opened the canary sends this same request and is refused too, so helm reports a failed rollback; nothing changed. Re-run the upgrade once the verdict is Succeeded, or go back with helm rollback RELEASE <revision before the canary> (or pingdirectory.image.tag=%s), which is let through as a revert.", stableTag)
}

// breakGlassText is lib.break_glass_text.
func breakGlassText(in *Input) string {
	groups := slices.Clone(in.Settings.OverrideGroups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	if len(groups) == 0 {
		return "break-glass overrides are disabled on this cluster (no override groups are configured)"
	}
	return fmt.Sprintf("break-glass: a member of [%s] can run kubectl -n %s annotate --overwrite statefulset %s %s=\"<ticket and why>\" and retry (the override is used up by the change it lets through)",
		strings.Join(groups, ", "), in.Namespace, in.Name, in.Keys.OverrideReason)
}
