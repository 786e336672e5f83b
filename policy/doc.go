// Package policy holds every decision pdguard makes about a PingDirectory StatefulSet
// change. Go builds an Input (input.go) from the admission request, the live object and the
// cached pods; the Rego modules in rego/ decide; Engine hands back a Mutation or a
// Validation (decision.go).
//
// # Entry points
//
// The rule modules only emit findings: package pdguard.validate the sets violation and
// advisory, package pdguard.mutate the change a request needs and the set advisory. One
// framework module (rego/framework.rego, package pdguard.framework) works out the
// enforcement mode and the break-glass override and turns the findings into the two
// results Go reads; nothing in Go re-applies a mode.
//
// data.pdguard.framework.mutate_result is the mutating webhook's decision. Go applies
// Partition (and writes or removes the canary record) only when Apply is set (enforce
// and warn mode: pinning the canary refuses nothing), and shows Shown to the user; Fired is worth logging in every mode, since that is
// all dryrun leaves behind.
//
// data.pdguard.framework.validate_result is the validating webhook's decision, on the
// object as mutated. Allowed and Denials are final: warn and dryrun modes, and an
// authorized override, are already applied. Violations lists every rule that fired
// whatever the mode, for logs, metrics and audit. Finding.String is how a finding is
// shown: "[rule] message".
//
// Rule ids are stable: canary-partition, canary-repin, single-replica (mutate);
// bundled-config-and-version, missing-canary, partition-gate, downgrade, single-replica,
// override (validate); unreadable-version and invalid-enforcement-annotation (advisories).
//
// # Fast path
//
// With only the embedded rules loaded, Engine answers the common requests in Go
// (fastpath.go): in enforce mode with no override in play, an update no rule can fire on,
// the canary partition of a plain version change, and the partition gate's answer to a
// promotion attempt (fastgate.go), which helm and controllers repeat until the canary is
// proven. Everything else is evaluated in
// Rego, which stays the definition; Options.CrossCheck, set by the tests, evaluates the
// policy behind every fast answer and fails on any difference.
//
// # Policy directory
//
// Options.PolicyDir holds extra Rego v1 modules compiled together with the embedded ones.
// The built-in rules are partial sets, so a module adds to them:
//
//	package pdguard.validate
//
//	import data.pdguard.lib
//
//	violation contains {"rule": "change-freeze", "message": msg} if {
//		input.change.version_changed
//		input.new.annotations["example.com/freeze"] == "true"
//		msg := sprintf("%s is frozen: ...", [lib.object_name])
//	}
//
//	advisory contains {"rule": "my-advice", "message": "..."} if { ... }
//
// A violation denies in enforce mode, warns in warn mode, is only logged in dryrun, and is
// lifted by an authorized override, exactly like the built-in ones; an advisory is a warning.
// In package pdguard.mutate, advisory adds warnings to the mutating webhook's response.
// Helpers such as lib.is_update, lib.object_name and lib.stable_image can be imported from
// data.pdguard.lib. Modules may not declare package pdguard.framework. Unlike the built-in rules, a module's rules also apply on
// CREATE unless they check lib.is_update. Files ending in _test.rego are not loaded.
//
// Network builtins (http.send, net.*) are not available. A module set that does not parse,
// compile, or evaluate cleanly on sample requests (conflicting values, findings that are
// not {"rule", "message"} objects) is rejected with an error naming the file, and the last
// good set stays in force; Watch reloads the directory when it changes. TestDir (the
// webhook policy test command) runs a directory's Rego tests against the embedded policy.
// policy/README.md documents the input for site rules.
package policy
