package policy

// sample is a typical request used to check a module set before it is put in force.
type sample struct {
	name  string
	input *Input
}

func samples() []sample {
	settings := Settings{Enforcement: "enforce", CanaryReplicas: 1, SingleReplica: "warn", OverrideGroups: []string{"pdguard-admins"}, SoakSeconds: 60, Container: "pingdirectory"}
	user := User{Username: "system:serviceaccount:ci:deployer", Groups: []string{"system:serviceaccounts"}}
	stable := Image{
		Ref: "pingidentity/pingdirectory:10.1.0.0-latest", Repository: "pingidentity/pingdirectory", Tag: "10.1.0.0-latest",
		Version: Version{Known: true, Parts: []int64{10, 1, 0, 0}, Text: "10.1.0.0"},
	}
	next := Image{
		Ref: "pingidentity/pingdirectory:10.2.0.0-latest", Repository: "pingidentity/pingdirectory", Tag: "10.2.0.0-latest",
		Version: Version{Known: true, Parts: []int64{10, 2, 0, 0}, Text: "10.2.0.0"},
	}
	higher := 1
	live := Summary{Replicas: 3, HasPartition: true, Image: stable, CurrentRevision: "pd-7c9f", UpdateRevision: "pd-7c9f"}
	canary := Summary{Replicas: 3, Partition: 2, HasPartition: true, Image: next, CurrentRevision: "pd-7c9f", UpdateRevision: "pd-5d41"}
	promoted := canary
	promoted.Partition = 0
	stablePod := func(i int32) Pod {
		return Pod{Name: "pd-pingdirectory-" + string(rune('0'+i)), Ordinal: i, Revision: "pd-7c9f", Ready: true, ReadySecs: 3600, ContainerID: "containerd://a"}
	}
	canaryPod := Pod{
		Name: "pd-pingdirectory-2", Ordinal: 2, Revision: "pd-5d41", Ready: true, ReadySecs: 600, ContainerID: "containerd://c",
		Verdict: &PodVerdict{Verdict: "Succeeded", Revision: "pd-5d41", ContainerID: "containerd://c"},
	}
	return []sample{
		{"a new StatefulSet", &Input{
			Phase: "validate", Operation: "CREATE", Namespace: "ping", Name: "pd-pingdirectory",
			User: user, Settings: settings, Keys: AnnotationKeys(), New: live,
		}},
		{"an image change", &Input{
			Phase: "mutate", Operation: "UPDATE", Namespace: "ping", Name: "pd-pingdirectory",
			User: user, Settings: settings, Keys: AnnotationKeys(), Old: &live, New: Summary{Replicas: 3, HasPartition: true, Image: next},
			Change: Change{VersionChanged: true, VersionOrder: &higher},
			Canary: Canary{StableImage: stable},
			Pods:   []Pod{stablePod(0), stablePod(1), stablePod(2)},
		}},
		{"a canary promotion", &Input{
			Phase: "validate", Operation: "UPDATE", Namespace: "ping", Name: "pd-pingdirectory",
			User: user, Settings: settings, Keys: AnnotationKeys(), Old: &canary, New: promoted,
			Canary: Canary{Open: true, StableImage: stable},
			Pods:   []Pod{stablePod(0), stablePod(1), canaryPod},
		}},
	}
}
