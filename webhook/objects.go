package webhook

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/pdguard/pdguard/policy"
)

// checkObjects refuses a request whose objects cannot be the StatefulSet change it
// claims to be. The API server never sends one, so whoever did gets an error naming
// the problem instead of a decision about an object that is not there.
func checkObjects(uid string, gr *policy.Request) error {
	for _, o := range []struct {
		field string
		sts   *appsv1.StatefulSet
	}{{"object", gr.New}, {"oldObject", gr.Old}} {
		if o.sts == nil {
			continue
		}
		if kind, version := o.sts.Kind, o.sts.APIVersion; kind != "" && (kind != "StatefulSet" || version != "apps/v1") {
			return fmt.Errorf("the %s of admission request %s is a %s %s, not a StatefulSet", o.field, uid, version, kind)
		}
		if r := o.sts.Spec.Replicas; r != nil && *r < 0 {
			return fmt.Errorf("the %s of admission request %s has spec.replicas %d: replicas cannot be negative (pingdirectory.container.replicaCount)", o.field, uid, *r)
		}
	}
	if gr.Old != nil && (gr.Old.Name != gr.New.Name || gr.Old.Namespace != gr.New.Namespace) {
		return fmt.Errorf("admission request %s changes StatefulSet %s/%s into %s/%s: object and oldObject must be the same StatefulSet", uid, gr.Old.Namespace, gr.Old.Name, gr.New.Namespace, gr.New.Name)
	}
	return nil
}
