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

# Messages lead with what was refused and why, then the facts, then the next step; what an
# operator needs only to dig deeper goes to details, which the audit record keeps.
violation contains {"rule": "bundled-config-and-version", "message": msg, "details": details} if {
	input.change.version_changed == true
	lib.is_update
	paths := input.change.config_paths
	is_array(paths)
	count(paths) > 0
	old_tag := lib.tag_or_ref(input.old.image)
	new_tag := lib.tag_or_ref(input.new.image)
	msg := sprintf(
		"pdguard refused StatefulSet %s: a version change goes alone, without config changes. The image tag goes from %s to %s with %s. %sNext: %sthe same helm upgrade (same -f values files) with pingdirectory.image.tag at %s; once all pods are Ready, set only pingdirectory.image.tag to %s.",
		[lib.object_name, old_tag, new_tag, concat(", ", paths), checksum_text(paths), rollback_first(paths), old_tag, new_tag],
	)
	details := [
		"Every restarted pod would run manage-profile replace-profile with both changes at once, an irreversible migration whose failure could not be pinned on either.",
		"helm history RELEASE lists the revisions; the last one with status deployed is the one to roll back to.",
	]
}

checksum_path := "spec.template.metadata.annotations[checksum/config]"

# The chart's checksum/config is the hash of the env ConfigMaps, which helm writes before
# the StatefulSet: the refusal does not undo them.
checksum_text(paths) := "checksum/config hashes the env ConfigMaps (pingdirectory.envs, global.envs): helm already wrote the new data, read by restarting pods. " if checksum_path in paths

else := ""

rollback_first(paths) := "helm rollback RELEASE <last deployed revision>; then " if checksum_path in paths

else := ""

violation contains {"rule": "missing-canary", "message": msg, "details": [patch_text]} if {
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
		"pdguard refused StatefulSet %s: an image change without a canary partition. It changes the image %s on %d replicas with partition %d (at least %d needed), so every pod would restart into replace-profile at once. pdguard's mutating webhook probably did not run: check kubectl get mutatingwebhookconfigurations and the pdguard pods. Next: the same helm upgrade you ran (same -f values files) with pingdirectory.workload.statefulSet.partition=%d.",
		[lib.object_name, from_to, input.new.replicas, input.new.partition, lib.desired_partition, n],
	)
	patch_text := sprintf("Or patch it directly: kubectl -n %s patch statefulset %s -p '%s'", [input.namespace, input.name, patch])
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

# pod_issue(i) is what the pod with ordinal i lacks, without its name, so that pods lacking
# the same are named together.
pod_issue(i) := "does not exist" if {
	count(pods_at_ordinal(i)) == 0
} else := concat("; ", issues) if {
	pod := pods_at_ordinal(i)[0]
	issues := array.concat(array.concat(revision_issue(pod), readiness_issue(pod)), verdict_issue(pod))
	count(issues) > 0
} else := "is not proven"

pod_problem(i) := sprintf("Pod %s %s", [lib.pod_name(i), pod_issue(i)]) if pod_issue(i) in object.keys(plural_issue)

else := sprintf("Pod %s: %s", [lib.pod_name(i), pod_issue(i)])

unproven := [i | some i in canary_ordinals; not proven(i)]

# The denial names the pods that lack the same thing together, at most max_named pods per
# problem, and as many problems as fit in max_message characters with the rest counted and
# the command that lists them: a canary of many pods would otherwise make a denial that helm
# prints on one line (twice, in helm 4) kilobytes long. The details, and so the audit
# record, keep every pod's full problem.
max_named := 3

max_message := 600

issues_in_order := [s |
	some k, i in unproven
	s := pod_issue(i)
	not issue_seen_before(k, s)
]

issue_seen_before(k, s) if {
	some j, i in unproven
	j < k
	pod_issue(i) == s
}

group_ordinals(s) := [i | some i in unproven; pod_issue(i) == s]

# The two problems without a colon read as a verb, so they agree with the pods they follow.
plural_issue := {"does not exist": "do not exist", "is not proven": "are not proven"}

group_text(s) := sprintf("Pod %s %s", [lib.pod_name(ords[0]), s]) if {
	s in object.keys(plural_issue)
	ords := group_ordinals(s)
	count(ords) == 1
} else := sprintf("%s %s", [names_text(group_ordinals(s)), plural_issue[s]]) if {
	s in object.keys(plural_issue)
} else := sprintf("%s: %s", [names_text(group_ordinals(s)), trim_right(s, ".")])

# Pods after the first are named by their ordinal, as -4, which they share the rest with.
names_text(ords) := sprintf("Pod %s", [lib.pod_name(ords[0])]) if {
	count(ords) == 1
} else := sprintf("Pods %s, %s", [lib.pod_name(ords[0]), concat(", ", [sprintf("-%d", [i]) | some i in array.slice(ords, 1, max_named)])])

group_texts := [group_text(s) | some s in issues_in_order]

# named(k) is how many pods the first k problems name.
named(k) := sum([min([count(group_ordinals(s)), max_named]) | some s in array.slice(issues_in_order, 0, k)])

more_pods(n) := "1 more pod" if n == 1

else := sprintf("%d more pods", [n])

unproven_tail(k) := "" if named(k) == count(unproven)

else := sprintf(". %s: see kubectl pdguard status %s -n %s", [more_pods(count(unproven) - named(k)), input.name, input.namespace])

gate_head := sprintf("pdguard refused to lower the partition of %s from %d to %d: the canary is not proven. ", [lib.object_name, input.old.partition, input.new.partition])

gate_next := sprintf(". Next: once Succeeded, re-run the same helm upgrade (same -f values files); if Failed, with pingdirectory.image.tag=%s.", [lib.stable_tag])

facts_length(k) := (sum([count(t) | some t in array.slice(group_texts, 0, k)]) + (2 * k)) - 2

room(k) := ((max_message - count(gate_head)) - count(gate_next)) - count(unproven_tail(k))

shown_groups := max([k |
	some k in numbers.range(1, count(group_texts))
	facts_length(k) <= room(k)
]) if {
	some k in numbers.range(1, count(group_texts))
	facts_length(k) <= room(k)
}

else := 1

cut(s, n) := s if count(s) <= n

else := concat("", [substring(s, 0, max([n, 60]) - 1), "…"])

unproven_text := concat("", [
	concat(". ", [cut(t, room(shown_groups)) | some t in array.slice(group_texts, 0, shown_groups)]),
	unproven_tail(shown_groups),
])

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
} else := [sprintf("verdict %s%s%s", [v.verdict, stale_text(pod), reason_text(v)])] if {
	v := pod.verdict
	v.verdict != "Succeeded"
} else := [sprintf("its Succeeded verdict is stale: it is about revision %s, not the update revision %s", [pod.verdict.revision, update_revision])] if {
	pod.evidence == "stale-revision"
} else := [sprintf("its Succeeded verdict is stale: it is about an earlier container (%s), not the running one (%s)", [pod.verdict.container_id, pod.container_id])] if {
	pod.evidence == "stale-container"
} else := ["no pdguard.io/replace-profile verdict yet"]

reason_text(v) := sprintf(": %s", [v.reason]) if v.reason != ""

else := ""

stale_text(pod) := " (recorded for an earlier revision)" if pod.evidence == "stale-revision"

else := " (recorded for an earlier container)" if {
	pod.evidence == "stale-container"
	pod.verdict.container_id != ""
}

else := ""

violation contains {"rule": "partition-gate", "message": msg, "details": details} if {
	input.canary.open == true
	input.change.version_changed == false
	gate_applies
	count(unproven) > 0
	canary := lib.pod_name(unproven[0])
	msg := concat("", [gate_head, unproven_text, gate_next])
	details := array.concat([pod_problem(i) | some i in unproven], [
		sprintf("%s would move to the update revision %s (image %s)", [lib.pods(input.new.partition, min([input.old.partition, input.new.replicas])), update_revision, input.new.image.ref]),
		sprintf("verdict: %s", [lib.verdict_command(unproven[0])]),
		sprintf("logs: kubectl -n %s logs %s -c %s, or pdguard's webhook scan-log", [input.namespace, canary, lib.product_container]),
		helm_rollback_text,
		lib.break_glass_text,
	])
}

# With no pod at or above the live partition there is no canary to prove, so only opening
# one (a partition that still spares the lower pods) is let through.
violation contains {"rule": "partition-gate", "message": msg, "details": details} if {
	input.canary.open == true
	input.change.version_changed == false
	gate_applies
	count(canary_ordinals) == 0
	input.new.partition < lib.desired_partition
	msg := sprintf(
		"pdguard refused to lower the partition of %s from %d to %d: no pod runs the new image. The partition is not below the %d replicas: no pod runs %s yet, so nothing proves replace-profile succeeds on it. Next: the same helm upgrade you ran (same -f values files) with pingdirectory.workload.statefulSet.partition=%d, so only %s updates as the canary; lower it further once its verdict is Succeeded.",
		[
			lib.object_name, input.old.partition, input.new.partition,
			input.new.replicas, input.new.image.ref,
			lib.desired_partition, lib.pods(lib.desired_partition, input.new.replicas),
		],
	)
	details := [
		sprintf("update revision: %s", [update_revision]),
		sprintf("verdict: %s", [lib.verdict_command(input.new.replicas - 1)]),
		helm_rollback_text,
		lib.break_glass_text,
	]
}

# A helm rollback to the revision that opened the canary sends exactly what the refused
# promotion sent (the canary's tag, the chart's partition), so no request tells the two apart:
# every gate denial says what happens to helm's automatic rollback.
helm_rollback_text := sprintf(
	"helm --atomic / --rollback-on-failure: helm's automatic rollback to the revision that opened the canary sends this same request and is refused too, so helm reports a failed rollback; nothing changed. Re-run the upgrade once the verdict is Succeeded, or go back with helm rollback RELEASE <revision before the canary> (or pingdirectory.image.tag=%s), which is let through as a revert.",
	[lib.stable_tag],
)

violation contains {"rule": "downgrade", "message": msg} if {
	input.change.version_order == -1
	input.change.version_changed == true
	lib.guarded_version_change
	input.change.version_order == -1
	stable := lib.stable_image
	msg := sprintf(
		"pdguard refused StatefulSet %s: a downgrade cannot be done in place. It changes PingDirectory from %s (%s) to the lower version %s (%s), and replace-profile has already migrated the data to %s. Next: keep pingdirectory.image.tag at %s, or restore the older version from a backup taken with it.",
		[
			lib.object_name, lib.version_text(stable), stable.ref,
			lib.version_text(input.new.image), input.new.image.ref,
			lib.version_text(stable), lib.stable_tag,
		],
	)
}

violation contains {"rule": "single-replica", "message": msg, "details": [lib.break_glass_text]} if {
	input.settings.single_replica == "deny"
	input.change.version_changed == true
	lib.guarded_version_change
	input.new.replicas <= 1
	input.settings.single_replica == "deny"
	msg := sprintf(
		"pdguard refused StatefulSet %s: a new image on %d replica leaves no pod for a canary. It changes the image %s, so the whole directory would migrate through replace-profile at once, irreversibly. Next: the same helm upgrade you ran (same -f values files) with pingdirectory.image.tag unchanged and pingdirectory.container.replicaCount=2; once the new pod is Ready, change only pingdirectory.image.tag.",
		[lib.object_name, input.new.replicas, from_to],
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
