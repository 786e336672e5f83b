package specdiff

import (
	"bytes"
	"maps"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	quantityType     = reflect.TypeFor[resource.Quantity]()
	resourceListType = reflect.TypeFor[corev1.ResourceList]()
	stringMapType    = reflect.TypeFor[map[string]string]()
	metaTimeType     = reflect.TypeFor[metav1.Time]()
	timeType         = reflect.TypeFor[time.Time]()
)

// equal is semantic equality for API values, written for the admission path: unlike
// apimachinery's equality.Semantic it allocates nothing for the usual pod template and
// visits no map of seen pointers (decoded API objects are trees). It treats as equal:
// a nil and an empty list or map; a nil struct pointer and a pointer to an empty struct
// (affinity: {} asks for no affinity); quantities with the same value, including once
// rounded up to milli units as the API server stores them ("2" and 2000m, 0.0001 and 1m).
func equal(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() && b.IsNil() {
				return true
			}
			if a.Type().Elem().Kind() != reflect.Struct {
				return false
			}
			set := a
			if a.IsNil() {
				set = b
			}
			return equal(set.Elem(), reflect.Zero(set.Type().Elem()))
		}
		return a.Pointer() == b.Pointer() || equal(a.Elem(), b.Elem())
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return a.Elem().Type() == b.Elem().Type() && equal(a.Elem(), b.Elem())
	case reflect.Struct:
		switch a.Type() {
		case quantityType:
			return quantityEqual(quantityOf(a), quantityOf(b))
		case metaTimeType, timeType:
			if a.CanInterface() && b.CanInterface() {
				return timeOf(a).Equal(timeOf(b))
			}
		}
		for i := range a.NumField() {
			if !equal(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range a.Len() {
			if !equal(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		if a.Len() == 0 || a.Pointer() == b.Pointer() {
			return true
		}
		if a.Type().Elem().Kind() == reflect.Uint8 {
			return bytes.Equal(a.Bytes(), b.Bytes())
		}
		for i := range a.Len() {
			if !equal(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		if a.Len() == 0 || a.Pointer() == b.Pointer() {
			return true
		}
		if a.CanInterface() && b.CanInterface() {
			switch a.Type() {
			case stringMapType:
				return maps.Equal(a.Interface().(map[string]string), b.Interface().(map[string]string))
			case resourceListType:
				return resourceListEqual(a.Interface().(corev1.ResourceList), b.Interface().(corev1.ResourceList))
			}
		}
		for it := a.MapRange(); it.Next(); {
			other := b.MapIndex(it.Key())
			if !other.IsValid() || !equal(it.Value(), other) {
				return false
			}
		}
		return true
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return a.Pointer() == b.Pointer()
	}
	return false
}

func resourceListEqual(a, b corev1.ResourceList) bool {
	for name, qa := range a {
		qb, ok := b[name]
		if !ok || !quantityEqual(qa, qb) {
			return false
		}
	}
	return true
}

func quantityEqual(a, b resource.Quantity) bool {
	if a.Cmp(b) == 0 {
		return true
	}
	ra, rb := a.DeepCopy(), b.DeepCopy()
	ra.RoundUp(-3)
	rb.RoundUp(-3)
	return ra.Cmp(rb) == 0
}

// quantityOf reads a Quantity without boxing it when the value is addressable.
func quantityOf(v reflect.Value) resource.Quantity {
	if v.CanAddr() && v.CanInterface() {
		return *v.Addr().Interface().(*resource.Quantity)
	}
	if v.CanInterface() {
		return v.Interface().(resource.Quantity)
	}
	// An unexported Quantity field: no API type has one, so this is unreachable in practice.
	return resource.Quantity{}
}

func timeOf(v reflect.Value) time.Time {
	if v.CanAddr() {
		v = v.Addr()
	}
	switch t := v.Interface().(type) {
	case *metav1.Time:
		return t.Time
	case metav1.Time:
		return t.Time
	case *time.Time:
		return *t
	}
	return v.Interface().(time.Time)
}
