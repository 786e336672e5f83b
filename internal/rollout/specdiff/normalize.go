package specdiff

import (
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/rollout/imageref"
)

// Normalize fills in the defaults the API server gives a StatefulSet when it stores one
// (apps/v1 and core/v1 defaulting of the spec and pod template, the claim templates'
// apiVersion, kind, volumeMode and phase, resource quantities rounded up to milli units),
// and drops empty lists and maps as storage does. Afterwards helm template output and the
// stored object of the same chart render compare equal. Nested objects it defaults are
// replaced, never changed in place.
//
// Left out: defaults behind feature gates that vary by cluster version (a rolling
// update's maxUnavailable, on by default since 1.37) and those of in-tree volume plugins
// that Kubernetes removed (iSCSI, RBD, Azure Disk, ScaleIO).
func Normalize(sts *appsv1.StatefulSet) {
	if sts == nil {
		return
	}
	spec := &sts.Spec
	if spec.Replicas == nil {
		spec.Replicas = new(int32(1))
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = new(int32(10))
	}
	if spec.PodManagementPolicy == "" {
		spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if spec.UpdateStrategy.Type == "" {
		spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if spec.UpdateStrategy.RollingUpdate == nil {
			spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
	}
	if ru := spec.UpdateStrategy.RollingUpdate; spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && ru != nil && ru.Partition == nil {
		ru.Partition = new(int32(0))
	}
	if spec.PersistentVolumeClaimRetentionPolicy == nil {
		spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p.WhenDeleted == "" {
		p.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if p := spec.PersistentVolumeClaimRetentionPolicy; p.WhenScaled == "" {
		p.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	for i := range spec.VolumeClaimTemplates {
		claim := &spec.VolumeClaimTemplates[i]
		// apps/v1 conversion writes these on every stored claim template.
		claim.APIVersion, claim.Kind = "v1", "PersistentVolumeClaim"
		if claim.Status.Phase == "" {
			claim.Status.Phase = corev1.ClaimPending
		}
		if claim.Spec.VolumeMode == nil {
			claim.Spec.VolumeMode = new(corev1.PersistentVolumeFilesystem)
		}
		roundUp(claim.Spec.Resources.Limits)
		roundUp(claim.Spec.Resources.Requests)
	}

	pod := &sts.Spec.Template.Spec
	*pod = *defaultedPodSpec(pod)
	for _, list := range []*[]corev1.Container{&pod.InitContainers, &pod.Containers} {
		for i := range *list {
			c := &(*list)[i]
			*c = *defaultedContainer(c)
			roundUp(c.Resources.Limits)
			roundUp(c.Resources.Requests)
		}
	}
	roundUp(pod.Overhead)
	if pod.Resources != nil {
		roundUp(pod.Resources.Limits)
		roundUp(pod.Resources.Requests)
	}

	dropEmpty(reflect.ValueOf(sts).Elem())
}

// roundUp rounds quantities up to milli units as the API server does, so that 0.0001 and
// 1m are the same request.
func roundUp(list corev1.ResourceList) {
	for name, q := range list {
		q.RoundUp(-3)
		list[name] = q
	}
}

// dropEmpty sets empty lists and maps to nil, as a protobuf round trip through storage does.
func dropEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			dropEmpty(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == quantityType {
			return
		}
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				dropEmpty(f)
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			if !v.IsNil() && v.CanSet() {
				v.SetZero()
			}
			return
		}
		for i := range v.Len() {
			dropEmpty(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 {
			if !v.IsNil() && v.CanSet() {
				v.SetZero()
			}
			return
		}
		// Map values are not addressable; the pod template's maps hold strings and
		// quantities, which have nothing to drop.
	}
}

// defaultedPodSpec returns s itself when it already has every pod-level default, else a
// shallow copy with them. Containers and init containers are left to defaultedContainer,
// since they are compared one by one.
func defaultedPodSpec(s *corev1.PodSpec) *corev1.PodSpec {
	out := s
	edit := func() *corev1.PodSpec {
		if out == s {
			c := *s
			out = &c
		}
		return out
	}
	// serviceAccount is the deprecated alias of serviceAccountName; the API server keeps
	// them equal, with serviceAccountName winning.
	if s.ServiceAccountName == "" && s.DeprecatedServiceAccount != "" {
		edit().ServiceAccountName = s.DeprecatedServiceAccount
	}
	if out.DeprecatedServiceAccount != out.ServiceAccountName {
		edit().DeprecatedServiceAccount = out.ServiceAccountName
	}
	if s.DNSPolicy == "" {
		edit().DNSPolicy = corev1.DNSClusterFirst
	}
	if s.RestartPolicy == "" {
		edit().RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.SecurityContext == nil {
		edit().SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.TerminationGracePeriodSeconds == nil {
		edit().TerminationGracePeriodSeconds = new(int64(corev1.DefaultTerminationGracePeriodSeconds))
	}
	if s.SchedulerName == "" {
		edit().SchedulerName = corev1.DefaultSchedulerName
	}
	if volumes := defaultedVolumes(s.Volumes); volumes != nil {
		edit().Volumes = volumes
	}
	// The API server rejects ephemeral containers in a template, but defaults them first.
	for i := range s.EphemeralContainers {
		c := (*corev1.Container)(&s.EphemeralContainers[i].EphemeralContainerCommon)
		if defaultedContainer(c) != c {
			list := append([]corev1.EphemeralContainer(nil), s.EphemeralContainers...)
			for j := range list {
				c := (*corev1.Container)(&list[j].EphemeralContainerCommon)
				*c = *defaultedContainer(c)
			}
			edit().EphemeralContainers = list
			break
		}
	}
	return out
}

// defaultedVolumes returns nil when no volume needs a default, else a new list.
func defaultedVolumes(volumes []corev1.Volume) []corev1.Volume {
	var out []corev1.Volume
	for i := range volumes {
		v := defaultedVolume(volumes[i])
		if out == nil && !sameVolumeSource(&v.VolumeSource, &volumes[i].VolumeSource) {
			out = append(make([]corev1.Volume, 0, len(volumes)), volumes[:i]...)
		}
		if out != nil {
			out = append(out, v)
		}
	}
	return out
}

// sameVolumeSource is true when defaultedVolume replaced nothing: it only ever swaps
// pointers, so comparing the pointers is enough.
func sameVolumeSource(a, b *corev1.VolumeSource) bool {
	return *a == *b
}

func defaultedVolume(v corev1.Volume) corev1.Volume {
	src := &v.VolumeSource
	if *src == (corev1.VolumeSource{}) {
		src.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	if s := src.Secret; s != nil && s.DefaultMode == nil {
		c := *s
		c.DefaultMode = new(corev1.SecretVolumeSourceDefaultMode)
		src.Secret = &c
	}
	if s := src.ConfigMap; s != nil && s.DefaultMode == nil {
		c := *s
		c.DefaultMode = new(corev1.ConfigMapVolumeSourceDefaultMode)
		src.ConfigMap = &c
	}
	if s := src.DownwardAPI; s != nil {
		items := defaultedDownwardItems(s.Items)
		if s.DefaultMode == nil || items != nil {
			c := *s
			if c.DefaultMode == nil {
				c.DefaultMode = new(corev1.DownwardAPIVolumeSourceDefaultMode)
			}
			if items != nil {
				c.Items = items
			}
			src.DownwardAPI = &c
		}
	}
	if s := src.Projected; s != nil {
		sources := defaultedProjections(s.Sources)
		if s.DefaultMode == nil || sources != nil {
			c := *s
			if c.DefaultMode == nil {
				c.DefaultMode = new(corev1.ProjectedVolumeSourceDefaultMode)
			}
			if sources != nil {
				c.Sources = sources
			}
			src.Projected = &c
		}
	}
	if s := src.HostPath; s != nil && s.Type == nil {
		c := *s
		c.Type = new(corev1.HostPathUnset)
		src.HostPath = &c
	}
	if s := src.Image; s != nil && s.PullPolicy == "" {
		c := *s
		c.PullPolicy = pullPolicy(s.Reference)
		src.Image = &c
	}
	if s := src.Ephemeral; s != nil && s.VolumeClaimTemplate != nil && s.VolumeClaimTemplate.Spec.VolumeMode == nil {
		t := *s.VolumeClaimTemplate
		t.Spec.VolumeMode = new(corev1.PersistentVolumeFilesystem)
		src.Ephemeral = &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &t}
	}
	return v
}

// defaultedDownwardItems returns nil when no item needs a default, else a new list.
func defaultedDownwardItems(items []corev1.DownwardAPIVolumeFile) []corev1.DownwardAPIVolumeFile {
	var out []corev1.DownwardAPIVolumeFile
	for i, item := range items {
		if item.FieldRef != nil && item.FieldRef.APIVersion == "" {
			if out == nil {
				out = append([]corev1.DownwardAPIVolumeFile(nil), items...)
			}
			out[i].FieldRef = &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: item.FieldRef.FieldPath}
		}
	}
	return out
}

// defaultedProjections returns nil when no source needs a default, else a new list.
func defaultedProjections(sources []corev1.VolumeProjection) []corev1.VolumeProjection {
	var out []corev1.VolumeProjection
	edit := func() []corev1.VolumeProjection {
		if out == nil {
			out = append([]corev1.VolumeProjection(nil), sources...)
		}
		return out
	}
	for i, p := range sources {
		if p.DownwardAPI != nil {
			if items := defaultedDownwardItems(p.DownwardAPI.Items); items != nil {
				edit()[i].DownwardAPI = &corev1.DownwardAPIProjection{Items: items}
			}
		}
		if t := p.ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
			c := *t
			c.ExpirationSeconds = new(int64(3600))
			edit()[i].ServiceAccountToken = &c
		}
	}
	return out
}

// defaultedContainer returns c itself when it already has every default, else a shallow
// copy with them. Resource quantities are not rounded here: comparison rounds as it goes.
func defaultedContainer(c *corev1.Container) *corev1.Container {
	out := c
	edit := func() *corev1.Container {
		if out == c {
			cp := *c
			out = &cp
		}
		return out
	}
	if c.ImagePullPolicy == "" {
		edit().ImagePullPolicy = pullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		edit().TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		edit().TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			ports := append([]corev1.ContainerPort(nil), c.Ports...)
			for j := range ports {
				if ports[j].Protocol == "" {
					ports[j].Protocol = corev1.ProtocolTCP
				}
			}
			edit().Ports = ports
			break
		}
	}
	for i := range c.Env {
		if from := c.Env[i].ValueFrom; from != nil && (from.FieldRef != nil && from.FieldRef.APIVersion == "" || from.FileKeyRef != nil && from.FileKeyRef.Optional == nil) {
			env := append([]corev1.EnvVar(nil), c.Env...)
			for j := range env {
				env[j].ValueFrom = defaultedEnvSource(env[j].ValueFrom)
			}
			edit().Env = env
			break
		}
	}
	if p := defaultedProbe(c.LivenessProbe); p != c.LivenessProbe {
		edit().LivenessProbe = p
	}
	if p := defaultedProbe(c.ReadinessProbe); p != c.ReadinessProbe {
		edit().ReadinessProbe = p
	}
	if p := defaultedProbe(c.StartupProbe); p != c.StartupProbe {
		edit().StartupProbe = p
	}
	if l := c.Lifecycle; l != nil {
		post, pre := defaultedHandler(l.PostStart), defaultedHandler(l.PreStop)
		if post != l.PostStart || pre != l.PreStop {
			cp := *l
			cp.PostStart, cp.PreStop = post, pre
			edit().Lifecycle = &cp
		}
	}
	return out
}

func defaultedEnvSource(from *corev1.EnvVarSource) *corev1.EnvVarSource {
	if from == nil {
		return nil
	}
	out := from
	if from.FieldRef != nil && from.FieldRef.APIVersion == "" {
		cp := *out
		cp.FieldRef = &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: from.FieldRef.FieldPath}
		out = &cp
	}
	if from.FileKeyRef != nil && from.FileKeyRef.Optional == nil {
		cp := *out
		ref := *from.FileKeyRef
		ref.Optional = new(false)
		cp.FileKeyRef = &ref
		out = &cp
	}
	return out
}

func defaultedProbe(p *corev1.Probe) *corev1.Probe {
	if p == nil {
		return nil
	}
	get, grpc := defaultedHTTPGet(p.HTTPGet), p.GRPC
	if grpc != nil && grpc.Service == nil {
		grpc = &corev1.GRPCAction{Port: grpc.Port, Service: new("")}
	}
	if p.TimeoutSeconds != 0 && p.PeriodSeconds != 0 && p.SuccessThreshold != 0 && p.FailureThreshold != 0 && get == p.HTTPGet && grpc == p.GRPC {
		return p
	}
	c := *p
	c.HTTPGet, c.GRPC = get, grpc
	if c.TimeoutSeconds == 0 {
		c.TimeoutSeconds = 1
	}
	if c.PeriodSeconds == 0 {
		c.PeriodSeconds = 10
	}
	if c.SuccessThreshold == 0 {
		c.SuccessThreshold = 1
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 3
	}
	return &c
}

func defaultedHandler(h *corev1.LifecycleHandler) *corev1.LifecycleHandler {
	if h == nil {
		return nil
	}
	get := defaultedHTTPGet(h.HTTPGet)
	if get == h.HTTPGet {
		return h
	}
	c := *h
	c.HTTPGet = get
	return &c
}

func defaultedHTTPGet(g *corev1.HTTPGetAction) *corev1.HTTPGetAction {
	if g == nil || g.Path != "" && g.Scheme != "" {
		return g
	}
	c := *g
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Scheme == "" {
		c.Scheme = corev1.URISchemeHTTP
	}
	return &c
}

// pullPolicy is the API server's default: Always for :latest (or no tag and no digest),
// IfNotPresent otherwise, including references it cannot parse.
func pullPolicy(image string) corev1.PullPolicy {
	if ref, err := imageref.Parse(image); err == nil && ref.Tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}
