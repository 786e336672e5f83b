# The mutating webhook's decisions: the canary partition injected into a version change,
# and the live partition kept while a canary is open. The rules here only find: change is
# the one change a request needs, in every mode, and framework.rego decides whether it is
# applied, reported or lifted by an override.
#
# Modules from the policy directory may add warnings with
#   advisory contains {"rule": "...", "message": "..."} if { ... }
package pdguard.mutate

import data.pdguard.lib

# Rules open with input.x == constant conditions so that OPA's rule index skips them
# without evaluating their bodies: this runs on every admission request.
#
# The three definitions exclude each other (canary-partition needs a version change that is
# not a revert, the re-pin needs none, the revert form needs a revert), so at most one
# change applies to a request.

change := {
	"rule": "canary-partition",
	"partition": p,
	"record_canary": true,
	"close_canary": false,
	"message": sprintf("pdguard %s %s", [lib.partition_action(p), canary_plan(p)]),
} if {
	input.change.version_changed == true
	lib.guarded_version_change
	input.new.replicas > 1
	p := lib.canary_partition
}

change := {
	"rule": "canary-repin",
	"partition": p,
	"record_canary": false,
	"close_canary": false,
	"message": sprintf(
		"pdguard %s because a canary is open and this request changes the pod template (%s): only %s, the canary, is recreated with the change, so a profile fix can be tried there while the stable image %s stays on %s. The canary's earlier replace-profile verdict does not count for the new revision: wait for a new Succeeded verdict (%s prints it), then re-run the same helm upgrade to promote; or roll the canary back with pingdirectory.image.tag set back to %s (same helm upgrade, same -f values files).",
		[
			lib.partition_action(p),
			concat(", ", lib.list(input.change.config_paths)),
			lib.pods(p, input.new.replicas),
			lib.stable_image.ref,
			lib.pods(0, min([p, input.new.replicas])),
			lib.verdict_command(input.new.replicas - 1),
			lib.stable_tag,
		],
	),
} if {
	input.canary.open == true
	input.change.version_changed == false
	object.get(input.change, "reverts_canary", false) == false
	lib.is_update
	input.new.partition < input.old.partition
	count(lib.list(input.change.config_paths)) > 0
	p := input.old.partition
}

# Keeping the live partition on a revert matters: a larger one would leave the canary on the
# failed version, a smaller one would restart stable pods for nothing.
change := {
	"rule": "canary-repin",
	"partition": p,
	"record_canary": false,
	"close_canary": true,
	"message": sprintf(
		"pdguard %s and closes the canary, because the image goes back to the stable %s: %s returns to the stable image and the pods below the partition are left alone. Follow it with kubectl -n %s rollout status statefulset %s, and find out why the new version failed before trying it again.",
		[
			lib.partition_action(p),
			lib.stable_image.ref,
			lib.pods(p, input.new.replicas),
			input.namespace,
			input.name,
		],
	),
} if {
	input.change.reverts_canary == true
	lib.is_update
	p := input.old.partition
}

# A version change bundled with configuration is refused by the validating webhook, whose
# message explains it; the canary this mutation prepares never happens, so its plan would
# only mislead.
canary_plan(p) := sprintf(
	"for the image change from %s to %s, but this request also changes %s, which pdguard's validating webhook refuses with a version change: see its message for how to split the change",
	[input.old.image.ref, input.new.image.ref, concat(", ", lib.list(input.change.config_paths))],
) if count(lib.list(input.change.config_paths)) > 0

else := sprintf(
	"so that the image change from %s to %s reaches only %s (ordinals %d and up), while the stable image %s stays on %s. Next: wait for the canary's replace-profile verdict (%s prints it; it must be Succeeded), then re-run the same helm upgrade to promote the other pods; or roll the canary back with pingdirectory.image.tag set back to %s (same helm upgrade, same -f values files).",
	[
		input.old.image.ref,
		input.new.image.ref,
		lib.pods(p, input.new.replicas),
		p,
		lib.stable_image.ref,
		lib.pods(0, p),
		lib.verdict_command(input.new.replicas - 1),
		lib.stable_tag,
	],
) if {
	p < input.new.replicas
}

else := sprintf(
	"so that no pod takes the image change from %s to %s yet: the partition is not below the %d replicas, so every pod stays on the stable image %s. To start the canary, set pingdirectory.workload.statefulSet.partition to %d (the same helm upgrade you ran, same -f values files) so that only %s updates, and promote once its replace-profile verdict is Succeeded.",
	[
		input.old.image.ref,
		input.new.image.ref,
		input.new.replicas,
		lib.stable_image.ref,
		lib.desired_partition,
		lib.pods(lib.desired_partition, input.new.replicas),
	],
)

advisory contains {"rule": "single-replica", "message": msg} if {
	input.change.version_changed == true
	lib.guarded_version_change
	input.new.replicas <= 1
	msg := sprintf(
		"StatefulSet %s runs %d replica, so pdguard cannot hold back a canary for the image change from %s to %s: the only pod restarts into manage-profile replace-profile on the new version, which migrates it irreversibly. Take a backup before it restarts; to get a canary next time, first set pingdirectory.container.replicaCount to at least 2 with the tag unchanged, then change only pingdirectory.image.tag.",
		[lib.object_name, input.new.replicas, input.old.image.ref, input.new.image.ref],
	)
}
