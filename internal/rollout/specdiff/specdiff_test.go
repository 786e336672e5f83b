package specdiff

import (
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

const digest = "sha256:3f1c2d7e8a915b0c6a0e3f0d4a8e9b536f1c2d7e8a915b0c6a0e3f0d4a8e9b53"

func product(sts *appsv1.StatefulSet) *corev1.Container {
	return &sts.Spec.Template.Spec.Containers[0]
}

func podSpec(sts *appsv1.StatefulSet) *corev1.PodSpec {
	return &sts.Spec.Template.Spec
}

func withSidecar(name, image string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		podSpec(s).Containers = append(podSpec(s).Containers, corev1.Container{Name: name, Image: image})
	}
}

func withInit(name, image string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		podSpec(s).InitContainers = append(podSpec(s).InitContainers, corev1.Container{Name: name, Image: image, Command: []string{"sh", "-c", "true"}})
	}
}

func both(changes ...func(*appsv1.StatefulSet)) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		for _, c := range changes {
			c(s)
		}
	}
}

func TestVersionChanged(t *testing.T) {
	tests := map[string]struct {
		base     func() *appsv1.StatefulSet
		old, new func(*appsv1.StatefulSet)
		opts     *Options
		want     bool
	}{
		"the same object is no version change": {},
		"a new tag is a version change": {
			new:  func(s *appsv1.StatefulSet) { fixture.WithTag(s, "2602-10.3.0.3") },
			want: true,
		},
		"a new digest is a version change": {
			old:  func(s *appsv1.StatefulSet) { fixture.WithImage(s, "pingidentity/pingdirectory@"+digest) },
			new:  func(s *appsv1.StatefulSet) { fixture.WithImage(s, "pingidentity/pingdirectory@sha256:"+digest[8:]+"0") },
			want: true,
		},
		"pinning the same tag to a digest is a version change": {
			new:  func(s *appsv1.StatefulSet) { fixture.WithImage(s, fixture.Image+"@"+digest) },
			want: true,
		},
		"moving to a mirror registry is a version change": {
			new: func(s *appsv1.StatefulSet) {
				fixture.WithImage(s, "registry.local:5000/ping/pingdirectory:9.0.0.1-latest")
			},
			want: true,
		},
		"docker.io written out is the same image": {
			new: func(s *appsv1.StatefulSet) { fixture.WithImage(s, "docker.io/"+fixture.Image) },
		},
		"no tag is the same image as latest": {
			old: func(s *appsv1.StatefulSet) { fixture.WithImage(s, "pingidentity/pingdirectory") },
			new: func(s *appsv1.StatefulSet) { fixture.WithImage(s, "pingidentity/pingdirectory:latest") },
		},
		"a changed image that does not parse is a version change": {
			new:  func(s *appsv1.StatefulSet) { fixture.WithImage(s, "pingidentity/pingdirectory:bad tag") },
			want: true,
		},
		"a sidecar of the product repository with a new tag is a version change": {
			old:  withSidecar("backup", "pingidentity/pingdirectory:9.0.0.1-latest"),
			new:  withSidecar("backup", "docker.io/pingidentity/pingdirectory:10.3.0.0"),
			want: true,
		},
		"an init container of the product repository with a new tag is a version change": {
			old:  withInit("seed", "pingidentity/pingdirectory:9.0.0.1-latest"),
			new:  withInit("seed", "pingidentity/pingdirectory:10.3.0.0"),
			want: true,
		},
		"a sidecar moving onto the product repository is a version change": {
			old:  withSidecar("backup", "busybox:1.36"),
			new:  withSidecar("backup", "pingidentity/pingdirectory:10.3.0.0"),
			want: true,
		},
		"a sidecar of the new product repository is a version change": {
			old: both(withSidecar("backup", "registry.local:5000/ping/pingdirectory:9.0.0.1")),
			new: both(
				func(s *appsv1.StatefulSet) {
					fixture.WithImage(s, "registry.local:5000/ping/pingdirectory:9.0.0.1-latest")
				},
				withSidecar("backup", "registry.local:5000/ping/pingdirectory:10.3.0.0"),
			),
			want: true,
		},
		"a sidecar of another repository with a new tag is no version change": {
			old: withSidecar("exporter", "prom/statsd-exporter:v0.26.0"),
			new: withSidecar("exporter", "prom/statsd-exporter:v0.27.0"),
		},
		"adding a sidecar of the product repository is no version change": {
			new: withSidecar("backup", "pingidentity/pingdirectory:10.3.0.0"),
		},
		"a config change alone is no version change": {
			new: func(s *appsv1.StatefulSet) { product(s).Env = []corev1.EnvVar{{Name: "MAX_HEAP_SIZE", Value: "4g"}} },
		},
		"the product container is found by Options.Container": {
			old:  func(s *appsv1.StatefulSet) { product(s).Name = "directory" },
			new:  func(s *appsv1.StatefulSet) { fixture.WithTag(s, "10.3.0.0"); product(s).Name = "directory" },
			opts: &Options{Container: "directory"},
			want: true,
		},
		"a zero Options means the pingdirectory container": {
			new:  func(s *appsv1.StatefulSet) { fixture.WithTag(s, "10.3.0.0") },
			opts: &Options{},
			want: true,
		},
		"a product container missing on one side is no version change": {
			new: func(s *appsv1.StatefulSet) { fixture.WithImage(s, "x"); product(s).Name = "renamed" },
		},
		"a list with a repeated name against itself is no version change": {
			old: both(withSidecar("backup", "pingidentity/pingdirectory:9.0.0.1-latest"), withSidecar("backup", "pingidentity/pingdirectory:10.3.0.0")),
			new: both(withSidecar("backup", "pingidentity/pingdirectory:9.0.0.1-latest"), withSidecar("backup", "pingidentity/pingdirectory:10.3.0.0")),
		},
		"a list with a repeated name is compared by position": {
			old:  both(withSidecar("backup", "pingidentity/pingdirectory:9.0.0.1-latest"), withSidecar("backup", "pingidentity/pingdirectory:10.3.0.0")),
			new:  both(withSidecar("backup", "pingidentity/pingdirectory:10.3.0.0"), withSidecar("backup", "pingidentity/pingdirectory:9.0.0.1-latest")),
			want: true,
		},
		"helm template output against the live object is no version change": {
			base: fixture.Live,
			new: func(s *appsv1.StatefulSet) {
				*s = *fixture.HelmTemplate()
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			base := tc.base
			if base == nil {
				base = fixture.Live
			}
			old, updated := base(), base()
			if tc.old != nil {
				tc.old(old)
			}
			if tc.new != nil {
				tc.new(updated)
			}
			opts := DefaultOptions()
			if tc.opts != nil {
				opts = *tc.opts
			}
			if got := VersionChanged(old, updated, opts); got != tc.want {
				t.Fatalf("VersionChanged = %v, want %v", got, tc.want)
			}
			if got := VersionChanged(updated, old, opts); got != tc.want {
				t.Fatalf("VersionChanged with the sides swapped = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestVersionChangedOnNil(t *testing.T) {
	tests := map[string]struct {
		old, new *appsv1.StatefulSet
	}{
		"a create has no old object":     {old: nil, new: fixture.Live()},
		"no new object is no change":     {old: fixture.Live(), new: nil},
		"two nil objects are no change":  {},
		"an empty template is no change": {old: &appsv1.StatefulSet{}, new: fixture.Live()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if VersionChanged(tc.old, tc.new, DefaultOptions()) {
				t.Fatal("VersionChanged = true, want false")
			}
		})
	}
}

func TestConfigChanges(t *testing.T) {
	tests := map[string]struct {
		old, new func(*appsv1.StatefulSet)
		opts     *Options
		want     []string
	}{
		"the same object has no change": {},
		"a new tag alone is no config change": {
			new: func(s *appsv1.StatefulSet) { fixture.WithTag(s, "2602-10.3.0.3") },
		},
		"a new digest alone is no config change": {
			new: func(s *appsv1.StatefulSet) { fixture.WithImage(s, "pingidentity/pingdirectory@"+digest) },
		},

		"a new replica count is reported": {
			new:  func(s *appsv1.StatefulSet) { s.Spec.Replicas = new(int32(3)) },
			want: []string{"spec.replicas"},
		},
		"no replica count is the same as 1": {
			old: func(s *appsv1.StatefulSet) { s.Spec.Replicas = new(int32(1)) },
			new: func(s *appsv1.StatefulSet) { s.Spec.Replicas = nil },
		},
		"a new partition is no config change": {
			new: func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(1)) },
		},
		"a new update strategy is no config change": {
			new: func(s *appsv1.StatefulSet) {
				s.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
			},
		},
		"the StatefulSet's own annotations are not config": {
			new: func(s *appsv1.StatefulSet) { s.Annotations["pdguard.io/canary"] = "{}" },
		},

		"an added template label is reported": {
			new:  func(s *appsv1.StatefulSet) { s.Spec.Template.Labels["team"] = "directory" },
			want: []string{"spec.template.metadata.labels[team]"},
		},
		"a changed template label is reported": {
			new:  func(s *appsv1.StatefulSet) { s.Spec.Template.Labels["clusterIdentifier"] = "other" },
			want: []string{"spec.template.metadata.labels[clusterIdentifier]"},
		},
		"a removed template label is reported": {
			new:  func(s *appsv1.StatefulSet) { delete(s.Spec.Template.Labels, "clusterIdentifier") },
			want: []string{"spec.template.metadata.labels[clusterIdentifier]"},
		},
		"the chart version label is ignored": {
			new: func(s *appsv1.StatefulSet) {
				s.Spec.Template.Labels["helm.sh/chart"] = "ping-devops-0.12.1"
				s.Spec.Template.Labels["app.kubernetes.io/version"] = "10.3.0.0"
			},
		},
		"a zero Options ignores no label": {
			new:  func(s *appsv1.StatefulSet) { s.Spec.Template.Labels["helm.sh/chart"] = "ping-devops-0.12.1" },
			opts: &Options{},
			want: []string{"spec.template.metadata.labels[helm.sh/chart]"},
		},
		"a new config checksum is reported": {
			new:  func(s *appsv1.StatefulSet) { s.Spec.Template.Annotations["checksum/config"] = "0000" },
			want: []string{"spec.template.metadata.annotations[checksum/config]"},
		},
		"a removed annotation is reported": {
			new:  func(s *appsv1.StatefulSet) { s.Spec.Template.Annotations = nil },
			want: []string{"spec.template.metadata.annotations[checksum/config]"},
		},
		"a rollout restart stamp is ignored": {
			new: func(s *appsv1.StatefulSet) {
				s.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "2026-03-02T10:00:00Z"
			},
		},
		"other template metadata is reported by field": {
			new:  func(s *appsv1.StatefulSet) { s.Spec.Template.Finalizers = []string{"example.com/keep"} },
			want: []string{"spec.template.metadata.finalizers"},
		},

		"an added env var is reported": {
			new:  func(s *appsv1.StatefulSet) { product(s).Env = []corev1.EnvVar{{Name: "MAX_HEAP_SIZE", Value: "4g"}} },
			want: []string{"spec.template.spec.containers[pingdirectory].env"},
		},
		"a changed env var is reported": {
			old:  func(s *appsv1.StatefulSet) { product(s).Env = []corev1.EnvVar{{Name: "MAX_HEAP_SIZE", Value: "4g"}} },
			new:  func(s *appsv1.StatefulSet) { product(s).Env = []corev1.EnvVar{{Name: "MAX_HEAP_SIZE", Value: "6g"}} },
			want: []string{"spec.template.spec.containers[pingdirectory].env"},
		},
		"an empty env list is the same as none": {
			new: func(s *appsv1.StatefulSet) { product(s).Env = []corev1.EnvVar{} },
		},
		"a new envFrom source is reported": {
			new: func(s *appsv1.StatefulSet) {
				product(s).EnvFrom = append(product(s).EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "extra"}}})
			},
			want: []string{"spec.template.spec.containers[pingdirectory].envFrom"},
		},
		"a new memory limit is reported": {
			new: func(s *appsv1.StatefulSet) {
				product(s).Resources.Limits[corev1.ResourceMemory] = resource.MustParse("12Gi")
			},
			want: []string{"spec.template.spec.containers[pingdirectory].resources"},
		},
		"2 CPUs written as 2000m are the same": {
			new: func(s *appsv1.StatefulSet) {
				product(s).Resources.Limits[corev1.ResourceCPU] = resource.MustParse("2000m")
			},
		},
		"a CPU request below a milli-CPU is the 1m it is stored as": {
			old: func(s *appsv1.StatefulSet) {
				product(s).Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1m")
			},
			new: func(s *appsv1.StatefulSet) {
				product(s).Resources.Requests[corev1.ResourceCPU] = resource.MustParse("0.0001")
			},
		},
		"an explicit pull policy change is reported": {
			new:  func(s *appsv1.StatefulSet) { product(s).ImagePullPolicy = corev1.PullAlways },
			want: []string{"spec.template.spec.containers[pingdirectory].imagePullPolicy"},
		},
		"a pull policy left to the default is the default": {
			new: func(s *appsv1.StatefulSet) { product(s).ImagePullPolicy = "" },
		},
		"a probe timeout change is reported": {
			new:  func(s *appsv1.StatefulSet) { product(s).ReadinessProbe.TimeoutSeconds = 10 },
			want: []string{"spec.template.spec.containers[pingdirectory].readinessProbe"},
		},
		"a probe without its default thresholds is the same": {
			new: func(s *appsv1.StatefulSet) { product(s).StartupProbe.SuccessThreshold = 0 },
		},
		"a port without a protocol is TCP": {
			new: func(s *appsv1.StatefulSet) { product(s).Ports[0].Protocol = "" },
		},
		"a new port is reported": {
			new: func(s *appsv1.StatefulSet) {
				product(s).Ports = append(product(s).Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9090})
			},
			want: []string{"spec.template.spec.containers[pingdirectory].ports"},
		},
		"a lifecycle of {} is no lifecycle": {
			new: func(s *appsv1.StatefulSet) { product(s).Lifecycle = nil },
		},
		"several container fields are reported one by one": {
			new: func(s *appsv1.StatefulSet) {
				product(s).Args = []string{"--verbose"}
				product(s).VolumeMounts = nil
				product(s).Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
			},
			want: []string{
				"spec.template.spec.containers[pingdirectory].args",
				"spec.template.spec.containers[pingdirectory].env",
				"spec.template.spec.containers[pingdirectory].volumeMounts",
			},
		},

		"an added sidecar is reported": {
			new:  withSidecar("exporter", "prom/statsd-exporter:v0.26.0"),
			want: []string{"spec.template.spec.containers[exporter]"},
		},
		"a removed sidecar is reported": {
			old:  withSidecar("exporter", "prom/statsd-exporter:v0.26.0"),
			want: []string{"spec.template.spec.containers[exporter]"},
		},
		"a new image for a sidecar of another repository is reported": {
			old:  withSidecar("exporter", "prom/statsd-exporter:v0.26.0"),
			new:  withSidecar("exporter", "prom/statsd-exporter:v0.27.0"),
			want: []string{"spec.template.spec.containers[exporter].image"},
		},
		"a sidecar image spelled with docker.io is the same": {
			old: withSidecar("exporter", "prom/statsd-exporter:v0.26.0"),
			new: withSidecar("exporter", "docker.io/prom/statsd-exporter:v0.26.0"),
		},
		"a new image for a sidecar of the product repository is a version change only": {
			old: withSidecar("backup", "pingidentity/pingdirectory:9.0.0.1-latest"),
			new: withSidecar("backup", "pingidentity/pingdirectory:10.3.0.0"),
		},
		"reordered containers are reported": {
			old: withSidecar("exporter", "prom/statsd-exporter:v0.26.0"),
			new: func(s *appsv1.StatefulSet) {
				withSidecar("exporter", "prom/statsd-exporter:v0.26.0")(s)
				slices.Reverse(podSpec(s).Containers)
			},
			want: []string{"spec.template.spec.containers"},
		},
		"a repeated container name is reported on the list": {
			new: func(s *appsv1.StatefulSet) {
				podSpec(s).Containers = append(podSpec(s).Containers, *product(s).DeepCopy())
			},
			want: []string{"spec.template.spec.containers"},
		},
		"a repeated container name with the same containers is no change": {
			old: func(s *appsv1.StatefulSet) {
				podSpec(s).Containers = append(podSpec(s).Containers, *product(s).DeepCopy())
			},
			new: func(s *appsv1.StatefulSet) {
				podSpec(s).Containers = append(podSpec(s).Containers, *product(s).DeepCopy())
				fixture.WithTag(s, "10.3.0.0")
			},
		},
		"the product container renamed is removed and added": {
			new: func(s *appsv1.StatefulSet) { product(s).Name = "directory" },
			want: []string{
				"spec.template.spec.containers[directory]",
				"spec.template.spec.containers[pingdirectory]",
			},
		},
		"the product container is found by Options.Container": {
			old:  func(s *appsv1.StatefulSet) { product(s).Name = "directory" },
			new:  func(s *appsv1.StatefulSet) { fixture.WithTag(s, "10.3.0.0"); product(s).Name = "directory" },
			opts: &Options{Container: "directory"},
		},

		"an added init container is reported": {
			new:  withInit("seed", "busybox:1.36"),
			want: []string{"spec.template.spec.initContainers[seed]"},
		},
		"a changed init container command is reported": {
			old: withInit("seed", "busybox:1.36"),
			new: func(s *appsv1.StatefulSet) {
				withInit("seed", "busybox:1.36")(s)
				podSpec(s).InitContainers[0].Command = []string{"sh"}
			},
			want: []string{"spec.template.spec.initContainers[seed].command"},
		},
		"a new image for an init container of the product repository is a version change only": {
			old: withInit("seed", "pingidentity/pingdirectory:9.0.0.1-latest"),
			new: withInit("seed", "pingidentity/pingdirectory:10.3.0.0"),
		},
		"an init container named like the product container still has its image compared": {
			old:  withInit("pingdirectory", "busybox:1.36"),
			new:  withInit("pingdirectory", "busybox:1.37"),
			want: []string{"spec.template.spec.initContainers[pingdirectory].image"},
		},
		"reordered init containers are reported": {
			old:  both(withInit("a", "busybox"), withInit("b", "busybox")),
			new:  both(withInit("b", "busybox"), withInit("a", "busybox")),
			want: []string{"spec.template.spec.initContainers"},
		},

		"a new volume is reported": {
			new: func(s *appsv1.StatefulSet) {
				podSpec(s).Volumes = append(podSpec(s).Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			},
			want: []string{"spec.template.spec.volumes"},
		},
		"a config map volume without a default mode has mode 420": {
			old: func(s *appsv1.StatefulSet) {
				podSpec(s).Volumes = append(podSpec(s).Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{DefaultMode: new(int32(420))}}})
			},
			new: func(s *appsv1.StatefulSet) {
				podSpec(s).Volumes = append(podSpec(s).Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}})
			},
		},
		"a volume without a source is an emptyDir": {
			old: func(s *appsv1.StatefulSet) {
				podSpec(s).Volumes = append(podSpec(s).Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			},
			new: func(s *appsv1.StatefulSet) {
				podSpec(s).Volumes = append(podSpec(s).Volumes, corev1.Volume{Name: "tmp"})
			},
		},
		"a new pod security context is reported": {
			new:  func(s *appsv1.StatefulSet) { podSpec(s).SecurityContext.RunAsUser = new(int64(1000)) },
			want: []string{"spec.template.spec.securityContext"},
		},
		"no pod security context is the empty one": {
			old: func(s *appsv1.StatefulSet) { podSpec(s).SecurityContext = &corev1.PodSecurityContext{} },
			new: func(s *appsv1.StatefulSet) { podSpec(s).SecurityContext = nil },
		},
		"an affinity of {} is no affinity": {
			new: func(s *appsv1.StatefulSet) { podSpec(s).Affinity = nil },
		},
		"an empty nodeSelector is none": {
			new: func(s *appsv1.StatefulSet) { podSpec(s).NodeSelector = map[string]string{} },
		},
		"a nodeSelector is reported": {
			new:  func(s *appsv1.StatefulSet) { podSpec(s).NodeSelector = map[string]string{"pool": "directory"} },
			want: []string{"spec.template.spec.nodeSelector"},
		},
		"an empty tolerations list is none": {
			new: func(s *appsv1.StatefulSet) { podSpec(s).Tolerations = []corev1.Toleration{} },
		},
		"a new grace period is reported": {
			new:  func(s *appsv1.StatefulSet) { podSpec(s).TerminationGracePeriodSeconds = nil },
			want: []string{"spec.template.spec.terminationGracePeriodSeconds"},
		},
		"no grace period is the default 30 seconds": {
			old: func(s *appsv1.StatefulSet) { podSpec(s).TerminationGracePeriodSeconds = new(int64(30)) },
			new: func(s *appsv1.StatefulSet) { podSpec(s).TerminationGracePeriodSeconds = nil },
		},
		"the deprecated service account field is serviceAccountName": {
			old: func(s *appsv1.StatefulSet) { podSpec(s).ServiceAccountName = "directory" },
			new: func(s *appsv1.StatefulSet) { podSpec(s).DeprecatedServiceAccount = "directory" },
		},
		"a new service account is reported once": {
			new:  func(s *appsv1.StatefulSet) { podSpec(s).ServiceAccountName = "directory" },
			want: []string{"spec.template.spec.serviceAccountName"},
		},
		"defaulted pod fields left out are the defaults": {
			new: func(s *appsv1.StatefulSet) {
				podSpec(s).RestartPolicy, podSpec(s).DNSPolicy, podSpec(s).SchedulerName = "", "", ""
			},
		},

		"a version and config change together report only the config": {
			new: func(s *appsv1.StatefulSet) {
				fixture.WithTag(s, "10.3.0.0")
				s.Spec.Template.Annotations["checksum/config"] = "0000"
				product(s).Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1")
				s.Spec.Replicas = new(int32(3))
			},
			want: []string{
				"spec.replicas",
				"spec.template.metadata.annotations[checksum/config]",
				"spec.template.spec.containers[pingdirectory].resources",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			old, updated := fixture.Live(), fixture.Live()
			if tc.old != nil {
				tc.old(old)
			}
			if tc.new != nil {
				tc.new(updated)
			}
			opts := DefaultOptions()
			if tc.opts != nil {
				opts = *tc.opts
			}
			if got := ConfigChanges(old, updated, opts); !slices.Equal(got, tc.want) {
				t.Fatalf("ConfigChanges =\n%q\nwant\n%q", got, tc.want)
			}
			if got := ConfigChanges(updated, old, opts); !slices.Equal(got, tc.want) {
				t.Fatalf("ConfigChanges with the sides swapped =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestConfigChangesOnNil(t *testing.T) {
	tests := map[string]struct {
		old, new *appsv1.StatefulSet
		want     []string
	}{
		"two nil objects have no change": {},
		"a nil object is an empty one": {
			old:  nil,
			new:  &appsv1.StatefulSet{},
			want: nil,
		},
		"a create lists what the new object sets": {
			old: nil,
			new: fixture.Live(),
			want: []string{
				"spec.replicas",
				"spec.template.metadata.annotations[checksum/config]",
				"spec.template.metadata.labels[app.kubernetes.io/instance]",
				"spec.template.metadata.labels[app.kubernetes.io/managed-by]",
				"spec.template.metadata.labels[app.kubernetes.io/name]",
				"spec.template.metadata.labels[clusterIdentifier]",
				"spec.template.spec.containers[pingdirectory]",
				"spec.template.spec.enableServiceLinks",
				"spec.template.spec.securityContext",
				"spec.template.spec.shareProcessNamespace",
				"spec.template.spec.terminationGracePeriodSeconds",
				"spec.template.spec.volumes",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ConfigChanges(tc.old, tc.new, DefaultOptions()); !slices.Equal(got, tc.want) {
				t.Fatalf("ConfigChanges =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// webhook check --old live.yaml --new helm-template.yaml must see no change between a
// release's stored object and its own chart output, and still see real changes.
func TestHelmTemplateAgainstLive(t *testing.T) {
	tests := map[string]struct {
		change func(*appsv1.StatefulSet)
		want   []string
	}{
		"the chart output of the live release has no change": {},
		"a new tag in the chart output is a version change only": {
			change: func(s *appsv1.StatefulSet) { fixture.WithTag(s, "10.3.0.0-latest") },
		},
		"a new env var in the chart output is reported": {
			change: func(s *appsv1.StatefulSet) { product(s).Env = []corev1.EnvVar{{Name: "MAX_HEAP_SIZE", Value: "4g"}} },
			want:   []string{"spec.template.spec.containers[pingdirectory].env"},
		},
		"a new config checksum in the chart output is reported": {
			change: func(s *appsv1.StatefulSet) { s.Spec.Template.Annotations["checksum/config"] = "0000" },
			want:   []string{"spec.template.metadata.annotations[checksum/config]"},
		},
		"new resources in the chart output are reported": {
			change: func(s *appsv1.StatefulSet) { product(s).Resources.Limits[corev1.ResourceCPU] = resource.MustParse("4") },
			want:   []string{"spec.template.spec.containers[pingdirectory].resources"},
		},
		"a newer chart version alone is no change": {
			change: func(s *appsv1.StatefulSet) { s.Spec.Template.Labels["helm.sh/chart"] = "ping-devops-0.12.1" },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			live, helm := fixture.Live(), fixture.HelmTemplate()
			if tc.change != nil {
				tc.change(helm)
			}
			if got := ConfigChanges(live, helm, DefaultOptions()); !slices.Equal(got, tc.want) {
				t.Fatalf("ConfigChanges(live, helm) =\n%q\nwant\n%q", got, tc.want)
			}
			if got := ConfigChanges(helm, live, DefaultOptions()); !slices.Equal(got, tc.want) {
				t.Fatalf("ConfigChanges(helm, live) =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestConfigChangesLeavesItsArgumentsAlone(t *testing.T) {
	old, helm := fixture.Live(), fixture.HelmTemplate()
	podSpec(helm).Volumes = append(podSpec(helm).Volumes, corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}})
	oldCopy, helmCopy := old.DeepCopy(), helm.DeepCopy()
	ConfigChanges(old, helm, DefaultOptions())
	VersionChanged(old, helm, DefaultOptions())
	if !reflect.DeepEqual(old, oldCopy) || !reflect.DeepEqual(helm, helmCopy) {
		t.Fatal("ConfigChanges changed an object it compared")
	}
}

// The field lists are built from the API types; these catch a Kubernetes upgrade that
// would make the bit set of changed container fields overflow or drop a field.
func TestFieldListsCoverTheAPITypes(t *testing.T) {
	if n := len(containerFields); n > 64 {
		t.Fatalf("corev1.Container has %d fields; changedFields keeps them in a uint64", n)
	}
	tests := map[string]struct {
		t       reflect.Type
		fields  []field
		skipped int
	}{
		"every container field is compared":                 {reflect.TypeFor[corev1.Container](), containerFields, 0},
		"every pod spec field but three is compared":        {reflect.TypeFor[corev1.PodSpec](), podSpecFields, 3},
		"every template metadata field but two is compared": {reflect.TypeFor[corev1.PodTemplateSpec]().Field(0).Type, metaFields, 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, want := len(tc.fields), tc.t.NumField()-tc.skipped; got != want {
				t.Fatalf("%d of %s's %d fields are compared, want %d", got, tc.t, tc.t.NumField(), want)
			}
		})
	}
	i := slices.IndexFunc(containerFields, func(f field) bool { return f.index == containerImageIndex })
	if i < 0 || containerFields[i].name != "image" {
		t.Fatal("containerImageIndex does not point at the image field")
	}
}
