package site.freeze_test

import data.pdguard.fixtures
import data.pdguard.framework

frozen := fixtures.annotated(fixtures.version_change_mutated, "example.com/freeze", "true")

test_a_frozen_statefulset_refuses_a_version_change if {
	r := framework.validate_result with input as frozen
	not r.allowed
	fixtures.rules(r.denials) == ["change-freeze"]
	contains(r.denials[0].message, "ping/pd is frozen")
}

test_warn_mode_only_warns if {
	r := framework.validate_result with input as fixtures.enforcement(frozen, "warn")
	r.allowed
	startswith(r.warnings[0].message, "pdguard would deny: ping/pd is frozen")
}

test_an_unfrozen_statefulset_is_left_alone if {
	r := framework.validate_result with input as fixtures.version_change_mutated
	r.allowed
}
