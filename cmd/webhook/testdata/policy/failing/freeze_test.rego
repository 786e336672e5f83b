package site.freeze_test

import data.pdguard.fixtures
import data.pdguard.framework

test_a_frozen_statefulset_refuses_a_version_change if {
	r := framework.validate_result with input as fixtures.annotated(fixtures.version_change_mutated, "example.com/freeze", "true")
	not r.allowed
}

# Wrong on purpose: a config-only change is not frozen.
test_a_config_change_is_frozen_too if {
	req := object.union(fixtures.request, {"change": {"config_paths": ["spec.replicas"]}})
	r := framework.validate_result with input as fixtures.annotated(req, "example.com/freeze", "true")
	not r.allowed
}
