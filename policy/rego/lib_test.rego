package pdguard.lib_test

import data.pdguard.fixtures
import data.pdguard.framework
import data.pdguard.lib

annotated_both(req, old_value, new_value) := object.union(req, {
	"old": {"annotations": {"pdguard.io/enforcement": old_value}},
	"new": {"annotations": {"pdguard.io/enforcement": new_value}},
})

test_the_setting_is_the_mode_without_annotations if {
	framework.mode == "warn" with input as fixtures.enforcement(fixtures.request, "warn")
}

test_an_annotation_on_new_can_tighten_the_mode if {
	framework.mode == "enforce" with input as fixtures.annotated(fixtures.enforcement(fixtures.request, "dryrun"), "pdguard.io/enforcement", "enforce")
}

test_an_annotation_on_new_cannot_loosen_the_mode if {
	framework.mode == "enforce" with input as fixtures.annotated(fixtures.request, "pdguard.io/enforcement", "dryrun")
}

test_loosening_the_annotation_takes_effect_on_the_next_request if {
	framework.mode == "warn" with input as annotated_both(fixtures.enforcement(fixtures.request, "dryrun"), "warn", "dryrun")
	framework.mode == "dryrun" with input as annotated_both(fixtures.enforcement(fixtures.request, "dryrun"), "dryrun", "dryrun")
}

test_annotation_values_are_read_leniently if {
	framework.mode == "enforce" with input as fixtures.annotated(fixtures.enforcement(fixtures.request, "warn"), "pdguard.io/enforcement", " Enforce ")
}

test_an_unknown_setting_counts_as_enforce if {
	framework.mode == "enforce" with input as fixtures.enforcement(fixtures.request, "audit")
	framework.mode == "enforce" with input as fixtures.enforcement(fixtures.request, "")
}

test_an_unknown_annotation_is_ignored_with_an_advisory if {
	req := fixtures.annotated(fixtures.enforcement(fixtures.request, "warn"), "pdguard.io/enforcement", "strict")
	framework.mode == "warn" with input as req
	r := framework.validate_result with input as req
	r.allowed
	fixtures.rules(r.warnings) == ["invalid-enforcement-annotation"]
	contains(r.warnings[0].message, `is "strict", which is not one of enforce, warn, dryrun, so it is ignored and the effective mode is warn`)
	contains(r.warnings[0].message, "kubectl -n ping annotate statefulset pd --overwrite pdguard.io/enforcement=warn")
}

test_an_unknown_annotation_only_on_old_is_being_fixed_and_says_nothing if {
	req := object.union(fixtures.request, {"old": {"annotations": {"pdguard.io/enforcement": "strict"}}})
	r := framework.validate_result with input as req
	allowed_quietly(r)
}

test_an_unknown_annotation_in_dryrun_says_nothing if {
	req := fixtures.annotated(fixtures.enforcement(fixtures.request, "dryrun"), "pdguard.io/enforcement", "strict")
	r := framework.validate_result with input as req
	r.warnings == []
}

test_the_mode_is_reported_on_create if {
	framework.mode == "warn" with input as fixtures.annotated(fixtures.enforcement(fixtures.create, "dryrun"), "pdguard.io/enforcement", "warn")
}

test_null_lists_in_the_input_are_empty if {
	req := object.union(fixtures.request, {"user": {"groups": null}, "settings": {"override_groups": null}, "pods": null})
	framework.override_principals == {"alice"} with input as req
	lib.override_groups == [] with input as req
}

test_ordinals_never_count_down if {
	lib.ordinals(2, 4) == [2, 3]
	lib.ordinals(2, 3) == [2]
	lib.ordinals(3, 3) == []
	lib.ordinals(4, 3) == []
}

test_pod_lists_read_naturally if {
	lib.pods(2, 2) == "no pod" with input as fixtures.request
	lib.pods(3, 2) == "no pod" with input as fixtures.request
	lib.pods(1, 2) == "pod pd-1" with input as fixtures.request
	lib.pods(0, 2) == "pods pd-0, pd-1" with input as fixtures.request
}

test_the_stable_image_falls_back_to_old if {
	lib.stable_tag == "10.2.0.0-latest" with input as object.union(fixtures.open_canary, {"canary": {"stable_image": {"ref": "", "tag": ""}}})
	lib.stable_tag == "10.1.0.0-latest" with input as fixtures.open_canary
}

test_a_digest_only_image_is_named_by_its_reference if {
	lib.tag_or_ref({"ref": "pingidentity/pingdirectory@sha256:abc", "tag": ""}) == "pingidentity/pingdirectory@sha256:abc"
}

allowed_quietly(r) if {
	r.allowed
	r.warnings == []
	r.violations == []
}
