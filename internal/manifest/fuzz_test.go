package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to the manifest reader that `check` uses: every answer
// is a list of objects, each of which is JSON with a kind and apiVersion, or an error
// naming the input; never a panic. Collect and Pods never return an object the documents
// do not hold.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"statefulset-helm.yaml", "statefulset-live.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "testenv", "fixture", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "---\n---\n", "null", "[]", "{}", "kind: List\napiVersion: v1\nitems:\n- kind: Pod\n  apiVersion: v1\n  metadata: {name: p-0}\n",
		`{"kind":"PodList","apiVersion":"v1","items":[{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}},7]}`,
		"kind: StatefulSet\napiVersion: apps/v1\nmetadata: {name: a}\n---\nkind: StatefulSet\napiVersion: apps/v1\nmetadata: {name: a}\n",
		"kind: StatefulSet\napiVersion: apps/v1\nmetadata: {name: a}\nspec: {replicas: two}\n", "kind: [\n", "\t- x", "a: &a [*a]\n", "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse(data, "in.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "in.yaml: ") {
				t.Fatalf("error %q does not name the input", err)
			}
			return
		}
		for _, d := range docs {
			if !json.Valid(d.Raw) || d.Kind == "" || d.APIVersion == "" {
				t.Fatalf("%s: not an object with kind and apiVersion: %q", d.Source, d.Raw)
			}
		}
		r, err := Collect(docs, "ns")
		if err == nil {
			statefulSets := 0
			for _, d := range docs {
				if d.Kind == "StatefulSet" {
					statefulSets++
				}
			}
			if len(r.StatefulSets) != statefulSets || len(r.Ignored) != len(docs)-statefulSets {
				t.Fatalf("%d StatefulSets and %d ignored from %d documents", len(r.StatefulSets), len(r.Ignored), len(docs))
			}
		} else if !strings.HasPrefix(err.Error(), "in.yaml: ") && !strings.HasPrefix(err.Error(), "two StatefulSets") {
			t.Fatalf("error %q does not name the input", err)
		}
		pods, err := Pods(docs)
		if err == nil && len(pods) != len(docs) {
			t.Fatalf("%d pods read from %d documents", len(pods), len(docs))
		}
	})
}
