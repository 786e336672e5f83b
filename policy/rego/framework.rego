# The one step between the rules and the webhooks: it works out the effective enforcement
# mode and the break-glass override, and turns what the rules found into the decisions Go
# acts on. The rule files, built in or from the policy directory, only emit findings:
#
#   data.pdguard.validate.violation, .advisory   sets of {"rule": ..., "message": ...},
#                                                optionally "details": [string], kept whole
#   data.pdguard.mutate.change                   the one change a mutate rule makes, if any
#   data.pdguard.mutate.advisory                 a set of {"rule": ..., "message": ...}
#
# and validate_result and mutate_result below are all Go reads, so enforce, warn, dryrun
# and the override mean the same for every rule. Policy-directory modules cannot add to
# this package.
#
# This runs on every admission request: the common one (enforce mode, no override
# annotation) must cost little, so the results take a short cut for it (plain_enforce).
package pdguard.framework

import data.pdguard.lib
import data.pdguard.mutate
import data.pdguard.validate

# Mode.

# Levels go from loosest to strictest, so the effective mode is the highest one asked for.
# A server setting pdguard does not know must not loosen the guard. Go validates the flag,
# so only annotations, typed by hand, are read leniently.
default setting_level := 2

setting_level := {"dryrun": 0, "warn": 1, "enforce": 2}[input.settings.enforcement]

# Taking the strictest of the setting, the live object and the request means a request
# cannot loosen its own checks: loosening only takes effect on the next request. Under
# enforce, the default, no annotation can change anything, so none is read.
default mode := "enforce"

mode := loosest_asked if input.settings.enforcement == "warn"

mode := loosest_asked if input.settings.enforcement == "dryrun"

loosest_asked := ["dryrun", "warn", "enforce"][max(annotation_levels | {setting_level})]

annotation_levels contains level if {
	raw := input.new.annotations[input.keys.enforcement]
	level := {"dryrun": 0, "warn": 1, "enforce": 2}[lower(trim_space(raw))]
}

annotation_levels contains level if {
	raw := input.old.annotations[input.keys.enforcement]
	level := {"dryrun": 0, "warn": 1, "enforce": 2}[lower(trim_space(raw))]
}

default mode_advisories := []

mode_advisories := [{"rule": "invalid-enforcement-annotation", "message": msg}] if {
	input.operation == "UPDATE"
	raw := input.new.annotations[input.keys.enforcement]
	lib.is_update
	not lower(trim_space(raw)) in {"dryrun", "warn", "enforce"}
	msg := sprintf(
		"the %s annotation on StatefulSet %s is %q, which is not one of enforce, warn, dryrun, so it is ignored and the effective mode is %s. Fix it with kubectl -n %s annotate statefulset %s --overwrite %s=%s.",
		[input.keys.enforcement, lib.object_name, raw, mode, input.namespace, input.name, input.keys.enforcement, mode],
	)
}

# Override.

# Enforce mode with no override asked for: the common request, whose results need none of
# the assembly of warn, dryrun and overrides, so validate_result and mutate_result build
# them directly. Equal to full_validate_result and full_mutate_result (see the tests).
plain_enforce if {
	input.settings.enforcement == "enforce"
	override_requested == false
}

# Most requests carry no override: everything about overrides starts from this, which
# costs one failed lookup per annotation then.
default override_requested := false

override_requested if input.new.annotations[input.keys.override_reason] != ""

override_requested if input.new.annotations[input.keys.override_used] != old_override_used

default new_override_reason := ""

new_override_reason := input.new.annotations[input.keys.override_reason]

default new_override_used := ""

new_override_used := input.new.annotations[input.keys.override_used]

default old_override_used := ""

old_override_used := input.old.annotations[input.keys.override_used]

override_reason := reason if {
	override_requested
	reason := trim_space(new_override_reason)
	reason != ""
} else := reason if {
	override_requested
	reason := trim_space(override_used.reason)
	reason != ""
}

# When an override lifts a rule, the mutating webhook takes the reason off the object and
# records it in pdguard.io/override-used, which the validating webhook then sees change
# in this request only. So an override counts once, for the change it was needed for,
# however long the annotation had been waiting on the object.
override_used := used if {
	new_override_used != old_override_used
	used := json.unmarshal(new_override_used)
	is_object(used)
}

# The booleans have defaults so that callers test them with == false: a negated rule
# costs OPA a nested evaluation.
default override_authorized := false

override_authorized if {
	override_requested
	override_reason
	some p in override_principals
	p in lib.override_groups
}

default override_ignored := false

override_ignored if {
	override_requested
	override_reason
	override_authorized == false
}

override_principals := {input.user.username} | {g | some g in lib.list(input.user.groups)}

override_prefix := sprintf("overridden by %s (reason: %s): ", [input.user.username, override_reason])

# Appended to every denial so a user who asked for an override learns why it did not count.
default override_note := ""

override_note := sprintf(
	" The %s annotation was ignored because user %s is not in groups %s.",
	[input.keys.override_reason, input.user.username, lib.groups_text],
) if override_ignored

# The validating webhook.

violations := [v | some v in validate.violation]

advisories := array.concat([a | some a in validate.advisory], mode_advisories)

default override_active := false

override_active if {
	override_authorized
	lib.is_update
}

override_active if {
	override_authorized
	count(violations) > 0
}

override_finding := {"rule": "override", "message": msg} if {
	count(violations) > 0
	via := sort({p | some p in override_principals; p in lib.override_groups})
	msg := sprintf(
		"%spdguard's rules are lifted for this change of StatefulSet %s (%s may override through %s), so %d violation(s) are reported as warnings only. The override is used up by this change: pdguard moves its reason to the %s annotation, and later changes are guarded again.",
		[override_prefix, lib.object_name, input.user.username, concat(", ", via), count(violations), input.keys.override_used],
	)
} else := {"rule": "override", "message": msg} if {
	msg := sprintf(
		"%s on StatefulSet %s is armed (reason: %s): nothing in this change needs it, so it stays and lifts the rules, once, for the next change by a member of %s that does. Remove it if it is no longer needed: kubectl -n %s annotate statefulset %s %s-",
		[input.keys.override_reason, lib.object_name, override_reason, lib.groups_text, input.namespace, input.name, input.keys.override_reason],
	)
}

default denials := []

denials := [object.union(v, {"message": concat("", [v.message, override_note])}) | some v in violations] if {
	count(violations) > 0
	mode == "enforce"
	override_active == false
}

default override_warnings := []

override_warnings := [override_finding] if override_active

# Violations an override let through, or that warn mode only reports. The definitions
# exclude each other on override_active.
default violation_warnings := []

violation_warnings := [object.union(v, {"message": concat("", [override_prefix, v.message])}) | some v in violations] if {
	count(violations) > 0
	override_active
}

violation_warnings := [object.union(v, {"message": concat("", ["pdguard would deny: ", v.message, override_note])}) | some v in violations] if {
	count(violations) > 0
	mode == "warn"
	override_active == false
}

# In the order a reader needs them: the override, the violations, then the advisories.
# dryrun shows the user nothing.
default validate_warnings := []

validate_warnings := array.concat(array.concat(override_warnings, violation_warnings), advisories) if mode != "dryrun"

# data.pdguard.framework.validate_result: Allowed and Denials are final; Violations lists
# every rule that fired whatever the mode, for logs and audit.
validate_result := {
	"allowed": true,
	"denials": [],
	"warnings": [],
	"violations": [],
	"mode": mode,
	"overridden": false,
} if {
	count(violations) == 0
	count(advisories) == 0
	override_requested == false
} else := full_validate_result

full_validate_result := {
	"allowed": count(denials) == 0,
	"denials": denials,
	"warnings": validate_warnings,
	"violations": violations,
	"mode": mode,
	"overridden": override_active,
}

# The mutating webhook.

# An authorized override lifts the mutation entirely.
default applied := {}

applied := mutate.change if override_authorized == false

# The rules that changed the object, with what they did and why. The definitions exclude
# each other on override_ignored.
default fired := []

fired := [{"rule": applied.rule, "message": applied.message}] if {
	applied.rule
	override_ignored == false
}

fired := [{"rule": applied.rule, "message": concat("", [applied.message, override_note])}] if {
	applied.rule
	override_ignored
}

mutate_advisories := [a | some a in mutate.advisory]

# Under an override the user sees what was not changed. Warn mode changes the request as
# enforce mode does: pinning the canary refuses nothing, and without it a plain upgrade
# would restart every pod into replace-profile at once behind a warning. dryrun is the mode
# that changes nothing.
default change_warnings := []

change_warnings := [{"rule": mutate.change.rule, "message": msg}] if {
	override_authorized
	msg := concat("", [override_prefix, "this request was not changed; without the override ", mutate.change.message])
}

default mutate_warnings := []

mutate_warnings := array.concat(change_warnings, mutate_advisories) if mode != "dryrun"

# What the response shows: what was changed, then the warnings; dryrun shows nothing.
default shown := []

shown := array.concat(fired, mutate_warnings) if mode != "dryrun"

# Modes in which Go applies the change.
default apply := false

apply if mode == "enforce"

apply if mode == "warn"

# data.pdguard.framework.mutate_result: Go applies partition and the canary record only
# when apply is true (enforce and warn mode); fired is worth logging in every mode, since
# that is all dryrun leaves behind.
mutate_result := {
	"partition": c.partition,
	"record_canary": c.record_canary,
	"close_canary": c.close_canary,
	"fired": fired,
	"warnings": mutate_advisories,
	"shown": array.concat(fired, mutate_advisories),
	"apply": true,
	"mode": "enforce",
} if {
	plain_enforce
	c := mutate.change
	fired := [{"rule": c.rule, "message": c.message}]
} else := {
	"partition": null,
	"record_canary": false,
	"close_canary": false,
	"fired": [],
	"warnings": mutate_advisories,
	"shown": mutate_advisories,
	"apply": true,
	"mode": "enforce",
} if {
	plain_enforce
} else := full_mutate_result

full_mutate_result := {
	"partition": object.get(applied, "partition", null),
	"record_canary": object.get(applied, "record_canary", false),
	"close_canary": object.get(applied, "close_canary", false),
	"fired": fired,
	"warnings": mutate_warnings,
	"shown": shown,
	"apply": apply,
	"mode": mode,
}
