package specdiff

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// mutations change a fixture the ways real updates and careless charts do. Each reads the
// fuzzer's text s where a value is needed, so names, tags and keys can be anything.
var mutations = []func(sts *appsv1.StatefulSet, s string){
	func(sts *appsv1.StatefulSet, s string) { setProductImage(sts, "pingidentity/pingdirectory:"+s) },
	func(sts *appsv1.StatefulSet, s string) { setProductImage(sts, s) },
	func(sts *appsv1.StatefulSet, s string) {
		for i := range podSpec(sts).Containers {
			c := &podSpec(sts).Containers[i]
			c.Env = append(c.Env, corev1.EnvVar{Name: s, Value: s})
		}
	},
	func(sts *appsv1.StatefulSet, s string) { setMap(&sts.Spec.Template.Labels, s, s) },
	func(sts *appsv1.StatefulSet, s string) { setMap(&sts.Spec.Template.Annotations, "checksum/config", s) },
	func(sts *appsv1.StatefulSet, s string) { setMap(&sts.Spec.Template.Labels, "helm.sh/chart", s) },
	func(sts *appsv1.StatefulSet, s string) {
		podSpec(sts).Containers = append(podSpec(sts).Containers, corev1.Container{Name: s, Image: "busybox:" + s})
	},
	func(sts *appsv1.StatefulSet, s string) {
		podSpec(sts).Containers = append(podSpec(sts).Containers, corev1.Container{Name: "backup", Image: "pingidentity/pingdirectory:" + s})
	},
	func(sts *appsv1.StatefulSet, s string) {
		if n := len(podSpec(sts).Containers); n > 0 {
			podSpec(sts).Containers = podSpec(sts).Containers[:n-1]
		}
	},
	func(sts *appsv1.StatefulSet, s string) {
		if n := len(podSpec(sts).Containers); n > 0 {
			podSpec(sts).Containers = append(podSpec(sts).Containers, *podSpec(sts).Containers[0].DeepCopy())
		}
	},
	func(sts *appsv1.StatefulSet, s string) { slices.Reverse(podSpec(sts).Containers) },
	func(sts *appsv1.StatefulSet, s string) {
		podSpec(sts).InitContainers = append(podSpec(sts).InitContainers, corev1.Container{Name: s, Image: "busybox", Command: []string{s}})
	},
	func(sts *appsv1.StatefulSet, s string) {
		podSpec(sts).InitContainers = append(podSpec(sts).InitContainers, corev1.Container{Name: "seed", Image: "pingidentity/pingdirectory:" + s})
	},
	func(sts *appsv1.StatefulSet, s string) { sts.Spec.Replicas = new(int32(len(s) % 4)) },
	func(sts *appsv1.StatefulSet, s string) { sts.Spec.Replicas = nil },
	func(sts *appsv1.StatefulSet, s string) {
		quantities := []string{"2", "2000m", "0.0001", "1m", "3Gi"}
		for i := range podSpec(sts).Containers {
			c := &podSpec(sts).Containers[i]
			if c.Resources.Limits == nil {
				c.Resources.Limits = corev1.ResourceList{}
			}
			c.Resources.Limits[corev1.ResourceCPU] = resource.MustParse(quantities[len(s)%len(quantities)])
		}
	},
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).NodeSelector = map[string]string{} },
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).Tolerations = []corev1.Toleration{} },
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).Affinity = nil },
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).SecurityContext = nil },
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).TerminationGracePeriodSeconds = nil },
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).DeprecatedServiceAccount = s },
	func(sts *appsv1.StatefulSet, s string) {
		podSpec(sts).Volumes = append(podSpec(sts).Volumes, corev1.Volume{Name: s, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}})
	},
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).Volumes = nil },
	func(sts *appsv1.StatefulSet, s string) {
		for i := range podSpec(sts).Containers {
			c := &podSpec(sts).Containers[i]
			c.ImagePullPolicy, c.TerminationMessagePath = "", ""
			for j := range c.Ports {
				c.Ports[j].Protocol = ""
			}
			if c.LivenessProbe != nil {
				c.LivenessProbe.SuccessThreshold, c.LivenessProbe.TimeoutSeconds = 0, 0
			}
		}
	},
	func(sts *appsv1.StatefulSet, s string) {
		podSpec(sts).EphemeralContainers = append(podSpec(sts).EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: s, Image: "busybox"},
		})
	},
	func(sts *appsv1.StatefulSet, s string) { podSpec(sts).Containers = nil },
	func(sts *appsv1.StatefulSet, s string) { sts.Spec.Template = corev1.PodTemplateSpec{} },
	func(sts *appsv1.StatefulSet, s string) { sts.Spec.UpdateStrategy.RollingUpdate = nil },
	func(sts *appsv1.StatefulSet, s string) { Normalize(sts) },
}

func setProductImage(sts *appsv1.StatefulSet, image string) {
	if c := find(podSpec(sts).Containers, DefaultContainer); c != nil {
		c.Image = image
	}
}

func setMap(m *map[string]string, k, v string) {
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
}

// Decoding YAML would dominate each fuzz run; copies of one decoded object are as good.
var fuzzLive, fuzzHelm = fixture.Live(), fixture.HelmTemplate()

// mutated starts from the live object or, for an odd first byte, the helm output, and
// applies one mutation per following byte.
func mutated(ops []byte, s string) *appsv1.StatefulSet {
	sts := fuzzLive.DeepCopy()
	if len(ops) > 0 && ops[0]%2 == 1 {
		sts = fuzzHelm.DeepCopy()
	}
	for i, op := range ops {
		if i > 0 {
			mutations[int(op)%len(mutations)](sts, s)
		}
	}
	return sts
}

// images lists the template's container images, init containers first, by position.
func images(sts *appsv1.StatefulSet) []string {
	var out []string
	for _, list := range [][]corev1.Container{podSpec(sts).InitContainers, podSpec(sts).Containers} {
		for _, c := range list {
			out = append(out, c.Name+"="+c.Image)
		}
	}
	return out
}

func FuzzConfigChanges(f *testing.F) {
	f.Add([]byte{0}, []byte{1}, "")
	f.Add([]byte{0}, []byte{0, 0}, "10.3.0.0")
	f.Add([]byte{0, 2}, []byte{1, 0, 4}, "MAX_HEAP_SIZE")
	f.Add([]byte{1, 6, 10}, []byte{0, 6}, "exporter")
	f.Add([]byte{0, 9}, []byte{0, 9, 0}, "11.0.0.1-alpine_3.23.3-al17")
	f.Add([]byte{0, 7, 12}, []byte{0, 7, 12, 0}, "2602-10.3.0.3")
	f.Add([]byte{0, 15, 24}, []byte{1, 16, 17, 18, 19, 20}, "x")
	f.Add([]byte{1, 21, 22, 23, 25}, []byte{0, 26, 27, 29}, "pd")
	f.Add([]byte{0, 28, 8}, []byte{1, 1, 3, 5, 11, 13, 14}, "Bad Name")
	f.Fuzz(func(t *testing.T, opsA, opsB []byte, s string) {
		if len(opsA) > 64 || len(opsB) > 64 {
			return
		}
		a, b := mutated(opsA, s), mutated(opsB, s)
		aCopy, bCopy := a.DeepCopy(), b.DeepCopy()
		opts := DefaultOptions()

		forward, backward := ConfigChanges(a, b, opts), ConfigChanges(b, a, opts)
		if !slices.IsSorted(forward) {
			t.Fatalf("paths are not sorted: %q", forward)
		}
		if !slices.Equal(forward, backward) {
			t.Fatalf("ConfigChanges is not symmetric:\n%q\n%q", forward, backward)
		}
		if len(slices.Compact(slices.Clone(forward))) != len(forward) {
			t.Fatalf("a path is reported twice: %q", forward)
		}
		for _, p := range forward {
			if p != "spec.replicas" && !strings.HasPrefix(p, "spec.template.") {
				t.Fatalf("path %q is outside spec.replicas and spec.template", p)
			}
			if p == "spec.template.spec.containers[pingdirectory].image" {
				t.Fatalf("the product image is reported as config: %q", forward)
			}
		}
		if VersionChanged(a, b, opts) != VersionChanged(b, a, opts) {
			t.Fatal("VersionChanged is not symmetric")
		}
		// A version lives in an image: templates running the same images in the same
		// places never change it, whatever else differs.
		if slices.Equal(images(a), images(b)) && VersionChanged(a, b, opts) {
			t.Fatalf("VersionChanged with the same images %q", images(a))
		}
		if !reflect.DeepEqual(a, aCopy) || !reflect.DeepEqual(b, bCopy) {
			t.Fatal("comparing changed an object")
		}

		// Defaulting is what the API server does on the way in, so it is never a change.
		normalized := a.DeepCopy()
		Normalize(normalized)
		if got := ConfigChanges(a, normalized, opts); got != nil {
			t.Fatalf("Normalize made config changes: %q", got)
		}
		if VersionChanged(a, normalized, opts) {
			t.Fatal("Normalize made a version change")
		}
		if got := ConfigChanges(a, aCopy, opts); got != nil {
			t.Fatalf("an object differs from its copy: %q", got)
		}
	})
}
