# The validating webhook's decisions. Every rule adds to the partial sets violation and
# advisory, so a module from the policy directory extends the policy by declaring
#
#   package pdguard.validate
#
#   violation contains {"rule": "my-rule", "message": "..."} if { ... }
#   advisory contains {"rule": "my-advice", "message": "..."} if { ... }
#
# and its findings go through the same modes and override as the built-in ones: the rules
# here only find; framework.rego decides what a finding does in each mode.
#
# Rules open with input.x == constant conditions so that OPA's rule index skips them
# without evaluating their bodies: this runs on every admission request.
package pdguard.validate

import data.pdguard.lib

from_to := sprintf("from %s to %s", [input.old.image.ref, input.new.image.ref])

update_revision := input.old.update_revision

soak_seconds := object.get(input.settings, "soak_seconds", 0)

violation contains {"rule": "bundled-config-and-version", "message": msg} if {
	input.change.version_changed == true
	lib.is_update
	paths := input.change.config_paths
	is_array(paths)
	count(paths) > 0
	old_tag := lib.tag_or_ref(input.old.image)
	msg := sprintf(
		"the update of StatefulSet %s changes the PingDirectory image %s together with %s (%s): a version change must never be combined with a configuration change, because every restarted pod runs manage-profile replace-profile with both at once, an irreversible migration whose failure could not be pinned on either. Split it: first roll out the configuration change alone with the current tag %s (helm upgrade ... --set pingdirectory.image.tag=%s), wait until every pod is updated and Ready, then change only the tag to %s.",
		[lib.object_name, from_to, fields_text(paths), concat(", ", paths), old_tag, old_tag, lib.tag_or_ref(input.new.image)],
	)
}

fields_text(paths) := "1 other field" if count(paths) == 1

else := sprintf("%d other fields", [count(paths)])

violation contains {"rule": "missing-canary", "message": msg} if {
	input.change.version_changed == true
	lib.guarded_version_change
	input.new.replicas > 1
	input.new.partition < lib.desired_partition
	n := lib.canary_partition
	patch := sprintf(
		`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":%d}},"template":{"spec":{"containers":[{"name":"%s","image":"%s"}]}}}}`,
		[n, lib.product_container, input.new.image.ref],
	)
	msg := sprintf(
		"the update of StatefulSet %s changes the image %s on %d replicas without a canary partition (%s is %d, it must be at least %d), so every pod would restart into replace-profile on the new version. pdguard's mutating webhook sets the partition, so it probably did not run (failurePolicy Ignore, or the webhook was unreachable): check kubectl get mutatingwebhookconfigurations and the pdguard pods. To go ahead, set the partition to %d in the same change: add --set pingdirectory.workload.statefulSet.partition=%d to the helm upgrade, or run kubectl -n %s patch statefulset %s -p '%s'.",
		[
			lib.object_name, from_to, input.new.replicas, lib.partition_field, input.new.partition,
			lib.desired_partition, n, n, input.namespace, input.name, patch,
		],
	)
}

# Partition gate: lowering the partition of an open canary promotes the update revision to
# more pods, which is only safe once every pod already on it proved replace-profile works.

gate_applies if {
	lib.is_update
	input.canary.open == true
	object.get(input.change, "version_changed", false) == false
	input.new.partition < input.old.partition
}

canary_ordinals := lib.ordinals(input.old.partition, input.new.replicas)

pods_at_ordinal(i) := [p | some p in lib.list(input.pods); p.ordinal == i]

# Go's rollout model decides which pods are proven (the evidence controller reads the same
# model); these rules only say why a pod is not. Proof is stated positively so that a field
# missing from the input can only deny.
proven(i) if {
	some pod in pods_at_ordinal(i)
	pod.proven == true
}

pod_problem(i) := sprintf("Pod %s/%s does not exist", [input.namespace, lib.pod_name(i)]) if {
	count(pods_at_ordinal(i)) == 0
} else := sprintf("Pod %s/%s: %s", [input.namespace, pod.name, concat("; ", issues)]) if {
	pod := pods_at_ordinal(i)[0]
	issues := array.concat(array.concat(revision_issue(pod), readiness_issue(pod)), verdict_issue(pod))
	count(issues) > 0
} else := sprintf("Pod %s/%s is not proven", [input.namespace, lib.pod_name(i)])

revision_issue(pod) := [] if pod.on_update_revision == true

# Go leaves the update revision empty while status.observedGeneration lags the spec: the
# revision the status names then belongs to an earlier change.
else := ["the StatefulSet controller has not observed the latest change yet (status.observedGeneration is behind metadata.generation), so no pod can be proven on its revision: retry in a few seconds"] if update_revision == ""

else := [sprintf("runs revision %s, not the update revision %s", [pod.revision, update_revision])]

readiness_issue(pod) := [] if {
	pod.soaked == true
} else := [sprintf("not Ready for %ds yet (ready %ds)", [soak_seconds, pod.ready_seconds])] if {
	pod.ready == true
} else := ["not Ready"]

verdict_issue(pod) := [] if {
	pod.evidence == "current"
	pod.verdict.verdict == "Succeeded"
} else := [sprintf("its pdguard.io/replace-profile annotation cannot be read (%s)", [pod.verdict_error])] if {
	pod.evidence == "unreadable"
} else := [sprintf("its pdguard.io/replace-profile verdict was not issued by pdguard (%s), so it proves nothing; pdguard replaces it with its own judgement", [pod.verdict_error])] if {
	pod.evidence == "untrusted"
} else := [sprintf("replace-profile verdict is %s%s%s", [v.verdict, reason_text(v), stale_text(pod)])] if {
	v := pod.verdict
	v.verdict != "Succeeded"
} else := [sprintf("its Succeeded verdict is stale: it is about revision %s, not the update revision %s", [pod.verdict.revision, update_revision])] if {
	pod.evidence == "stale-revision"
} else := [sprintf("its Succeeded verdict is stale: it is about an earlier container (%s), not the running one (%s)", [pod.verdict.container_id, pod.container_id])] if {
	pod.evidence == "stale-container"
} else := ["no pdguard.io/replace-profile verdict yet"]

reason_text(v) := sprintf(" (reason: %s)", [v.reason]) if v.reason != ""

else := ""

stale_text(pod) := ", recorded for an earlier revision" if pod.evidence == "stale-revision"

else := ", recorded for an earlier container" if {
	pod.evidence == "stale-container"
	pod.verdict.container_id != ""
}

else := ""

violation contains {"rule": "partition-gate", "message": msg} if {
	input.canary.open == true
	input.change.version_changed == false
	gate_applies
	unproven := [i | some i in canary_ordinals; not proven(i)]
	count(unproven) > 0
	canary := lib.pod_name(unproven[0])
	msg := sprintf(
		"lowering %s of StatefulSet %s from %d to %d would move %s to the update revision %s (image %s), but the canary is not proven yet. %s. Next: wait and re-run the same command once the canary's replace-profile verdict is Succeeded (%s prints it); inspect the canary with kubectl -n %s logs %s -c %s or pdguard's webhook scan-log; if replace-profile failed, set the image tag back to %s to roll the canary back; %s.",
		[
			lib.partition_field, lib.object_name, input.old.partition, input.new.partition,
			lib.pods(input.new.partition, min([input.old.partition, input.new.replicas])), update_revision, input.new.image.ref,
			concat(". ", [pod_problem(i) | some i in unproven]),
			lib.verdict_command(unproven[0]), input.namespace, canary, lib.product_container,
			lib.stable_tag, lib.break_glass_text,
		],
	)
}

# With no pod at or above the live partition there is no canary to prove, so only opening
# one (a partition that still spares the lower pods) is let through.
violation contains {"rule": "partition-gate", "message": msg} if {
	input.canary.open == true
	input.change.version_changed == false
	gate_applies
	count(canary_ordinals) == 0
	input.new.partition < lib.desired_partition
	msg := sprintf(
		"lowering %s of StatefulSet %s from %d to %d would move %s to the update revision %s (image %s) although no pod runs it yet (the partition is not below the %d replicas), so nothing proves that replace-profile succeeds on it. Lower the partition to %d first (helm upgrade ... --set pingdirectory.workload.statefulSet.partition=%d) so that only %s updates as the canary, wait for its Succeeded verdict (%s prints it), then lower it further; %s.",
		[
			lib.partition_field, lib.object_name, input.old.partition, input.new.partition,
			lib.pods(input.new.partition, min([input.old.partition, input.new.replicas])), update_revision, input.new.image.ref, input.new.replicas,
			lib.desired_partition, lib.desired_partition,
			lib.pods(lib.desired_partition, input.new.replicas),
			lib.verdict_command(input.new.replicas - 1), lib.break_glass_text,
		],
	)
}

violation contains {"rule": "downgrade", "message": msg} if {
	input.change.version_order == -1
	input.change.version_changed == true
	lib.guarded_version_change
	input.change.version_order == -1
	stable := lib.stable_image
	msg := sprintf(
		"the update of StatefulSet %s changes PingDirectory from version %s (%s) to the lower version %s (%s), but PingDirectory cannot be downgraded in place: replace-profile has already migrated the server's data to %s. Keep the tag %s, or restore the older version from a backup taken with it.",
		[
			lib.object_name, lib.version_text(stable), stable.ref,
			lib.version_text(input.new.image), input.new.image.ref,
			lib.version_text(stable), lib.stable_tag,
		],
	)
}

violation contains {"rule": "single-replica", "message": msg} if {
	input.settings.single_replica == "deny"
	input.change.version_changed == true
	lib.guarded_version_change
	input.new.replicas <= 1
	input.settings.single_replica == "deny"
	msg := sprintf(
		"the update of StatefulSet %s changes the image %s but it runs %d replica, so there is no pod to try manage-profile replace-profile on before the whole directory is migrated, irreversibly. Scale to at least 2 replicas first with the current tag (helm upgrade ... --set pingdirectory.container.replicaCount=2), wait for the new pod to be Ready, then change only the tag; %s.",
		[lib.object_name, from_to, input.new.replicas, lib.break_glass_text],
	)
}

advisory contains {"rule": "unreadable-version", "message": msg} if {
	input.change.version_order == null
	input.change.version_changed == true
	lib.guarded_version_change
	msg := sprintf(
		"the downgrade check did not apply to the update of StatefulSet %s %s, because %s. Make sure the new version is not lower than the running one: PingDirectory cannot be downgraded in place.",
		[lib.object_name, from_to, unreadable_text],
	)
}

unreadable_images := [sprintf("%s (tag %s)", [img.ref, lib.tag_or_ref(img)]) |
	some img in [lib.stable_image, input.new.image]
	not img.version.known
]

unreadable_text := "pdguard could not compare the two versions" if count(unreadable_images) == 0

else := sprintf("no PingDirectory version can be read from %s", [concat(" or ", unreadable_images)])
