package specdiff

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// Normalized helm output must be byte for byte the stored spec, apart from the
// feature-gated maxUnavailable that Normalize leaves out.
func TestNormalizeMakesHelmOutputTheStoredSpec(t *testing.T) {
	helm, live := fixture.HelmTemplate(), fixture.Live()
	Normalize(helm)
	helm.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = live.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable
	got, err := yaml.Marshal(helm.Spec)
	if err != nil {
		t.Fatal(err)
	}
	want, err := yaml.Marshal(live.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("normalized helm spec:\n%s\nlive spec:\n%s", got, want)
	}
}

func TestNormalizeFillsDefaults(t *testing.T) {
	sts := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			DeprecatedServiceAccount: "directory",
			InitContainers:           []corev1.Container{{Name: "init", Image: "busybox@" + digest}},
			Containers: []corev1.Container{{
				Name:  "pingdirectory",
				Image: "pingidentity/pingdirectory",
				Ports: []corev1.ContainerPort{{ContainerPort: 1389}},
				Env: []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
				}}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{}}},
				Lifecycle:     &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{}}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("0.0001"),
				}},
			}},
			Volumes: []corev1.Volume{
				{Name: "scratch"},
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
				{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}},
				{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}},
				{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
				}}},
			},
			Tolerations: []corev1.Toleration{},
		}},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{}},
	}}
	Normalize(sts)
	spec := sts.Spec
	pod := spec.Template.Spec
	c := pod.Containers[0]
	checks := map[string]struct {
		got, want any
	}{
		"replicas default to 1":                       {*spec.Replicas, int32(1)},
		"the revision history limit defaults to 10":   {*spec.RevisionHistoryLimit, int32(10)},
		"pods are managed in order":                   {spec.PodManagementPolicy, appsv1.OrderedReadyPodManagement},
		"the update strategy is a rolling update":     {spec.UpdateStrategy.Type, appsv1.RollingUpdateStatefulSetStrategyType},
		"the partition defaults to 0":                 {*spec.UpdateStrategy.RollingUpdate.Partition, int32(0)},
		"claims are retained when deleted":            {spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
		"claims are retained when scaled":             {spec.PersistentVolumeClaimRetentionPolicy.WhenScaled, appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
		"claim templates get their kind":              {spec.VolumeClaimTemplates[0].Kind, "PersistentVolumeClaim"},
		"claim templates get a file system volume":    {*spec.VolumeClaimTemplates[0].Spec.VolumeMode, corev1.PersistentVolumeFilesystem},
		"claim templates are pending":                 {spec.VolumeClaimTemplates[0].Status.Phase, corev1.ClaimPending},
		"the restart policy is Always":                {pod.RestartPolicy, corev1.RestartPolicyAlways},
		"the DNS policy is ClusterFirst":              {pod.DNSPolicy, corev1.DNSClusterFirst},
		"the scheduler is the default":                {pod.SchedulerName, corev1.DefaultSchedulerName},
		"the pod security context is empty":           {reflect.ValueOf(*pod.SecurityContext).IsZero(), true},
		"the grace period is 30 seconds":              {*pod.TerminationGracePeriodSeconds, int64(30)},
		"the deprecated service account is copied":    {pod.ServiceAccountName, "directory"},
		"an empty tolerations list is dropped":        {pod.Tolerations == nil, true},
		"a volume without a source is an emptyDir":    {pod.Volumes[0].EmptyDir != nil, true},
		"config map volumes get mode 420":             {*pod.Volumes[1].ConfigMap.DefaultMode, int32(420)},
		"secret volumes get mode 420":                 {*pod.Volumes[2].Secret.DefaultMode, int32(420)},
		"host path volumes get an unset type":         {*pod.Volumes[3].HostPath.Type, corev1.HostPathUnset},
		"projected volumes get mode 420":              {*pod.Volumes[4].Projected.DefaultMode, int32(420)},
		"tokens expire after an hour":                 {*pod.Volumes[4].Projected.Sources[0].ServiceAccountToken.ExpirationSeconds, int64(3600)},
		"no tag pulls Always":                         {c.ImagePullPolicy, corev1.PullAlways},
		"a digest alone pulls IfNotPresent":           {pod.InitContainers[0].ImagePullPolicy, corev1.PullIfNotPresent},
		"init containers get a termination message":   {pod.InitContainers[0].TerminationMessagePath, corev1.TerminationMessagePathDefault},
		"the termination message path is the default": {c.TerminationMessagePath, corev1.TerminationMessagePathDefault},
		"the termination message is read from a file": {c.TerminationMessagePolicy, corev1.TerminationMessageReadFile},
		"ports are TCP":                               {c.Ports[0].Protocol, corev1.ProtocolTCP},
		"field references get an API version":         {c.Env[0].ValueFrom.FieldRef.APIVersion, "v1"},
		"probes time out after 1 second":              {c.LivenessProbe.TimeoutSeconds, int32(1)},
		"probes run every 10 seconds":                 {c.LivenessProbe.PeriodSeconds, int32(10)},
		"probes succeed once":                         {c.LivenessProbe.SuccessThreshold, int32(1)},
		"probes fail three times":                     {c.LivenessProbe.FailureThreshold, int32(3)},
		"HTTP probes get the root path":               {c.LivenessProbe.HTTPGet.Path, "/"},
		"HTTP probes get the HTTP scheme":             {c.LivenessProbe.HTTPGet.Scheme, corev1.URISchemeHTTP},
		"HTTP lifecycle hooks get the root path":      {c.Lifecycle.PreStop.HTTPGet.Path, "/"},
		"CPU below a milli-CPU is rounded up to 1m":   {c.Resources.Requests.Cpu().String(), "1m"},
	}
	for name, tc := range checks {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestNormalizeKeepsWhatIsSet(t *testing.T) {
	live := fixture.Live()
	product(live).ImagePullPolicy = corev1.PullNever
	podSpec(live).RestartPolicy = corev1.RestartPolicyOnFailure
	podSpec(live).DNSPolicy = corev1.DNSDefault
	want := live.DeepCopy()
	Normalize(live)
	if !reflect.DeepEqual(live, want) {
		t.Fatal("Normalize changed an object that had every default")
	}
}

func TestNormalizeReplacesRatherThanChangesSharedObjects(t *testing.T) {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	ports := []corev1.ContainerPort{{ContainerPort: 1389}}
	volume := &corev1.ConfigMapVolumeSource{}
	sts := fixture.HelmTemplate()
	product(sts).LivenessProbe, product(sts).Ports = probe, ports
	podSpec(sts).Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: volume}}}
	Normalize(sts)
	if probe.TimeoutSeconds != 0 || ports[0].Protocol != "" || volume.DefaultMode != nil {
		t.Fatal("Normalize changed a nested object another one may share")
	}
	if product(sts).LivenessProbe.TimeoutSeconds != 1 || product(sts).Ports[0].Protocol != corev1.ProtocolTCP {
		t.Fatal("Normalize did not default the copies")
	}
}

func TestNormalizeIsIdempotent(t *testing.T) {
	once := fixture.HelmTemplate()
	Normalize(once)
	twice := once.DeepCopy()
	Normalize(twice)
	if !reflect.DeepEqual(once, twice) {
		t.Fatal("a second Normalize changed the object")
	}
	Normalize(nil)
}

func TestPullPolicy(t *testing.T) {
	tests := map[string]struct {
		image string
		want  corev1.PullPolicy
	}{
		"a latest tag pulls always":                {"pingidentity/pingdirectory:latest", corev1.PullAlways},
		"no tag is latest and pulls always":        {"pingidentity/pingdirectory", corev1.PullAlways},
		"a latest tag with a digest pulls always":  {"pingidentity/pingdirectory:latest@" + digest, corev1.PullAlways},
		"a digest alone pulls if not present":      {"pingidentity/pingdirectory@" + digest, corev1.PullIfNotPresent},
		"a version tag pulls if not present":       {"pingidentity/pingdirectory:9.1.0.0-latest", corev1.PullIfNotPresent},
		"a reference that does not parse does not": {"Ping Directory", corev1.PullIfNotPresent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := pullPolicy(tc.image); got != tc.want {
				t.Fatalf("pullPolicy(%q) = %s, want %s", tc.image, got, tc.want)
			}
		})
	}
}
