package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

// FuzzReadManifest feeds arbitrary files to check's readers: each answer is a
// StatefulSet, pods, or an error that names the input and, past the first document,
// the document at fault; never a panic, and a file is never read as an object it does
// not hold.
func FuzzReadManifest(f *testing.F) {
	for _, name := range []string{"statefulset-helm.yaml", "statefulset-live.yaml"} {
		b, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "---\n---\n", "null", "[]", "{}", "kind: List\nitems:\n- kind: Pod\n  metadata: {name: p-0}\n",
		`{"kind":"PodList","items":[{"kind":"Pod","metadata":{"name":"p"}},7]}`,
		"kind: StatefulSet\nmetadata: {name: a}\n---\nkind: StatefulSet\nmetadata: {name: b}\n",
		"kind: StatefulSet\nspec: {replicas: two}\n", "kind: [\n", "\t- x", "a: &a [*a]\n", "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	sel, _ := labels.Parse("app.kubernetes.io/name=pingdirectory")
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := readDocuments(bytes.NewReader(data), "-")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "-: document ") {
				t.Fatalf("error %q does not name the document", err)
			}
		}
		for _, d := range docs {
			if !json.Valid(d.raw) {
				t.Fatalf("%s is not JSON after decoding: %q", d.where, d.raw)
			}
		}

		sts, err := readStatefulSet(bytes.NewReader(data), "-", "", sel)
		switch {
		case err != nil && sts != nil:
			t.Fatalf("both a StatefulSet and an error: %v", err)
		case err == nil && sts == nil:
			t.Fatal("neither a StatefulSet nor an error")
		case err != nil && !strings.HasPrefix(err.Error(), "-"):
			t.Fatalf("error %q does not name the input", err)
		case err == nil && !hasKind(docs, "StatefulSet"):
			t.Fatalf("a StatefulSet read from input that holds none: %q", data)
		}

		pods, err := readPods(bytes.NewReader(data), "-")
		if err == nil && len(pods) != len(docs) {
			t.Fatalf("%d pods read from %d documents", len(pods), len(docs))
		}
		if err != nil && !strings.HasPrefix(err.Error(), "-") {
			t.Fatalf("error %q does not name the input", err)
		}
	})
}

func hasKind(docs []document, kind string) bool {
	for _, d := range docs {
		if d.kind == kind {
			return true
		}
	}
	return false
}
