# Inputs shaped like the ones Go builds (policy/input.go), for a two-replica PingDirectory
# going from 10.1 to 10.2 through a canary on pod pd-1.
package pdguard.fixtures

image(tag, parts, text) := {
	"ref": sprintf("pingidentity/pingdirectory:%s", [tag]),
	"repository": "pingidentity/pingdirectory",
	"tag": tag,
	"digest": "",
	"version": {"known": count(parts) > 0, "parts": parts, "text": text},
}

stable_image := image("10.1.0.0-latest", [10, 1, 0, 0], "10.1.0.0")

next_image := image("10.2.0.0-latest", [10, 2, 0, 0], "10.2.0.0")

older_image := image("9.3.0.0-latest", [9, 3, 0, 0], "9.3.0.0")

edge_image := image("edge", [], "edge")

settings := {
	"enforcement": "enforce",
	"canary_replicas": 1,
	"single_replica": "warn",
	"override_groups": ["pdguard-admins"],
	"soak_seconds": 60,
	"container": "pingdirectory",
}

# What Go sends in input.keys (policy.AnnotationKeys).
keys := {
	"enforcement": "pdguard.io/enforcement",
	"override_reason": "pdguard.io/override-reason",
	"override_used": "pdguard.io/override-used",
	"canary": "pdguard.io/canary",
	"replace_profile": "pdguard.io/replace-profile",
}

live := {
	"replicas": 2,
	"partition": 0,
	"has_partition": true,
	"image": stable_image,
	"annotations": {},
	"current_revision": "rev-stable",
	"update_revision": "rev-stable",
}

stable_pod(i) := {
	"name": sprintf("pd-%d", [i]),
	"ordinal": i,
	"revision": "rev-stable",
	"ready": true,
	"ready_seconds": 86400,
	"container_id": sprintf("containerd://stable-%d", [i]),
	"restarts": 0,
	"verdict": null,
	"verdict_error": "",
	"on_update_revision": false,
	"soaked": true,
	"evidence": "none",
	"proven": false,
}

# A canary pod on the update revision whose replace-profile succeeded long enough ago, with
# the facts Go's rollout model (internal/rollout) derives from it.
canary_pod(i) := {
	"name": sprintf("pd-%d", [i]),
	"ordinal": i,
	"revision": "rev-next",
	"ready": true,
	"ready_seconds": 600,
	"container_id": sprintf("containerd://canary-%d", [i]),
	"restarts": 0,
	"verdict": {
		"verdict": "Succeeded",
		"revision": "rev-next",
		"container_id": sprintf("containerd://canary-%d", [i]),
		"reason": "",
		"observed_at": "2025-11-25T10:00:00Z",
	},
	"verdict_error": "",
	"on_update_revision": true,
	"soaked": true,
	"evidence": "current",
	"proven": true,
}

# What Go's rollout model says of a canary pod that is not proven, with the evidence given.
unproven(pod, evidence) := object.union(pod, {"proven": false, "evidence": evidence})

request := {
	"phase": "mutate",
	"operation": "UPDATE",
	"namespace": "ping",
	"name": "pd",
	"user": {"username": "alice", "groups": ["developers"]},
	"settings": settings,
	"old": live,
	"new": live,
	"change": {"version_changed": false, "config_paths": null, "version_order": 0, "reverts_canary": false},
	"canary": {"open": false, "stable_image": stable_image, "record": null},
	"pods": [stable_pod(0), stable_pod(1)],
	"keys": keys,
}

# helm upgrade --set pingdirectory.image.tag=10.2.0.0-latest, before pdguard's mutation.
version_change := object.union(request, {
	"new": {"image": next_image},
	"change": {"version_changed": true, "version_order": 1},
})

# The same request after pdguard's mutation, as the validating webhook sees it.
version_change_mutated := object.union(version_change, {"phase": "validate", "new": {"partition": 1}})

create := object.union(request, {"operation": "CREATE", "old": null})

# The live object while the canary runs: pd-1 is on the update revision.
canary_live := object.union(live, {"partition": 1, "image": next_image, "update_revision": "rev-next"})

open_canary := object.union(request, {
	"old": canary_live,
	"new": canary_live,
	"canary": {"open": true, "record": {
		"from_image": stable_image.ref,
		"to_image": next_image.ref,
		"from_version": "10.1.0.0",
		"to_version": "10.2.0.0",
		"started": "2025-11-25T09:50:00Z",
		"requested_by": "alice",
	}},
	"pods": [stable_pod(0), canary_pod(1)],
})

# Re-running the same helm upgrade: the chart sends partition 0 again.
promotion := object.union(open_canary, {"phase": "validate", "new": {"partition": 0}})

# Setting the tag back to the stable one while the canary is open.
revert := object.union(open_canary, {
	"new": {"partition": 0, "image": stable_image},
	"change": {"version_changed": true, "reverts_canary": true},
})

# A profile fix tried on the canary: same tag, changed template, partition 0 from the chart.
canary_fix := object.union(open_canary, {
	"new": {"partition": 0},
	"change": {"config_paths": ["spec.template.spec.containers[pingdirectory].env[MAX_HEAP_SIZE]"]},
})

with_pod(req, pod) := object.union(req, {"pods": array.concat(
	[p | some p in req.pods; p.ordinal != pod.ordinal],
	[pod],
)})

annotated(req, key, value) := object.union(req, {"new": {"annotations": {key: value}}})

enforcement(req, mode) := object.union(req, {"settings": {"enforcement": mode}})

overriding(req, reason) := annotated(req, "pdguard.io/override-reason", reason)

as_admin(req) := object.union(req, {"user": {"username": "bob", "groups": ["developers", "pdguard-admins"]}})

rules(findings) := [f.rule | some f in findings]
