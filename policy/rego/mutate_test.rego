package pdguard.mutate_test

import data.pdguard.fixtures
import data.pdguard.framework

# CREATE

test_create_changes_nothing_and_reports_the_mode if {
	r := framework.mutate_result with input as object.union(fixtures.create, {"new": {"image": fixtures.next_image}})
	r.partition == null
	r.fired == []
	r.warnings == []
	r.mode == "enforce"
}

# canary-partition

test_version_change_on_two_replicas_updates_only_pod_1 if {
	r := framework.mutate_result with input as fixtures.version_change
	r.partition == 1
	r.record_canary
	not r.close_canary
	fixtures.rules(r.fired) == ["canary-partition"]
	msg := r.fired[0].message
	contains(msg, "to 1 (the request had 0)")
	contains(msg, "reaches only pod pd-1 (ordinals 1 and up)")
	contains(msg, "stays on pod pd-0")
	contains(msg, "kubectl -n ping get pod pd-1 -o jsonpath='{.metadata.annotations.pdguard\\.io/replace-profile}'")
	contains(msg, "re-run the same helm upgrade")
	contains(msg, "pingdirectory.image.tag set back to 10.1.0.0-latest (same helm upgrade, same -f values files)")
	r.warnings == []
}

test_a_bundled_version_change_gets_no_canary_plan_only_a_pointer_to_the_refusal if {
	r := framework.mutate_result with input as object.union(fixtures.version_change, {"change": {"config_paths": ["spec.template.metadata.annotations[checksum/config]"]}})
	r.partition == 1
	contains(r.fired[0].message, "also changes spec.template.metadata.annotations[checksum/config], which pdguard's validating webhook refuses with a version change")
	not contains(r.fired[0].message, "Next: wait")
}

test_canary_replicas_setting_widens_the_canary if {
	r := framework.mutate_result with input as object.union(fixtures.version_change, {
		"settings": {"canary_replicas": 2},
		"old": {"replicas": 4},
		"new": {"replicas": 4},
	})
	r.partition == 2
	contains(r.fired[0].message, "reaches only pods pd-2, pd-3")
	contains(r.fired[0].message, "stays on pods pd-0, pd-1")
}

test_pod_0_is_never_the_canary if {
	r := framework.mutate_result with input as object.union(fixtures.version_change, {"settings": {"canary_replicas": 5}})
	r.partition == 1
}

test_a_missing_canary_replicas_setting_counts_as_one if {
	r := framework.mutate_result with input as object.union(fixtures.version_change, {
		"settings": {"canary_replicas": 0},
		"old": {"replicas": 3},
		"new": {"replicas": 3},
	})
	r.partition == 2
}

test_a_larger_user_partition_is_kept if {
	r := framework.mutate_result with input as object.union(fixtures.version_change, {
		"old": {"replicas": 4},
		"new": {"replicas": 4, "partition": 3},
		"settings": {"canary_replicas": 2},
	})
	r.partition == 3
	contains(r.fired[0].message, "keeps spec.updateStrategy.rollingUpdate.partition of ping/pd at 3")
	contains(r.fired[0].message, "reaches only pod pd-3")
}

test_a_partition_at_or_above_replicas_says_no_pod_updates_yet if {
	r := framework.mutate_result with input as object.union(fixtures.version_change, {"new": {"partition": 2}})
	r.partition == 2
	r.record_canary
	contains(r.fired[0].message, "no pod takes the image change")
	contains(r.fired[0].message, "set pingdirectory.workload.statefulSet.partition to 1")
}

test_a_new_version_on_an_open_canary_keeps_the_live_partition if {
	r := framework.mutate_result with input as object.union(fixtures.open_canary, {
		"old": {"replicas": 3, "partition": 2},
		"new": {"replicas": 3, "partition": 0, "image": fixtures.image("10.3.0.0-latest", [10, 3, 0, 0], "10.3.0.0")},
		"change": {"version_changed": true, "version_order": 1},
		"settings": {"canary_replicas": 2},
	})
	r.partition == 2
	r.record_canary
}

test_a_single_replica_gets_no_partition_but_a_warning if {
	r := framework.mutate_result with input as object.union(fixtures.version_change, {"old": {"replicas": 1}, "new": {"replicas": 1}})
	r.partition == null
	not r.record_canary
	r.fired == []
	fixtures.rules(r.warnings) == ["single-replica"]
	contains(r.warnings[0].message, "runs 1 replica")
	contains(r.warnings[0].message, "set pingdirectory.container.replicaCount to at least 2")
}

test_a_config_only_change_is_left_alone if {
	r := framework.mutate_result with input as object.union(fixtures.request, {"change": {"config_paths": ["spec.replicas"]}})
	r.partition == null
	r.fired == []
	r.warnings == []
}

# canary-repin

test_a_template_change_on_an_open_canary_keeps_the_live_partition if {
	r := framework.mutate_result with input as fixtures.canary_fix
	r.partition == 1
	not r.record_canary
	not r.close_canary
	fixtures.rules(r.fired) == ["canary-repin"]
	msg := r.fired[0].message
	contains(msg, "to 1 (the request had 0)")
	contains(msg, "spec.template.spec.containers[pingdirectory].env[MAX_HEAP_SIZE]")
	contains(msg, "only pod pd-1, the canary, is recreated")
	contains(msg, "does not count for the new revision")
}

test_promotion_without_template_change_is_not_repinned if {
	r := framework.mutate_result with input as fixtures.promotion
	r.partition == null
	r.fired == []
}

test_a_template_change_that_keeps_the_partition_needs_no_repin if {
	r := framework.mutate_result with input as object.union(fixtures.canary_fix, {"new": {"partition": 1}})
	r.partition == null
	r.fired == []
}

test_a_template_change_without_an_open_canary_is_not_repinned if {
	r := framework.mutate_result with input as object.union(fixtures.canary_fix, {"canary": {"open": false}})
	r.partition == null
}

test_reverting_the_canary_keeps_the_partition_and_closes_it if {
	r := framework.mutate_result with input as fixtures.revert
	r.partition == 1
	r.close_canary
	not r.record_canary
	fixtures.rules(r.fired) == ["canary-repin"]
	contains(r.fired[0].message, "closes the canary")
	contains(r.fired[0].message, "pod pd-1 returns to the stable image")
}

test_reverting_with_a_larger_partition_still_brings_the_canary_back if {
	r := framework.mutate_result with input as object.union(fixtures.revert, {"new": {"partition": 2}})
	r.partition == 1
	r.close_canary
}

# Modes

test_warn_mode_still_pins_the_canary if {
	r := framework.mutate_result with input as fixtures.enforcement(fixtures.version_change, "warn")
	r.mode == "warn"
	r.apply
	r.partition == 1
	r.record_canary
	fixtures.rules(r.fired) == ["canary-partition"]
	fixtures.rules(r.shown) == ["canary-partition"]
	startswith(r.shown[0].message, "pdguard sets spec.updateStrategy.rollingUpdate.partition of ping/pd to 1")
	r.warnings == []
}

test_warn_mode_still_keeps_an_open_canary_pinned if {
	r := framework.mutate_result with input as fixtures.enforcement(fixtures.canary_fix, "warn")
	r.apply
	r.partition == fixtures.canary_fix.old.partition
	fixtures.rules(r.fired) == ["canary-repin"]
}

test_dryrun_mode_applies_nothing if {
	r := framework.mutate_result with input as fixtures.enforcement(fixtures.version_change, "dryrun")
	not r.apply
	r.shown == []
}

test_dryrun_mode_keeps_the_findings_for_the_log_only if {
	r := framework.mutate_result with input as fixtures.enforcement(
		object.union(fixtures.version_change, {"old": {"replicas": 1}, "new": {"replicas": 1}}),
		"dryrun",
	)
	r.mode == "dryrun"
	r.warnings == []

	d := framework.mutate_result with input as fixtures.enforcement(fixtures.version_change, "dryrun")
	d.partition == 1
	fixtures.rules(d.fired) == ["canary-partition"]
	d.warnings == []
}

# Override

test_an_authorized_override_lifts_the_mutation if {
	r := framework.mutate_result with input as fixtures.as_admin(fixtures.overriding(fixtures.version_change, "hotfix INC-42"))
	r.partition == null
	not r.record_canary
	r.fired == []
	fixtures.rules(r.warnings) == ["canary-partition"]
	startswith(r.warnings[0].message, "overridden by bob (reason: hotfix INC-42): this request was not changed; without the override pdguard sets")
}

test_an_authorized_override_in_warn_mode_says_what_it_lifted if {
	r := framework.mutate_result with input as fixtures.enforcement(
		fixtures.as_admin(fixtures.overriding(fixtures.version_change, "hotfix")),
		"warn",
	)
	r.partition == null
	fixtures.rules(r.warnings) == ["canary-partition"]
	startswith(r.warnings[0].message, "overridden by bob (reason: hotfix)")
}

test_an_authorized_override_in_dryrun_says_nothing if {
	r := framework.mutate_result with input as fixtures.enforcement(
		fixtures.as_admin(fixtures.overriding(fixtures.version_change, "hotfix")),
		"dryrun",
	)
	r.partition == null
	r.warnings == []
}

test_an_unauthorized_override_is_ignored_and_says_why if {
	r := framework.mutate_result with input as fixtures.overriding(fixtures.version_change, "hotfix")
	r.partition == 1
	endswith(r.fired[0].message, "The pdguard.io/override-reason annotation was ignored because user alice is not in groups [pdguard-admins].")
}

# The fast paths in the framework's results must agree with the full ones, and no
# combination may make a rule produce conflicting values (an evaluation error fails every
# such request closed).

scenarios := [
	fixtures.create,
	fixtures.request,
	object.union(fixtures.request, {"change": {"config_paths": ["spec.replicas"]}}),
	fixtures.version_change,
	fixtures.version_change_mutated,
	object.union(fixtures.version_change, {"change": {"config_paths": ["spec.replicas"]}}),
	object.union(fixtures.version_change, {"new": {"image": fixtures.older_image}, "change": {"version_order": -1}}),
	object.union(fixtures.version_change, {"new": {"image": fixtures.edge_image}, "change": {"version_order": null}}),
	object.union(fixtures.version_change, {"old": {"replicas": 1}, "new": {"replicas": 1}, "settings": {"single_replica": "deny"}}),
	object.union(fixtures.version_change, {"new": {"annotations": null}}),
	fixtures.promotion,
	fixtures.with_pod(fixtures.promotion, fixtures.unproven(object.union(fixtures.canary_pod(1), {"verdict": null}), "none")),
	fixtures.revert,
	fixtures.canary_fix,
]

variants(req) := [
	req,
	fixtures.enforcement(req, "warn"),
	fixtures.enforcement(req, "dryrun"),
	fixtures.annotated(req, "pdguard.io/enforcement", "strict"),
	fixtures.overriding(req, "hotfix"),
	fixtures.overriding(req, " "),
	fixtures.as_admin(fixtures.overriding(req, "hotfix")),
	fixtures.enforcement(fixtures.as_admin(fixtures.overriding(req, "hotfix")), "warn"),
	fixtures.enforcement(fixtures.as_admin(fixtures.overriding(req, "hotfix")), "dryrun"),
]

requests := [v | some req in scenarios; some v in variants(req)]

test_the_fast_paths_match_the_full_result if {
	count(requests) == count(scenarios) * 9
	every req in requests {
		r := framework.mutate_result with input as req
		f := framework.full_mutate_result with input as req
		r == f
		r.apply == {"enforce": true, "warn": true, "dryrun": false}[r.mode]
	}
}
