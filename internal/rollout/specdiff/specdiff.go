// Package specdiff splits a StatefulSet update into the two kinds of change pdguard keeps
// apart: a new product version (the PingDirectory image) and a configuration change
// (anything else in the pod template, or the replica count). A rollout that carries both
// cannot tell which of them broke a failed canary, so the guard rejects it.
//
// It runs on the admission path for every StatefulSet update, so it compares fields in
// place and copies only the parts that still lack API server defaults: for an update the
// API server has already defaulted, the paths it reports are all it allocates.
package specdiff

import (
	"reflect"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pdguard/pdguard/internal/rollout/imageref"
)

// DefaultContainer is the product container's name in the ping-devops chart.
const DefaultContainer = "pingdirectory"

// Options say which container is the product and which template metadata is not config.
type Options struct {
	// Container is the product container's name; empty means DefaultContainer.
	Container string
	// IgnoreLabels and IgnoreAnnotations are pod template metadata keys whose change is
	// not a configuration change. A zero Options ignores none; see DefaultOptions.
	IgnoreLabels, IgnoreAnnotations []string
}

// DefaultOptions ignore the chart's version labels, which change with every chart release
// whatever the values, and the annotation `kubectl rollout restart` stamps, which restarts
// pods without changing them.
func DefaultOptions() Options {
	return Options{
		Container:         DefaultContainer,
		IgnoreLabels:      []string{"helm.sh/chart", "app.kubernetes.io/version"},
		IgnoreAnnotations: []string{"kubectl.kubernetes.io/restartedAt"},
	}
}

func (o Options) container() string {
	if o.Container == "" {
		return DefaultContainer
	}
	return o.Container
}

// VersionChanged reports whether the update changes the product version: the product
// container's image reference (tag or digest, with docker.io/ spelled out or not), or the
// image of any container or init container, present on both sides, that runs the product
// image's repository (a sidecar or init step of the same product must move with it). A nil
// StatefulSet counts as an empty one.
func VersionChanged(oldSet, newSet *appsv1.StatefulSet, opts Options) bool {
	a, b := &templateOf(oldSet).Spec, &templateOf(newSet).Spec
	name := opts.container()
	oc, nc := find(a.Containers, name), find(b.Containers, name)
	if oc != nil && nc != nil && !sameImage(oc.Image, nc.Image) {
		return true
	}
	product := productRepositories(oc, nc)
	return sameRepositoryChanged(a.InitContainers, b.InitContainers, product) ||
		sameRepositoryChanged(a.Containers, b.Containers, product)
}

// sameRepositoryChanged matches containers by name. A list with a repeated name cannot be
// matched that way (the API server rejects one), so it is compared by position, which
// still gives the same answer from either side and for an object against itself.
func sameRepositoryChanged(a, b []corev1.Container, product repositories) bool {
	if repeatsName(a) || repeatsName(b) {
		for i := range min(len(a), len(b)) {
			if imageMoved(&a[i], &b[i], product) {
				return true
			}
		}
		return false
	}
	for i := range a {
		if other := find(b, a[i].Name); other != nil && imageMoved(&a[i], other, product) {
			return true
		}
	}
	return false
}

func imageMoved(a, b *corev1.Container, product repositories) bool {
	return !sameImage(a.Image, b.Image) && (product.has(a.Image) || product.has(b.Image))
}

// ConfigChanges lists every change in spec.replicas and spec.template other than the
// product version, as sorted paths:
//
//	spec.replicas
//	spec.template.metadata.labels[team]
//	spec.template.metadata.annotations[checksum/config]
//	spec.template.metadata.<field>
//	spec.template.spec.<field>                        volumes, securityContext, affinity...
//	spec.template.spec.containers[sidecar]            added or removed
//	spec.template.spec.containers[pingdirectory].env  one path per container field
//	spec.template.spec.initContainers[init].command
//	spec.template.spec.containers                     reordered, or names repeated
//
// Both sides are compared as the API server would store them (see Normalize), so helm
// template output and the live object of the same release have no change. The image of the
// product container, and of containers running the product's repository, is left to
// VersionChanged. spec.updateStrategy is not config: pdguard itself moves the partition.
// The result is nil when nothing changed, and the same with the sides swapped. A nil
// StatefulSet counts as an empty one.
func ConfigChanges(oldSet, newSet *appsv1.StatefulSet, opts Options) []string {
	a, b := templateOf(oldSet), templateOf(newSet)
	d := differ{opts: opts, a: &a.Spec, b: &b.Spec}
	if replicasOf(oldSet) != replicasOf(newSet) {
		d.add("spec.replicas")
	}
	d.keys("spec.template.metadata.labels", a.Labels, b.Labels, opts.IgnoreLabels)
	d.keys("spec.template.metadata.annotations", a.Annotations, b.Annotations, opts.IgnoreAnnotations)
	d.fields(metaFields, reflect.ValueOf(&a.ObjectMeta).Elem(), reflect.ValueOf(&b.ObjectMeta).Elem())
	d.podSpec(&a.Spec, &b.Spec)
	slices.Sort(d.paths)
	return d.paths
}

type differ struct {
	opts  Options
	a, b  *corev1.PodSpec
	paths []string

	// product is read on first use: most updates change no image outside the product
	// container, so parsing the product images is usually not needed.
	product     repositories
	productRead bool
}

func (d *differ) productRepositories() repositories {
	if !d.productRead {
		name := d.opts.container()
		d.product = productRepositories(find(d.a.Containers, name), find(d.b.Containers, name))
		d.productRead = true
	}
	return d.product
}

func (d *differ) add(path string) {
	d.paths = append(d.paths, path)
}

func (d *differ) keys(path string, a, b map[string]string, ignore []string) {
	for k, va := range a {
		if vb, ok := b[k]; (!ok || va != vb) && !slices.Contains(ignore, k) {
			d.add(path + "[" + k + "]")
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !slices.Contains(ignore, k) {
			d.add(path + "[" + k + "]")
		}
	}
}

func (d *differ) fields(fields []field, a, b reflect.Value) {
	for _, f := range fields {
		if !equal(a.Field(f.index), b.Field(f.index)) {
			d.add(f.path)
		}
	}
}

func (d *differ) podSpec(a, b *corev1.PodSpec) {
	d.fields(podSpecFields, reflect.ValueOf(defaultedPodSpec(a)).Elem(), reflect.ValueOf(defaultedPodSpec(b)).Elem())
	d.containers("spec.template.spec.initContainers", a.InitContainers, b.InitContainers, false)
	d.containers("spec.template.spec.containers", a.Containers, b.Containers, true)
}

// containers matches containers by name, as the API server requires names to be unique.
// A list with a repeated name cannot be matched, so any change in it is reported on the
// list as a whole; so is a new order, which starts init containers in another order and
// gives the pods a new revision.
func (d *differ) containers(path string, a, b []corev1.Container, regular bool) {
	if repeatsName(a) || repeatsName(b) {
		changed := len(a) != len(b)
		for i := 0; !changed && i < len(a); i++ {
			changed = d.changedFields(&a[i], &b[i], regular) != 0
		}
		if changed {
			d.add(path)
		}
		return
	}
	for i := range a {
		c := &a[i]
		other := find(b, c.Name)
		if other == nil {
			d.add(path + "[" + c.Name + "]")
			continue
		}
		for fields, k := d.changedFields(c, other, regular), 0; fields != 0; fields, k = fields>>1, k+1 {
			if fields&1 != 0 {
				d.add(path + "[" + c.Name + "]." + containerFields[k].name)
			}
		}
	}
	for i := range b {
		if find(a, b[i].Name) == nil {
			d.add(path + "[" + b[i].Name + "]")
		}
	}
	if reordered(a, b) {
		d.add(path)
	}
}

// changedFields returns a bit per entry of containerFields whose value differs once both
// containers have their defaults.
func (d *differ) changedFields(a, b *corev1.Container, regular bool) uint64 {
	isProduct := regular && a.Name == d.opts.container() && b.Name == a.Name
	va, vb := reflect.ValueOf(defaultedContainer(a)).Elem(), reflect.ValueOf(defaultedContainer(b)).Elem()
	var changed uint64
	for k, f := range containerFields {
		if f.index == containerImageIndex {
			if isProduct || sameImage(a.Image, b.Image) || d.productRepositories().has(a.Image) || d.productRepositories().has(b.Image) {
				continue
			}
		}
		if !equal(va.Field(f.index), vb.Field(f.index)) {
			changed |= 1 << k
		}
	}
	return changed
}

func find(list []corev1.Container, name string) *corev1.Container {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func repeatsName(list []corev1.Container) bool {
	for i := range list {
		for j := i + 1; j < len(list); j++ {
			if list[i].Name == list[j].Name {
				return true
			}
		}
	}
	return false
}

// reordered is true when the containers both lists have are not in the same order.
func reordered(a, b []corev1.Container) bool {
	i, j := 0, 0
	for {
		for i < len(a) && find(b, a[i].Name) == nil {
			i++
		}
		for j < len(b) && find(a, b[j].Name) == nil {
			j++
		}
		if i == len(a) || j == len(b) {
			return false
		}
		if a[i].Name != b[j].Name {
			return true
		}
		i, j = i+1, j+1
	}
}

// sameImage is true when two image strings name the same image: equal strings, or
// references that parse to the same repository (docker.io/ spelled out or not), tag and
// digest ("pingdirectory" and "pingdirectory:latest").
func sameImage(a, b string) bool {
	if a == b {
		return true
	}
	ra, errA := imageref.Parse(a)
	rb, errB := imageref.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	return ra.Tag == rb.Tag && ra.Digest == rb.Digest && ra.FullRepository() == rb.FullRepository()
}

// repositories holds the full repository of the product image on each side ("" when that
// side has no product container or its image does not parse).
type repositories [2]string

func productRepositories(a, b *corev1.Container) repositories {
	var r repositories
	for i, c := range []*corev1.Container{a, b} {
		if c != nil {
			r[i] = fullRepository(c.Image)
		}
	}
	return r
}

func (r repositories) has(image string) bool {
	if r[0] == "" && r[1] == "" {
		return false
	}
	repo := fullRepository(image)
	return repo != "" && (repo == r[0] || repo == r[1])
}

func fullRepository(image string) string {
	ref, err := imageref.Parse(image)
	if err != nil {
		return ""
	}
	return ref.FullRepository()
}

func templateOf(sts *appsv1.StatefulSet) *corev1.PodTemplateSpec {
	if sts == nil {
		return &corev1.PodTemplateSpec{}
	}
	return &sts.Spec.Template
}

// replicasOf reads spec.replicas as the API server defaults it: absent means 1.
func replicasOf(sts *appsv1.StatefulSet) int32 {
	if sts == nil || sts.Spec.Replicas == nil {
		return 1
	}
	return *sts.Spec.Replicas
}

// field is one struct field compared on its own, named by its JSON name.
type field struct {
	index int
	name  string
	path  string
}

// The field lists come from the API types themselves, so a field added in a later
// Kubernetes version is compared without a change here.
var (
	metaFields          = jsonFields(reflect.TypeFor[metav1.ObjectMeta](), "spec.template.metadata.", "labels", "annotations")
	podSpecFields       = jsonFields(reflect.TypeFor[corev1.PodSpec](), "spec.template.spec.", "containers", "initContainers", "serviceAccount")
	containerFields     = jsonFields(reflect.TypeFor[corev1.Container](), "")
	containerImageIndex = fieldIndex(reflect.TypeFor[corev1.Container](), "Image")
)

// jsonFields lists t's fields but skip. serviceAccount is skipped because defaulting keeps
// it equal to serviceAccountName, which is reported instead.
func jsonFields(t reflect.Type, prefix string, skip ...string) []field {
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" || slices.Contains(skip, name) {
			continue
		}
		fields = append(fields, field{index: i, name: name, path: prefix + name})
	}
	return fields
}

func fieldIndex(t reflect.Type, name string) int {
	f, _ := t.FieldByName(name)
	return f.Index[0]
}
