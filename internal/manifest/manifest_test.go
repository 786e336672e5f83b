package manifest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pdguard/pdguard/internal/testenv/unprivileged"
)

// obj is a minimal object of kind in namespace ns ("" none).
func obj(kind, ns, name string) string {
	apiVersion := "v1"
	if kind == "StatefulSet" {
		apiVersion = "apps/v1"
	}
	s := "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: " + name + "\n"
	if ns != "" {
		s += "  namespace: " + ns + "\n"
	}
	return s
}

// sources lists each document as "identity @ source".
func sources(docs []Document) []string {
	out := []string{}
	for _, d := range docs {
		out = append(out, d.Identity()+" @ "+d.Source)
	}
	return out
}

// wantError checks err against the start of the message a table row wants ("" none) and
// says whether the row goes on to check a result.
func wantError(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("error = %v, want %q", err, want)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func checkDocuments(t *testing.T, docs []Document, want []string) {
	t.Helper()
	if got := sources(docs); !slices.Equal(got, want) {
		t.Errorf("documents:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParse(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []string
		wantErr string
	}{
		// A leading separator opens the first document rather than ending an empty one.
		"helm template output: a separator and a Source comment before each document": {
			in: "---\n# Source: pd/templates/configmap.yaml\n" + obj("ConfigMap", "", "env") +
				"---\n# Source: pd/templates/statefulset.yaml\n" + obj("StatefulSet", "", "pd"),
			want: []string{"ConfigMap env @ in.yaml: document 1", "StatefulSet pd @ in.yaml: document 2"},
		},
		"no separator before the first document and one after the last": {
			in:   obj("Service", "ping", "svc") + "---\n" + obj("StatefulSet", "ping", "pd") + "---\n",
			want: []string{"Service ping/svc @ in.yaml: document 1", "StatefulSet ping/pd @ in.yaml: document 2"},
		},
		"empty and comment-only documents are skipped but keep their numbers": {
			in:   "---\n---\n\n---\n# nothing here\n---   \n" + obj("ConfigMap", "", "a") + "---\nnull\n---\n" + obj("ConfigMap", "", "b"),
			want: []string{"ConfigMap a @ in.yaml: document 4", "ConfigMap b @ in.yaml: document 6"},
		},
		"a separator with a comment after it": {
			in:   obj("ConfigMap", "", "a") + "--- # next\n" + obj("ConfigMap", "", "b"),
			want: []string{"ConfigMap a @ in.yaml: document 1", "ConfigMap b @ in.yaml: document 2"},
		},
		"CRLF line ends": {
			in:   strings.ReplaceAll(obj("ConfigMap", "", "a")+"---\n"+obj("ConfigMap", "", "b"), "\n", "\r\n"),
			want: []string{"ConfigMap a @ in.yaml: document 1", "ConfigMap b @ in.yaml: document 2"},
		},
		"--- inside an indented block scalar is data, not a separator": {
			in:   obj("ConfigMap", "", "profile") + "data:\n  dsconfig: |\n    ---\n    set-backend-prop\n",
			want: []string{"ConfigMap profile @ in.yaml: document 1"},
		},
		"an empty file holds no documents": {in: "", want: []string{}},
		"only separators":                  {in: "---\n---\n", want: []string{}},
		"a List is unwrapped into its items, of any kind": {
			in:   "apiVersion: v1\nkind: List\nitems:\n- " + indent(obj("StatefulSet", "ping", "pd")) + "- " + indent(obj("Pod", "ping", "pd-0")),
			want: []string{"StatefulSet ping/pd @ in.yaml: document 1, item 1", "Pod ping/pd-0 @ in.yaml: document 1, item 2"},
		},
		"a typed list (kubectl get pods -o json) is unwrapped too": {
			in:   `{"apiVersion":"v1","kind":"PodList","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pd-0","namespace":"ping"}}]}`,
			want: []string{"Pod ping/pd-0 @ in.yaml: document 1, item 1"},
		},
		"an empty List": {in: "apiVersion: v1\nkind: List\nitems: []\n", want: []string{}},
		"JSON input: one object": {
			in:   `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"pd","namespace":"ping"}}`,
			want: []string{"StatefulSet ping/pd @ in.yaml: document 1"},
		},
		"JSON input: a stream of objects": {
			in:   "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"b\"}}\n",
			want: []string{"ConfigMap a @ in.yaml: document 1", "Service b @ in.yaml: document 2"},
		},
		"a values file is not an object": {
			in:      obj("ConfigMap", "", "a") + "---\nimage:\n  tag: 9.1.0.0-latest\n",
			wantErr: "in.yaml: document 2 is not a Kubernetes object: it has no kind or apiVersion",
		},
		"a sequence is not an object": {
			in:      "- a\n- b\n",
			wantErr: "in.yaml: document 1 is not a Kubernetes object: it is a sequence, want a mapping with apiVersion and kind",
		},
		"a kind that is not a string": {
			in:      "apiVersion: v1\nkind: true\nmetadata: {name: a}\n",
			wantErr: "in.yaml: document 1 is not a Kubernetes object: kind is a bool, want a string",
		},
		"invalid YAML names the document": {
			in:      obj("ConfigMap", "", "a") + "---\nkind: [\n",
			wantErr: "in.yaml: document 2 is not valid YAML or JSON",
		},
		"a List whose items are not a sequence": {
			in:      "apiVersion: v1\nkind: List\nitems: 3\n",
			wantErr: "in.yaml: document 1: List has invalid items",
		},
		"a List item that is not an object": {
			in:      `{"apiVersion":"v1","kind":"PodList","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}},7]}`,
			wantErr: "in.yaml: document 1, item 2 is not a Kubernetes object: it is a number",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			docs, err := Parse([]byte(tc.in), "in.yaml")
			if !wantError(t, err, tc.wantErr) {
				return
			}
			checkDocuments(t, docs, tc.want)
		})
	}
}

// indent indents all lines but the first by two spaces, for a sequence item.
func indent(s string) string {
	return strings.TrimSuffix(strings.ReplaceAll(s, "\n", "\n  "), "  ")
}

func TestCollect(t *testing.T) {
	tests := map[string]struct {
		in          string
		namespace   string
		want        []string // namespace/name and whether the manifest gave the namespace
		wantIgnored []string
		wantErr     string
	}{
		"mixed kinds: the StatefulSets are read, the others counted and listed in order": {
			in: obj("ConfigMap", "", "env") + "---\n" + obj("StatefulSet", "", "pd") + "---\n" + obj("Service", "ping", "svc") +
				"---\n" + obj("StatefulSet", "ping", "other") + "---\n" + obj("PodDisruptionBudget", "", "pdb"),
			namespace:   "ping",
			want:        []string{"ping/pd filled", "ping/other given"},
			wantIgnored: []string{"ConfigMap env @ in.yaml: document 1", "Service ping/svc @ in.yaml: document 3", "PodDisruptionBudget pdb @ in.yaml: document 5"},
		},
		"--namespace fills only manifests without one": {
			in:        obj("StatefulSet", "", "a") + "---\n" + obj("StatefulSet", "prod", "b"),
			namespace: "staging",
			want:      []string{"staging/a filled", "prod/b given"},
		},
		"the same name in two namespaces is two StatefulSets": {
			in:        obj("StatefulSet", "a", "pd") + "---\n" + obj("StatefulSet", "b", "pd"),
			namespace: "default",
			want:      []string{"a/pd given", "b/pd given"},
		},
		"two StatefulSets with the same namespace/name": {
			in:        obj("StatefulSet", "ping", "pd") + "---\n" + obj("ConfigMap", "", "x") + "---\n" + obj("StatefulSet", "ping", "pd"),
			namespace: "default",
			wantErr:   "two StatefulSets named ping/pd: in.yaml: document 1 and in.yaml: document 3; pass each release separately",
		},
		"a StatefulSet without namespace collides with one given the same namespace": {
			in:        obj("StatefulSet", "", "pd") + "---\n" + obj("StatefulSet", "ping", "pd"),
			namespace: "ping",
			wantErr:   "two StatefulSets named ping/pd",
		},
		"a StatefulSet of another API group": {
			in:        "apiVersion: example.com/v1\nkind: StatefulSet\nmetadata: {name: pd}\n",
			namespace: "default",
			wantErr:   "in.yaml: document 1: StatefulSet pd has apiVersion example.com/v1, want apps/v1",
		},
		"a StatefulSet without a name": {
			in:        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {namespace: ping}\n",
			namespace: "default",
			wantErr:   "in.yaml: document 1: StatefulSet has no metadata.name",
		},
		"a StatefulSet with an invalid spec": {
			in:        obj("StatefulSet", "", "pd") + "spec: {replicas: two}\n",
			namespace: "default",
			wantErr:   "in.yaml: document 1: not a valid StatefulSet",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			docs, err := Parse([]byte(tc.in), "in.yaml")
			if err != nil {
				t.Fatal(err)
			}
			r, err := Collect(docs, tc.namespace)
			if !wantError(t, err, tc.wantErr) {
				return
			}
			got := []string{}
			for _, s := range r.StatefulSets {
				how := "given"
				if !s.NamespaceGiven {
					how = "filled"
				}
				got = append(got, s.Key().String()+" "+how)
				if found, ok := r.Find(s.Key()); !ok || found.Source != s.Source {
					t.Errorf("Find(%s) = %v, %v", s.Key(), found.Source, ok)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("StatefulSets = %q, want %q", got, tc.want)
			}
			if want := append([]string{}, tc.wantIgnored...); !slices.Equal(sources(r.Ignored), want) {
				t.Errorf("ignored = %q, want %q", sources(r.Ignored), want)
			}
			if len(r.StatefulSets)+len(r.Ignored) != len(docs) {
				t.Errorf("%d StatefulSets and %d ignored of %d documents", len(r.StatefulSets), len(r.Ignored), len(docs))
			}
		})
	}
}

func TestByName(t *testing.T) {
	docs, err := Parse([]byte(obj("StatefulSet", "a", "pd")+"---\n"+obj("StatefulSet", "b", "pd")+"---\n"+obj("StatefulSet", "a", "other")), "in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Collect(docs, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ByName("pd"); len(got) != 2 || got[0].Namespace != "a" || got[1].Namespace != "b" {
		t.Errorf("ByName(pd) = %v, want a/pd and b/pd", got)
	}
	if _, ok := r.Find(Key{"b", "other"}); ok {
		t.Error("Find(b/other) found a StatefulSet the release does not hold")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	// A rendered chart directory: manifests nested at any depth, next to files that are not
	// manifests.
	writeFile(t, filepath.Join(dir, "b-statefulset.yaml"), obj("StatefulSet", "", "pd"))
	writeFile(t, filepath.Join(dir, "a-configmap.yml"), obj("ConfigMap", "", "env"))
	writeFile(t, filepath.Join(dir, "templates", "nested", "service.json"), `{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"}}`)
	writeFile(t, filepath.Join(dir, "templates", "PDB.YAML"), obj("PodDisruptionBudget", "", "pdb"))
	writeFile(t, filepath.Join(dir, "README.md"), "# not a manifest\nkind: [\n")
	writeFile(t, filepath.Join(dir, "templates", "NOTES.txt"), "kind: [\n")
	writeFile(t, filepath.Join(dir, "templates", "_helpers.tpl"), "{{ define }}")
	writeFile(t, filepath.Join(dir, "values.yaml.bak"), "kind: [\n")
	single := filepath.Join(t.TempDir(), "release.yaml")
	writeFile(t, single, obj("StatefulSet", "ping", "single")+"---\n"+obj("ConfigMap", "ping", "cm"))

	tests := map[string]struct {
		stdin   string
		paths   []string
		want    []string
		wantErr string
	}{
		"a directory: manifests at any depth in name order, other files left out": {
			paths: []string{dir},
			want: []string{
				"ConfigMap env @ " + filepath.Join(dir, "a-configmap.yml") + ": document 1",
				"StatefulSet pd @ " + filepath.Join(dir, "b-statefulset.yaml") + ": document 1",
				"PodDisruptionBudget pdb @ " + filepath.Join(dir, "templates", "PDB.YAML") + ": document 1",
				"Service svc @ " + filepath.Join(dir, "templates", "nested", "service.json") + ": document 1",
			},
		},
		"- reads standard input": {
			stdin: "---\n" + obj("StatefulSet", "", "from-stdin"),
			paths: []string{Stdin},
			want:  []string{"StatefulSet from-stdin @ standard input: document 1"},
		},
		"JSON on standard input": {
			stdin: `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pd-0"}}]}`,
			paths: []string{Stdin},
			want:  []string{"Pod pd-0 @ standard input: document 1, item 1"},
		},
		"several paths in the order given": {
			stdin: obj("ConfigMap", "", "piped"),
			paths: []string{single, Stdin},
			want: []string{
				"StatefulSet ping/single @ " + single + ": document 1",
				"ConfigMap ping/cm @ " + single + ": document 2",
				"ConfigMap piped @ standard input: document 1",
			},
		},
		"a path that does not exist": {
			paths:   []string{filepath.Join(dir, "missing")},
			wantErr: "reading " + filepath.Join(dir, "missing") + ": ",
		},
		"invalid YAML on standard input names it": {
			stdin:   "kind: [\n",
			paths:   []string{Stdin},
			wantErr: "standard input: document 1 is not valid YAML or JSON",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			docs, err := Read(strings.NewReader(tc.stdin), tc.paths...)
			if !wantError(t, err, tc.wantErr) {
				return
			}
			checkDocuments(t, docs, tc.want)
		})
	}
}

func TestReadDirectoryWithoutManifests(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sub", "README.md"), "text")
	_, err := Read(strings.NewReader(""), dir)
	if want := "directory " + dir + " holds no .yaml, .yml or .json file"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// A manifest directory with a subdirectory the user may not read is an error naming it,
// never a release with part of its objects left out.
func TestReadUnreadableDirectory(t *testing.T) {
	if unprivileged.Rerun(t) {
		return
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), obj("StatefulSet", "", "pd"))
	locked := filepath.Join(dir, "locked")
	writeFile(t, filepath.Join(locked, "b.yaml"), obj("ConfigMap", "", "env"))
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	docs, err := Read(strings.NewReader(""), dir)
	if want := "reading directory " + locked + ": "; err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Read = %d documents, error %v; want an error starting %q saying permission denied", len(docs), err, want)
	}

	// An unreadable file in a readable directory names the file.
	if err := os.Chmod(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(locked, "b.yaml")
	if err := os.Chmod(file, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(strings.NewReader(""), dir); err == nil || !strings.HasPrefix(err.Error(), "reading "+file+": ") {
		t.Fatalf("error = %v, want one naming %s", err, file)
	}
}

func TestPods(t *testing.T) {
	docs, err := Parse([]byte("apiVersion: v1\nkind: List\nitems:\n- "+indent(obj("Pod", "ping", "pd-0"))+"---\n"+obj("Pod", "ping", "pd-1")), "pods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pods, err := Pods(docs)
	if err != nil || len(pods) != 2 || pods[0].Name != "pd-0" || pods[1].Name != "pd-1" {
		t.Fatalf("Pods = %v, %v; want pd-0 and pd-1", pods, err)
	}
	docs, err = Parse([]byte(obj("Pod", "ping", "pd-0")+"---\n"+obj("StatefulSet", "ping", "pd")), "pods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := "pods.yaml: document 2 is a StatefulSet (pd), want only Pods: pass the output of kubectl get pods -o yaml"
	if _, err := Pods(docs); err == nil || err.Error() != want {
		t.Errorf("Pods of mixed kinds: error = %v, want %q", err, want)
	}
}
