# Helpers shared by the mutate and validate rules: the canary partition, the images and
# the wording both phases reuse so the two webhooks never disagree about a rollout. The
# effective mode and the override are worked out in framework.rego, not here.
package pdguard.lib

# The product container's name (the --container flag) and pdguard's annotation keys come
# from Go, which owns them.
product_container := input.settings.container

default is_update := false

is_update if {
	input.operation == "UPDATE"
	input.old != null
}

# Go sends null for empty slices; iterating null would silently yield nothing in some
# places and fail in others, so every list the policy reads goes through here.
list(x) := x if is_array(x)

else := []

object_name := sprintf("%s/%s", [input.namespace, input.name])

pod_name(i) := sprintf("%s-%d", [input.name, i])

# ordinals(lo, hi) is [lo, hi); numbers.range would count down when lo > hi.
ordinals(lo, hi) := numbers.range(lo, hi - 1) if lo < hi

else := []

# pods(lo, hi) names the pods with ordinals lo to hi-1, for messages.
pods(lo, hi) := sprintf("pod %s-%d", [input.name, lo]) if hi - lo == 1

else := "no pod" if hi <= lo

else := concat("", ["pods ", concat(", ", [pod_name(i) | some i in numbers.range(lo, hi - 1)])]) if hi - lo <= 3

# A range keeps a message about a large StatefulSet short.
else := sprintf("pods %s to %s", [pod_name(lo), pod_name(hi - 1)])

# verdict_command(i) prints the replace-profile verdict of the pod with ordinal i. The
# dots of the key are escaped with split and concat: OPA's replace builds a 40 KB
# strings.Replacer on every call, a twentieth of what a mutating request allocated.
verdict_command(i) := sprintf(
	"kubectl -n %s get pod %s-%d -o jsonpath='{.metadata.annotations.%s}'",
	[input.namespace, input.name, i, concat("\\.", split(input.keys.replace_profile, "."))],
)

# The groups (and user names) that may override pdguard's rules, for messages.
override_groups := sort({g | some g in list(input.settings.override_groups)})

groups_text := sprintf("[%s]", [concat(", ", override_groups)])

break_glass_text := "break-glass overrides are disabled on this cluster (no override groups are configured)" if count(override_groups) == 0

else := sprintf(
	"break-glass: a member of %s can run kubectl -n %s annotate --overwrite statefulset %s %s=\"<ticket and why>\" and retry (the override is used up by the change it lets through)",
	[groups_text, input.namespace, input.name, input.keys.override_reason],
)

# Images.

# The canary record or a pod below the partition knows the stable image better than Old,
# whose template already carries the canary's image while a canary is open.
stable_image := input.canary.stable_image if input.canary.stable_image.ref != ""

else := input.old.image

tag_or_ref(img) := img.tag if img.tag != ""

else := img.ref

version_text(img) := img.version.text if img.version.text != ""

else := tag_or_ref(img)

stable_tag := stable_image.tag if stable_image.tag != ""

else := stable_image.ref

# A guarded version change is one that starts or moves a canary; setting an open canary
# back to the stable image is the way out of a failed canary, so it is never blocked.
default guarded_version_change := false

guarded_version_change if {
	input.change.version_changed == true
	object.get(input.change, "reverts_canary", false) == false
	is_update
}

# Partition.

# At least 1 so that ordinal 0, the replication seed, is never the canary; canary_replicas
# below 1 counts as 1.
desired_partition := max([1, input.new.replicas - max([1, object.get(input.settings, "canary_replicas", 1)])])

# A larger partition from the user, or the live one of an open canary, is kept.
canary_partition := max([desired_partition, input.new.partition, {true: input.old.partition, false: 0}[input.canary.open]])

partition_field := "spec.updateStrategy.rollingUpdate.partition"

# What a mutation does to the partition, phrased for the user (requested value included
# so the user sees that the chart's partition: 0 was replaced).
partition_action(p) := sprintf(
	"sets spec.updateStrategy.rollingUpdate.partition of %s to %d (the request had %d)",
	[object_name, p, input.new.partition],
) if p != input.new.partition

else := sprintf("keeps spec.updateStrategy.rollingUpdate.partition of %s at %d", [object_name, p])
