package pdguard.validate_test

import data.pdguard.fixtures
import data.pdguard.framework

allowed_quietly(r) if {
	r.allowed
	r.denials == []
	r.warnings == []
	r.violations == []
}

denied_by(r, rule) if {
	not r.allowed
	fixtures.rules(r.denials) == [rule]
	r.denials == r.violations
}

# CREATE

test_create_fires_nothing if {
	r := framework.validate_result with input as object.union(fixtures.create, {
		"new": {"image": fixtures.older_image, "replicas": 1},
		"change": {"version_changed": true, "config_paths": ["spec.replicas"], "version_order": -1},
		"settings": {"single_replica": "deny"},
	})
	allowed_quietly(r)
	r.mode == "enforce"
	not r.overridden
}

# bundled-config-and-version

test_a_version_change_bundled_with_config_lists_every_path_and_how_to_split if {
	r := framework.validate_result with input as object.union(fixtures.version_change_mutated, {"change": {"config_paths": [
		"spec.replicas",
		"spec.template.spec.containers[pingdirectory].env[MAX_HEAP_SIZE]",
	]}})
	denied_by(r, "bundled-config-and-version")
	msg := r.denials[0].message
	contains(msg, "StatefulSet ping/pd")
	startswith(msg, "pdguard refused StatefulSet ping/pd: a version change goes alone, without config changes. ")
	contains(msg, "The image tag goes from 10.1.0.0-latest to 10.2.0.0-latest with spec.replicas, spec.template.spec.containers[pingdirectory].env[MAX_HEAP_SIZE].")
	contains(msg, "the same helm upgrade (same -f values files) with pingdirectory.image.tag at 10.1.0.0-latest")
	contains(msg, "set only pingdirectory.image.tag to 10.2.0.0-latest")
	not contains(msg, "helm rollback")
	not contains(msg, "pingdirectory.envs")
}

test_a_bundled_checksum_change_says_the_configmaps_are_already_written if {
	r := framework.validate_result with input as object.union(fixtures.version_change_mutated, {"change": {"config_paths": [
		"spec.template.metadata.annotations[checksum/config]",
	]}})
	denied_by(r, "bundled-config-and-version")
	msg := r.denials[0].message
	hash := indexof(msg, "checksum/config hashes the env ConfigMaps (pingdirectory.envs, global.envs)")
	written := indexof(msg, "helm already wrote the new data, read by restarting pods")
	rollback := indexof(msg, "helm rollback RELEASE <last deployed revision>")
	hash > 0
	written > hash
	rollback > written
}

test_a_version_change_alone_is_not_bundled if {
	r := framework.validate_result with input as fixtures.version_change_mutated
	allowed_quietly(r)
}

test_a_config_change_alone_is_not_bundled if {
	r := framework.validate_result with input as object.union(fixtures.request, {"change": {"config_paths": ["spec.replicas"]}})
	allowed_quietly(r)
}

# missing-canary

test_a_version_change_without_a_partition_is_denied_with_the_partition_to_set if {
	r := framework.validate_result with input as object.union(fixtures.version_change, {"phase": "validate"})
	denied_by(r, "missing-canary")
	msg := r.denials[0].message
	startswith(msg, "pdguard refused StatefulSet ping/pd: an image change without a canary partition. ")
	contains(msg, "on 2 replicas with partition 0 (at least 1 needed)")
	contains(msg, "mutatingwebhookconfigurations")
	contains(msg, "(same -f values files) with pingdirectory.workload.statefulSet.partition=1")
	contains(r.denials[0].details[0], `kubectl -n ping patch statefulset pd -p '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}},"template":{"spec":{"containers":[{"name":"pingdirectory","image":"pingidentity/pingdirectory:10.2.0.0-latest"}]}}}}'`)
}

test_the_missing_canary_fix_patches_the_configured_container if {
	r := framework.validate_result with input as object.union(fixtures.version_change, {"settings": {"container": "directory"}})
	denied_by(r, "missing-canary")
	contains(r.denials[0].details[0], `"containers":[{"name":"directory","image":"pingidentity/pingdirectory:10.2.0.0-latest"}]`)
}

test_the_missing_partition_follows_the_canary_replicas_setting if {
	r := framework.validate_result with input as object.union(fixtures.version_change, {
		"old": {"replicas": 5},
		"new": {"replicas": 5, "partition": 3},
		"settings": {"canary_replicas": 1},
	})
	denied_by(r, "missing-canary")
	contains(r.denials[0].message, "on 5 replicas with partition 3 (at least 4 needed)")
}

test_a_revert_needs_no_canary if {
	r := framework.validate_result with input as object.union(fixtures.revert, {"new": {"partition": 1}})
	allowed_quietly(r)
}

test_a_single_replica_cannot_miss_a_canary if {
	r := framework.validate_result with input as object.union(fixtures.version_change, {"old": {"replicas": 1}, "new": {"replicas": 1}})
	allowed_quietly(r)
}

# partition-gate

test_promotion_of_a_proven_canary_is_allowed if {
	r := framework.validate_result with input as fixtures.promotion
	allowed_quietly(r)
}

test_promotion_without_a_verdict_is_denied_with_what_to_do if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": null}), "none")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	msg := r.denials[0].message
	startswith(msg, "pdguard refused to lower the partition of ping/pd from 1 to 0: the canary is not proven.")
	contains(msg, "Pod pd-1: no pdguard.io/replace-profile verdict yet.")
	contains(msg, "Next: once Succeeded, re-run the same helm upgrade (same -f values files); if Failed, with pingdirectory.image.tag=10.1.0.0-latest.")
	details := concat("\n", r.denials[0].details)
	contains(details, "the update revision rev-next")
	contains(details, "kubectl -n ping get pod pd-1 -o jsonpath=")
	contains(details, "kubectl -n ping logs pd-1 -c pingdirectory")
	contains(details, "webhook scan-log")
	contains(details, "helm's automatic rollback to the revision that opened the canary sends this same request and is refused too")
	contains(details, "helm rollback RELEASE <revision before the canary> (or pingdirectory.image.tag=10.1.0.0-latest)")
	contains(details, "a member of [pdguard-admins] can run kubectl -n ping annotate --overwrite statefulset pd pdguard.io/override-reason=")
}

test_a_failed_canary_reports_the_verdict_and_reason if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": {"verdict": "Failed", "reason": "manage-profile replace-profile exited 1"}}), "current")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "Pod pd-1: verdict Failed: manage-profile replace-profile exited 1.")
}

test_a_verdict_for_an_earlier_revision_is_stale if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": {"revision": "rev-older"}}), "stale-revision")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "its Succeeded verdict is stale: it is about revision rev-older, not the update revision rev-next")
}

test_a_verdict_for_an_earlier_container_is_stale if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"container_id": "containerd://restarted"}), "stale-container")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "it is about an earlier container (containerd://canary-1), not the running one (containerd://restarted)")
}

test_a_failed_verdict_for_an_earlier_revision_says_so if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": {"verdict": "Failed", "revision": "rev-older"}}), "stale-revision")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	contains(r.denials[0].message, "verdict Failed (recorded for an earlier revision)")
}

test_an_unreadable_verdict_reports_the_error if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": null, "verdict_error": "invalid character 'x' looking for beginning of value"}), "unreadable")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "its pdguard.io/replace-profile annotation cannot be read (invalid character 'x' looking for beginning of value)")
}

test_a_verdict_pdguard_did_not_issue_proves_nothing if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict_error": "its signature does not match: it was written or changed by someone other than pdguard"}), "untrusted")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "Pod pd-1: its pdguard.io/replace-profile verdict was not issued by pdguard (its signature does not match")
}

test_a_canary_that_is_not_ready_is_not_proven if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"ready": false, "ready_seconds": 0, "soaked": false}), "current")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "Pod pd-1: not Ready.")
}

test_a_canary_still_soaking_is_not_proven if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"ready_seconds": 12, "soaked": false}), "current")
	r := framework.validate_result with input as object.union(fixtures.with_pod(fixtures.promotion, pod), {"settings": {"soak_seconds": 30}})
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "Pod pd-1: not Ready for 30s yet (ready 12s).")
}

test_a_canary_on_another_revision_lists_every_missing_piece if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"revision": "rev-stable", "on_update_revision": false, "ready_seconds": 5, "soaked": false, "verdict": null}), "none")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "Pod pd-1: runs revision rev-stable, not the update revision rev-next; not Ready for 60s yet (ready 5s); no pdguard.io/replace-profile verdict yet.")
}

test_a_missing_canary_pod_is_named if {
	r := framework.validate_result with input as object.union(fixtures.promotion, {"pods": [fixtures.stable_pod(0)]})
	denied_by(r, "partition-gate")
	contains(r.denials[0].message, "Pod pd-1 does not exist.")
}

test_every_canary_must_be_proven if {
	req := object.union(fixtures.promotion, {
		"old": {"replicas": 4, "partition": 2},
		"new": {"replicas": 4, "partition": 0},
		"pods": [
			fixtures.stable_pod(0),
			fixtures.stable_pod(1),
			fixtures.canary_pod(2),
			fixtures.unproven(object.union(fixtures.canary_pod(3), {"verdict": {"verdict": "InProgress"}}), "current"),
		],
	})
	r := framework.validate_result with input as req
	denied_by(r, "partition-gate")
	msg := r.denials[0].message
	contains(concat("\n", r.denials[0].details), "pods pd-0, pd-1 would move to the update revision")
	r.denials[0].details[0] == "Pod pd-3: verdict InProgress"
	contains(msg, "Pod pd-3: verdict InProgress.")
	not contains(msg, "Pod pd-2")

	proven := framework.validate_result with input as fixtures.with_pod(req, fixtures.canary_pod(3))
	allowed_quietly(proven)
}

test_a_verdict_missing_from_the_input_cannot_prove_anything if {
	pod := object.remove(fixtures.canary_pod(1), {"verdict", "proven"})
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	denied_by(r, "partition-gate")
}

test_the_gate_needs_an_open_canary if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": null}), "none")
	r := framework.validate_result with input as object.union(fixtures.with_pod(fixtures.promotion, pod), {"canary": {"open": false}})
	allowed_quietly(r)
}

test_the_gate_needs_a_lower_partition if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": null}), "none")
	r := framework.validate_result with input as object.union(fixtures.with_pod(fixtures.promotion, pod), {"new": {"partition": 1}})
	allowed_quietly(r)
}

test_with_no_pod_on_the_update_revision_only_opening_a_canary_is_allowed if {
	req := object.union(fixtures.promotion, {
		"old": {"replicas": 3, "partition": 3},
		"new": {"replicas": 3, "partition": 0},
		"pods": [fixtures.stable_pod(0), fixtures.stable_pod(1), fixtures.stable_pod(2)],
	})
	r := framework.validate_result with input as req
	denied_by(r, "partition-gate")
	startswith(r.denials[0].message, "pdguard refused to lower the partition of ping/pd from 3 to 0: no pod runs the new image. The partition is not below the 3 replicas: ")
	contains(r.denials[0].message, "no pod runs pingidentity/pingdirectory:10.2.0.0-latest yet")
	contains(r.denials[0].message, "with pingdirectory.workload.statefulSet.partition=2, so only pod pd-2 updates as the canary")

	opening := framework.validate_result with input as object.union(req, {"new": {"partition": 2}})
	allowed_quietly(opening)
}

# downgrade

test_a_downgrade_is_denied if {
	r := framework.validate_result with input as object.union(fixtures.version_change_mutated, {
		"new": {"image": fixtures.older_image},
		"change": {"version_order": -1},
	})
	denied_by(r, "downgrade")
	msg := r.denials[0].message
	startswith(msg, "pdguard refused StatefulSet ping/pd: a downgrade cannot be done in place. ")
	contains(msg, "changes PingDirectory from 10.1.0.0 (pingidentity/pingdirectory:10.1.0.0-latest) to the lower version 9.3.0.0 (pingidentity/pingdirectory:9.3.0.0-latest), and replace-profile has already migrated the data to 10.1.0.0")
	contains(msg, "keep pingdirectory.image.tag at 10.1.0.0-latest, or restore the older version from a backup")
}

test_an_upgrade_is_not_a_downgrade if {
	r := framework.validate_result with input as object.union(fixtures.version_change_mutated, {"change": {"version_order": 1}})
	allowed_quietly(r)
}

test_reverting_a_canary_to_the_lower_stable_version_is_allowed if {
	r := framework.validate_result with input as object.union(fixtures.revert, {"new": {"partition": 1}, "change": {"version_order": 0}})
	allowed_quietly(r)
}

test_an_unreadable_version_is_an_advisory_naming_the_tag if {
	r := framework.validate_result with input as object.union(fixtures.version_change_mutated, {
		"new": {"image": fixtures.edge_image},
		"change": {"version_order": null},
	})
	r.allowed
	r.violations == []
	fixtures.rules(r.warnings) == ["unreadable-version"]
	contains(r.warnings[0].message, "the downgrade check did not apply")
	contains(r.warnings[0].message, "no PingDirectory version can be read from pingidentity/pingdirectory:edge (tag edge)")
}

# single-replica

test_a_single_replica_version_change_is_denied_when_configured if {
	r := framework.validate_result with input as object.union(fixtures.version_change, {
		"old": {"replicas": 1},
		"new": {"replicas": 1},
		"settings": {"single_replica": "deny"},
	})
	denied_by(r, "single-replica")
	startswith(r.denials[0].message, "pdguard refused StatefulSet ping/pd: a new image on 1 replica leaves no pod for a canary. ")
	contains(r.denials[0].message, "pingdirectory.container.replicaCount=2")
}

test_a_single_replica_version_change_is_only_warned_about_by_default if {
	r := framework.validate_result with input as object.union(fixtures.version_change, {"old": {"replicas": 1}, "new": {"replicas": 1}})
	allowed_quietly(r)
}

# Modes

test_warn_mode_allows_and_says_what_would_be_denied if {
	r := framework.validate_result with input as fixtures.enforcement(object.union(fixtures.version_change, {"phase": "validate"}), "warn")
	r.allowed
	r.mode == "warn"
	r.denials == []
	fixtures.rules(r.violations) == ["missing-canary"]
	fixtures.rules(r.warnings) == ["missing-canary"]
	startswith(r.warnings[0].message, "pdguard would deny: pdguard refused StatefulSet ping/pd")
}

test_dryrun_mode_allows_and_says_nothing if {
	r := framework.validate_result with input as fixtures.enforcement(
		object.union(fixtures.version_change, {"new": {"image": fixtures.edge_image}, "change": {"version_order": null}}),
		"dryrun",
	)
	r.allowed
	r.mode == "dryrun"
	r.denials == []
	r.warnings == []
	fixtures.rules(r.violations) == ["missing-canary"]
}

test_advisories_are_warnings_in_enforce_mode if {
	r := framework.validate_result with input as object.union(fixtures.version_change, {
		"new": {"image": fixtures.edge_image},
		"change": {"version_order": null},
	})
	not r.allowed
	fixtures.rules(r.warnings) == ["unreadable-version"]
}

# Override

test_an_authorized_override_turns_violations_into_warnings if {
	r := framework.validate_result with input as fixtures.as_admin(fixtures.overriding(
		object.union(fixtures.version_change, {"change": {"config_paths": ["spec.replicas"]}}),
		"INC-42 restore from backup",
	))
	r.allowed
	r.overridden
	r.denials == []
	fixtures.rules(r.violations) == ["bundled-config-and-version", "missing-canary"]
	fixtures.rules(r.warnings) == ["override", "bundled-config-and-version", "missing-canary"]
	startswith(r.warnings[0].message, "overridden by bob (reason: INC-42 restore from backup): pdguard's rules are lifted for this change of StatefulSet ping/pd (bob may override through pdguard-admins), so 2 violation(s)")
	contains(r.warnings[0].message, "The override is used up by this change")
	startswith(r.warnings[1].message, "overridden by bob (reason: INC-42 restore from backup): pdguard refused StatefulSet ping/pd")
}

test_an_override_used_by_the_mutating_webhook_counts_for_this_change if {
	change := fixtures.as_admin(object.union(fixtures.version_change, {"change": {"config_paths": ["spec.replicas"]}}))
	used := json.marshal({"reason": "INC-42 restore from backup", "user": "bob", "at": "2026-11-25T12:00:00Z"})
	r := framework.validate_result with input as object.union(change, {"new": {"annotations": {"pdguard.io/override-used": used}}})
	r.allowed
	r.overridden
	startswith(r.warnings[0].message, "overridden by bob (reason: INC-42 restore from backup)")
}

test_an_override_used_by_an_earlier_change_does_not_count_again if {
	change := fixtures.as_admin(object.union(fixtures.version_change, {"change": {"config_paths": ["spec.replicas"]}}))
	used := json.marshal({"reason": "INC-42 restore from backup", "user": "bob", "at": "2026-11-25T12:00:00Z"})
	r := framework.validate_result with input as object.union(change, {
		"new": {"annotations": {"pdguard.io/override-used": used}},
		"old": {"annotations": {"pdguard.io/override-used": used}},
	})
	not r.allowed
	not r.overridden
}

test_an_override_is_authorized_by_user_name_too if {
	r := framework.validate_result with input as object.union(
		fixtures.overriding(object.union(fixtures.version_change, {"phase": "validate"}), "hotfix"),
		{"settings": {"override_groups": ["alice"]}},
	)
	r.allowed
	r.overridden
}

test_an_unauthorized_override_is_ignored_and_every_denial_says_why if {
	r := framework.validate_result with input as fixtures.overriding(
		object.union(fixtures.version_change, {"change": {"config_paths": ["spec.replicas"]}}),
		"hotfix",
	)
	not r.allowed
	not r.overridden
	count(r.denials) == 2
	every d in r.denials {
		endswith(d.message, "The pdguard.io/override-reason annotation was ignored because user alice is not in groups [pdguard-admins].")
	}
	every v in r.violations {
		not contains(v.message, "was ignored")
	}
}

test_an_empty_override_reason_is_no_override if {
	r := framework.validate_result with input as fixtures.as_admin(fixtures.overriding(object.union(fixtures.version_change, {"phase": "validate"}), "  "))
	denied_by(r, "missing-canary")
	not contains(r.denials[0].message, "override-reason annotation was ignored")
}

test_an_authorized_override_in_dryrun_is_recorded_but_silent if {
	r := framework.validate_result with input as fixtures.enforcement(
		fixtures.as_admin(fixtures.overriding(object.union(fixtures.version_change, {"phase": "validate"}), "hotfix")),
		"dryrun",
	)
	r.allowed
	r.overridden
	r.warnings == []
}

test_with_no_override_groups_the_gate_says_overrides_are_disabled if {
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": null}), "none")
	r := framework.validate_result with input as object.union(fixtures.with_pod(fixtures.promotion, pod), {"settings": {"override_groups": null}})
	contains(concat("\n", r.denials[0].details), "break-glass overrides are disabled on this cluster")
}

test_the_fast_path_matches_the_full_result if {
	every req in data.pdguard.mutate_test.requests {
		r := framework.validate_result with input as req
		f := framework.full_validate_result with input as req
		r == f
		denies_with_reasons(r)
	}
}

denies_with_reasons(r) if {
	r.allowed
	r.denials == []
}

denies_with_reasons(r) if {
	not r.allowed
	r.denials != []
}

test_a_change_document_without_reverts_canary_still_needs_a_canary if {
	change := object.remove(fixtures.version_change.change, {"reverts_canary"})
	req := object.union(object.remove(fixtures.version_change, {"change"}), {"change": change})
	r := framework.validate_result with input as req
	denied_by(r, "missing-canary")
}

# A canary of many pods: pods lacking the same are named together, at most three names and
# two problems in the message, the rest counted with the command that lists them; the
# details keep every pod.
test_many_unproven_pods_are_named_in_bounded_groups if {
	in_progress := {"verdict": {"verdict": "InProgress", "reason": "replace-profile has not finished"}}
	req := object.union(fixtures.promotion, {
		"old": {"replicas": 10, "partition": 2},
		"new": {"replicas": 10, "partition": 0},
		"pods": array.concat(
			[fixtures.stable_pod(0), fixtures.stable_pod(1)],
			array.concat(
				[fixtures.unproven(object.union(fixtures.canary_pod(i), in_progress), "current") | some i in numbers.range(2, 6)],
				array.concat(
					[fixtures.unproven(object.union(fixtures.canary_pod(i), {"verdict": null}), "none") | some i in [7, 8]],
					[fixtures.unproven(object.union(fixtures.canary_pod(9), {"ready": false, "ready_seconds": 0, "soaked": false}), "current")],
				),
			),
		),
	})
	r := framework.validate_result with input as req
	denied_by(r, "partition-gate")
	msg := r.denials[0].message
	contains(msg, "the canary is not proven. Pods pd-2, -3, -4: verdict InProgress: replace-profile has not finished. Pods pd-7, -8: no pdguard.io/replace-profile verdict yet. Pod pd-9: not Ready. 2 more pods: see kubectl pdguard status pd -n ping. Next: ")
	not contains(msg, "pd-5")
	count(msg) <= 600
	details := concat("\n", r.denials[0].details)
	contains(details, "Pod pd-5: verdict InProgress")
	contains(details, "Pod pd-9: not Ready")
	contains(details, "pods pd-0, pd-1 would move to the update revision")
}

test_one_problem_on_few_pods_names_them_all if {
	req := object.union(fixtures.promotion, {
		"old": {"replicas": 4, "partition": 1},
		"new": {"replicas": 4, "partition": 0},
		"pods": array.concat([fixtures.stable_pod(0)], [fixtures.unproven(object.union(fixtures.canary_pod(i), {"verdict": null}), "none") | some i in [1, 2, 3]]),
	})
	r := framework.validate_result with input as req
	contains(r.denials[0].message, "the canary is not proven. Pods pd-1, -2, -3: no pdguard.io/replace-profile verdict yet. Next: ")
	not contains(r.denials[0].message, "kubectl pdguard status")
}

test_a_long_problem_is_cut_in_the_message_and_whole_in_the_details if {
	long := concat("", ["manage-profile replace-profile failed: ", concat("", [sprintf("step %d failed; ", [i]) | some i in numbers.range(1, 40)])])
	pod := fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": {"verdict": "Failed", "reason": long}}), "current")
	r := framework.validate_result with input as fixtures.with_pod(fixtures.promotion, pod)
	msg := r.denials[0].message
	contains(msg, "…. Next: ")
	not contains(msg, "step 39")
	count(msg) <= 600
	contains(r.denials[0].details[0], "step 39 failed")
}
