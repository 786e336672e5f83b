package specdiff

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestEqual(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		a, b any
		want bool
	}{
		"a nil and an empty list are equal":           {[]string(nil), []string{}, true},
		"lists with other items differ":               {[]string{"a"}, []string{"b"}, false},
		"lists in another order differ":               {[]string{"a", "b"}, []string{"b", "a"}, false},
		"a nil and an empty map are equal":            {map[string]string(nil), map[string]string{}, true},
		"maps with another value differ":              {map[string]string{"a": "1"}, map[string]string{"a": "2"}, false},
		"maps with another key differ":                {map[string]string{"a": "1"}, map[string]string{"b": "1"}, false},
		"maps of structs with another value differ":   {map[string]corev1.EnvVar{"a": {Name: "x"}}, map[string]corev1.EnvVar{"a": {Name: "y"}}, false},
		"maps of structs with the same value agree":   {map[string]corev1.EnvVar{"a": {Name: "x"}}, map[string]corev1.EnvVar{"a": {Name: "x"}}, true},
		"a nil struct pointer is an empty struct":     {(*corev1.Affinity)(nil), &corev1.Affinity{}, true},
		"a nil struct pointer is a struct of empties": {(*corev1.Capabilities)(nil), &corev1.Capabilities{Drop: []corev1.Capability{}}, true},
		"a nil struct pointer is not a set struct":    {(*corev1.Capabilities)(nil), &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, false},
		"a nil bool pointer is not false":             {(*bool)(nil), new(false), false},
		"two false bool pointers are equal":           {new(false), new(false), true},
		"2 and 2000m are the same quantity":           {resource.MustParse("2"), resource.MustParse("2000m"), true},
		"8Gi and 8G are other quantities":             {resource.MustParse("8Gi"), resource.MustParse("8G"), false},
		"0.0001 is stored as 1m":                      {resource.MustParse("0.0001"), resource.MustParse("1m"), true},
		"1m and 2m differ":                            {resource.MustParse("1m"), resource.MustParse("2m"), false},
		"resource lists compare quantities by value":  {corev1.ResourceList{"cpu": resource.MustParse("2")}, corev1.ResourceList{"cpu": resource.MustParse("2000m")}, true},
		"resource lists with another resource differ": {
			corev1.ResourceList{"cpu": resource.MustParse("2")}, corev1.ResourceList{"memory": resource.MustParse("2")}, false,
		},
		"a quantity pointer compares by value":  {new(resource.MustParse("1Gi")), new(resource.MustParse("1024Mi")), true},
		"one instant in two zones is one time":  {metav1.NewTime(at), metav1.NewTime(at.In(time.FixedZone("CET", 3600))), true},
		"two instants are two times":            {metav1.NewTime(at), metav1.NewTime(at.Add(time.Second)), false},
		"a port number is not a port name":      {intstr.FromInt32(80), intstr.FromString("80"), false},
		"the same port name is equal":           {intstr.FromString("http"), intstr.FromString("http"), true},
		"interfaces holding other types differ": {[]any{1}, []any{"1"}, false},
		"interfaces holding equal values agree": {[]any{"a"}, []any{"a"}, true},
		"a nil and a set interface differ":      {[]any{nil}, []any{"a"}, false},
		"byte lists compare by content":         {[]byte("ab"), []byte("ab"), true},
		"floats compare by value":               {1.5, 2.5, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, addressable := range []bool{false, true} {
				a, b := reflect.ValueOf(tc.a), reflect.ValueOf(tc.b)
				if addressable {
					a, b = addressableCopy(a), addressableCopy(b)
				}
				if got := equal(a, b); got != tc.want {
					t.Fatalf("equal(%v, %v) = %v, want %v (addressable: %v)", tc.a, tc.b, got, tc.want, addressable)
				}
				if got := equal(b, a); got != tc.want {
					t.Fatalf("equal(%v, %v) = %v, want %v (addressable: %v)", tc.b, tc.a, got, tc.want, addressable)
				}
			}
		})
	}
}

func addressableCopy(v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c
}
