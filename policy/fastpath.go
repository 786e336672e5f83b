package policy

import (
	"fmt"
	"strings"
)

// The fast path answers, in Go, the two requests that make up nearly all admission
// traffic, under the embedded rules in enforce mode with no override in play:
//
//   - a request that no rule can fire on (no version change, no open canary: most
//     updates, and the validating webhook's view of a canary pdguard just pinned),
//   - the mutating webhook's canary partition for a plain version change, and
//   - the partition gate's answer to a promotion attempt (fastgate.go).
//
// A full topdown evaluation of those costs more than everything else a request does, and
// each webhook is called on every update of every guarded StatefulSet. Every other
// request, and every request once a policy directory module is loaded, goes through the
// Rego policy, which stays the definition: the fast path returns ok=false whenever it
// cannot be sure, and Options.CrossCheck (set by the policy and webhook tests, so the
// whole fixture, golden-message and fuzz corpora run through it) evaluates the policy
// behind every fast answer and fails the decision when the two differ.

// plainEnforce is framework.rego's plain_enforce: enforce mode, no override asked for.
func plainEnforce(in *Input) bool {
	if in.Settings.Enforcement != "enforce" {
		return false
	}
	if in.New.Annotations[in.Keys.OverrideReason] != "" {
		return false
	}
	newUsed, has := in.New.Annotations[in.Keys.OverrideUsed]
	oldUsed := ""
	if in.Old != nil {
		oldUsed = in.Old.Annotations[in.Keys.OverrideUsed]
	}
	return !has || newUsed == oldUsed
}

func isUpdate(in *Input) bool { return in.Operation == "UPDATE" && in.Old != nil }

// guardedVersionChange is lib.guarded_version_change.
func guardedVersionChange(in *Input) bool {
	return in.Change.VersionChanged && !in.Change.RevertsCanary && isUpdate(in)
}

// fastMutate is data.pdguard.framework.mutate_result for the requests described above.
func fastMutate(in *Input) (Mutation, bool) {
	if in == nil || !plainEnforce(in) {
		return Mutation{}, false
	}
	if !isUpdate(in) || (!in.Change.VersionChanged && !in.Change.RevertsCanary && !repinsCanary(in)) {
		// Every mutate rule and advisory needs an update with a version change, a revert,
		// or a template change under an open canary.
		return Mutation{Apply: true, Mode: "enforce"}, true
	}
	if !guardedVersionChange(in) || in.New.Replicas <= 1 {
		return Mutation{}, false
	}
	p := canaryPartition(in)
	fired := []Finding{{Rule: "canary-partition", Message: "pdguard " + partitionAction(in, p) + " " + canaryPlan(in, p)}}
	return Mutation{Partition: &p, RecordCanary: true, Fired: fired, Shown: fired, Apply: true, Mode: "enforce"}, true
}

// repinsCanary is when mutate.rego's canary-repin for a template change under an open
// canary can apply: the partition lowered together with a config change.
func repinsCanary(in *Input) bool {
	return in.Canary.Open && in.New.Partition < in.Old.Partition && len(in.Change.ConfigPaths) > 0
}

// fastValidate is data.pdguard.framework.validate_result when no violation or advisory
// can fire; any request on which one might goes to the policy.
func fastValidate(in *Input) (Validation, bool) {
	if in == nil || !plainEnforce(in) || invalidEnforcementAnnotation(in) {
		return Validation{}, false
	}
	if gateApplies(in) {
		// Every other violation and advisory needs a version change, which the gate excludes.
		return fastGate(in)
	}
	update, guarded := isUpdate(in), guardedVersionChange(in)
	switch {
	case in.Change.VersionChanged && update && len(in.Change.ConfigPaths) > 0, // bundled-config-and-version
		guarded && in.New.Replicas > 1 && in.New.Partition < desiredPartition(in),   // missing-canary
		guarded && (in.Change.VersionOrder == nil || *in.Change.VersionOrder == -1), // unreadable-version, downgrade
		guarded && in.New.Replicas <= 1 && in.Settings.SingleReplica == "deny":      // single-replica
		return Validation{}, false
	}
	return Validation{Allowed: true, Mode: "enforce"}, true
}

// invalidEnforcementAnnotation is when framework.rego's invalid-enforcement-annotation
// advisory fires.
func invalidEnforcementAnnotation(in *Input) bool {
	raw, has := in.New.Annotations[in.Keys.Enforcement]
	if !has || !isUpdate(in) {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "dryrun", "warn", "enforce":
		return false
	}
	return true
}

// desiredPartition is lib.desired_partition. At least one canary is subtracted, so the
// difference cannot overflow.
func desiredPartition(in *Input) int32 {
	return max(1, in.New.Replicas-max(1, in.Settings.CanaryReplicas))
}

// canaryPartition is lib.canary_partition.
func canaryPartition(in *Input) int32 {
	live := int32(0)
	if in.Canary.Open {
		live = in.Old.Partition
	}
	return max(desiredPartition(in), in.New.Partition, live)
}

func objectName(in *Input) string { return in.Namespace + "/" + in.Name }

// partitionAction is lib.partition_action.
func partitionAction(in *Input, p int32) string {
	if p != in.New.Partition {
		return fmt.Sprintf("sets spec.updateStrategy.rollingUpdate.partition of %s to %d (the request had %d)", objectName(in), p, in.New.Partition)
	}
	return fmt.Sprintf("keeps spec.updateStrategy.rollingUpdate.partition of %s at %d", objectName(in), p)
}

// canaryPlan is mutate.rego's canary_plan.
func canaryPlan(in *Input, p int32) string {
	from, to := in.Old.Image.Ref, in.New.Image.Ref
	if len(in.Change.ConfigPaths) > 0 {
		return fmt.Sprintf("for the image change from %s to %s, but this request also changes %s, which pdguard's validating webhook refuses with a version change: see its message for how to split the change",
			from, to, strings.Join(in.Change.ConfigPaths, ", "))
	}
	stable := stableImage(in)
	if p < in.New.Replicas {
		return fmt.Sprintf("so that the image change from %s to %s reaches only %s (ordinals %d and up), while the stable image %s stays on %s. Next: wait for the canary's replace-profile verdict (%s prints it; it must be Succeeded), then re-run the same helm upgrade to promote the other pods; or roll the canary back with pingdirectory.image.tag set back to %s (same helm upgrade, same -f values files).",
			from, to, podsText(in.Name, int64(p), int64(in.New.Replicas)), p, stable.Ref, podsText(in.Name, 0, int64(p)),
			verdictCommand(in, int64(in.New.Replicas)-1), stableTag(stable))
	}
	desired := desiredPartition(in)
	return fmt.Sprintf("so that no pod takes the image change from %s to %s yet: the partition is not below the %d replicas, so every pod stays on the stable image %s. To start the canary, set pingdirectory.workload.statefulSet.partition to %d (the same helm upgrade you ran, same -f values files) so that only %s updates, and promote once its replace-profile verdict is Succeeded.",
		from, to, in.New.Replicas, stable.Ref, desired, podsText(in.Name, int64(desired), int64(in.New.Replicas)))
}

// stableImage is lib.stable_image.
func stableImage(in *Input) Image {
	if in.Canary.StableImage.Ref != "" {
		return in.Canary.StableImage
	}
	return in.Old.Image
}

// stableTag is lib.stable_tag of the stable image.
func stableTag(img Image) string {
	if img.Tag != "" {
		return img.Tag
	}
	return img.Ref
}

// podsText is lib.pods: the pods with ordinals lo to hi-1, for messages.
func podsText(name string, lo, hi int64) string {
	switch {
	case hi-lo == 1:
		return fmt.Sprintf("pod %s-%d", name, lo)
	case hi <= lo:
		return "no pod"
	case hi-lo <= 3:
		names := make([]string, 0, hi-lo)
		for i := lo; i < hi; i++ {
			names = append(names, fmt.Sprintf("%s-%d", name, i))
		}
		return "pods " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("pods %s-%d to %s-%d", name, lo, name, hi-1)
}

// verdictCommand is lib.verdict_command.
func verdictCommand(in *Input, ordinal int64) string {
	return fmt.Sprintf("kubectl -n %s get pod %s-%d -o jsonpath='{.metadata.annotations.%s}'",
		in.Namespace, in.Name, ordinal, strings.ReplaceAll(in.Keys.ReplaceProfile, ".", `\.`))
}
