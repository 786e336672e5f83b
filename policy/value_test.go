package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// fill sets every field reachable from v to a value that differs from its zero value and
// from its neighbours', so a field that inputValue forgets or misnames cannot go unnoticed.
func fill(v reflect.Value, seed *int) {
	*seed++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *seed))
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*seed) * 1000003) // beyond OPA's interned integers
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seed)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), seed)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			e := reflect.New(v.Type().Elem()).Elem()
			fill(k, seed)
			fill(e, seed)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).Tag.Get("json") == "-" {
				continue // not part of the policy's input
			}
			fill(v.Field(i), seed)
		}
	default:
		panic("fill: unsupported kind " + v.Kind().String())
	}
}

func viaJSON(t *testing.T, in *Input) ast.Value {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInputValueMatchesJSON(t *testing.T) {
	full := &Input{}
	seed := 0
	fill(reflect.ValueOf(full).Elem(), &seed)

	tests := map[string]*Input{
		"every field set":                          full,
		"a zero input, with null lists and no old": {},
		"a realistic version change":               versionChange(),
		"the keys of a built input":                {Keys: AnnotationKeys()},
		"empty but non-nil lists and maps": {
			User:     User{Groups: []string{}},
			Settings: Settings{OverrideGroups: []string{}},
			Old:      &Summary{Annotations: map[string]string{}},
			Change:   Change{ConfigPaths: []string{}},
			Pods:     []Pod{},
		},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			want := viaJSON(t, in)
			got := inputValue(in)
			if got.Compare(want) != 0 {
				t.Errorf("inputValue differs from the JSON encoding\n got: %v\nwant: %v", got, want)
			}
		})
	}
}
