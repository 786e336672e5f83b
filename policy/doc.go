// Package policy holds every decision pdguard makes about a PingDirectory StatefulSet
// change. Go builds an Input (input.go) from the admission request, the live object and the
// cached pods; the Rego modules in rego/ decide; Engine hands back a Mutation or a
// Validation (decision.go).
//
// # Entry points
//
// data.pdguard.mutate.result is the mutating webhook's decision. Go applies Partition (and
// writes or removes the canary record) only when Mode is "enforce", and shows Fired to the
// user then; Warnings are shown in every mode (they are empty in dryrun); Fired is worth
// logging in every mode, since that is all dryrun leaves behind.
//
// data.pdguard.validate.result is the validating webhook's decision, on the object as
// mutated. Allowed and Denials are final: warn and dryrun modes, and an authorized
// override, are already applied. Violations lists every rule that fired whatever the mode,
// for logs, metrics and audit.
//
// Rule ids are stable: canary-partition, canary-repin, single-replica (mutate);
// bundled-config-and-version, missing-canary, partition-gate, downgrade, single-replica,
// override (validate); unreadable-version and invalid-enforcement-annotation (advisories).
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
// Helpers such as lib.is_update, lib.mode, lib.object_name and lib.stable_image can be
// imported from data.pdguard.lib. Unlike the built-in rules, a module's rules also apply on
// CREATE unless they check lib.is_update. Files ending in _test.rego are not loaded.
//
// Network builtins (http.send, net.*) are not available. A module set that does not parse,
// compile, or evaluate cleanly on sample requests (conflicting values, findings that are
// not {"rule", "message"} objects) is rejected with an error naming the file, and the last
// good set stays in force; Watch reloads the directory when it changes.
package policy
