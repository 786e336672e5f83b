package policy

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// inputPaths lists every field Rego can read, as input.a.b (a list's elements as
// input.pods[_].name), from the JSON names of the Input types. A struct type is expanded
// where it first appears (input.old for Summary, input.old.image for Image); later uses
// of it (input.new, input.canary.stable_image) are listed without their fields.
func inputPaths(prefix string, t reflect.Type) []string {
	return walkInput(prefix, t, map[reflect.Type]bool{})
}

func walkInput(prefix string, t reflect.Type, seen map[reflect.Type]bool) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return walkInput(prefix+"[_]", t.Elem(), seen)
		}
		return nil
	case reflect.Struct:
		if seen[t] {
			return nil
		}
		seen[t] = true
	default:
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := prefix + "." + name
		out = append(out, p)
		out = append(out, walkInput(p, f.Type, seen)...)
	}
	return out
}

// TestReadmeDocumentsEveryInputField keeps policy/README.md's schema in step with input.go:
// a field added to the Input types must be documented for site rules.
func TestReadmeDocumentsEveryInputField(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	paths := inputPaths("input", reflect.TypeOf(Input{}))
	if len(paths) < 40 {
		t.Fatalf("only %d input fields found", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(readme, "`"+p+"`") {
			t.Errorf("policy/README.md does not document `%s`", p)
		}
	}
}
