// Package manifest reads Kubernetes manifests as pipelines hold them: `helm template`
// output, `kubectl get -o yaml` output, multi-document files, Lists, directories of
// manifests and standard input, and picks out the StatefulSets and pods pdguard decides on.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Stdin is the path that means standard input.
const Stdin = "-"

// Document is one object of a manifest.
type Document struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	Raw        []byte
	// Source says where the document came from: "FILE: document N".
	Source string
}

// Identity is kind namespace/name, as in messages.
func (d Document) Identity() string {
	if d.Namespace == "" {
		return d.Kind + " " + d.Name
	}
	return d.Kind + " " + d.Namespace + "/" + d.Name
}

// Read reads every document of each path: a file, a directory (its .yaml, .yml and .json
// files, recursively, in name order) or Stdin. Lists are unwrapped into their items.
func Read(stdin io.Reader, paths ...string) ([]Document, error) {
	var docs []Document
	for _, path := range paths {
		files, err := expand(path)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := readFile(stdin, f)
			if err != nil {
				return nil, err
			}
			d, err := Parse(data, f)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

func expand(path string) ([]string, error) {
	if path == Stdin {
		return []string{Stdin}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading directory %s: %w", p, err)
		}
		if !d.IsDir() && isManifest(p) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("directory %s holds no .yaml, .yml or .json file", path)
	}
	slices.Sort(files)
	return files, nil
}

func isManifest(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func readFile(stdin io.Reader, path string) ([]byte, error) {
	if path == Stdin {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

// Parse splits YAML or JSON into documents; name says where data came from, for messages.
func Parse(data []byte, name string) ([]Document, error) {
	if name == Stdin {
		name = "standard input"
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var docs []Document
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: document %d is not valid YAML or JSON: %w", name, i, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		where := fmt.Sprintf("%s: document %d", name, i)
		d, err := head(raw, where)
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(d.Kind, "List") {
			docs = append(docs, d)
			continue
		}
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%s: %s has invalid items: %w", where, d.Kind, err)
		}
		for j, item := range list.Items {
			d, err := head(item, fmt.Sprintf("%s, item %d", where, j+1))
			if err != nil {
				return nil, err
			}
			docs = append(docs, d)
		}
	}
	return docs, nil
}

func head(raw []byte, where string) (Document, error) {
	var h struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if t := jsonType(raw); t != "object" {
		return Document{}, fmt.Errorf("%s is not a Kubernetes object: it is a %s, want a mapping with apiVersion and kind", where, t)
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Document{}, fmt.Errorf("%s is not a Kubernetes object: %s is a %s, want a string", where, typeErr.Field, typeErr.Value)
		}
		return Document{}, fmt.Errorf("%s is not a Kubernetes object: %w", where, err)
	}
	if h.Kind == "" || h.APIVersion == "" {
		return Document{}, fmt.Errorf("%s is not a Kubernetes object: it has no kind or apiVersion", where)
	}
	return Document{APIVersion: h.APIVersion, Kind: h.Kind, Namespace: h.Metadata.Namespace, Name: h.Metadata.Name, Raw: raw, Source: where}, nil
}

// jsonType names the kind of JSON value raw holds, for messages about a document that is
// not a mapping.
func jsonType(raw []byte) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return "empty document"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "sequence"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// Key names a namespaced object.
type Key struct{ Namespace, Name string }

func (k Key) String() string { return k.Namespace + "/" + k.Name }

// StatefulSet is one StatefulSet of a release.
type StatefulSet struct {
	*appsv1.StatefulSet
	Source string
	// NamespaceGiven is false when the manifest had no namespace and it was filled in.
	NamespaceGiven bool
}

// Key is the StatefulSet's namespace/name.
func (s StatefulSet) Key() Key { return Key{s.Namespace, s.Name} }

// Release is what pdguard reads from a set of manifests.
type Release struct {
	// StatefulSets in the order the manifests hold them.
	StatefulSets []StatefulSet
	// Ignored are the documents of other kinds.
	Ignored []Document
}

// Find returns the StatefulSet with the key.
func (r *Release) Find(k Key) (StatefulSet, bool) {
	for _, s := range r.StatefulSets {
		if s.Key() == k {
			return s, true
		}
	}
	return StatefulSet{}, false
}

// ByName returns the StatefulSets named name in any namespace.
func (r *Release) ByName(name string) []StatefulSet {
	var out []StatefulSet
	for _, s := range r.StatefulSets {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Collect decodes the StatefulSets among docs and sets namespace on those that have none.
// Two StatefulSets with the same namespace and name are an error: which one is meant
// cannot be known.
func Collect(docs []Document, namespace string) (*Release, error) {
	r := &Release{}
	for _, d := range docs {
		if d.Kind != "StatefulSet" {
			r.Ignored = append(r.Ignored, d)
			continue
		}
		if !strings.HasPrefix(d.APIVersion, "apps/") {
			return nil, fmt.Errorf("%s: StatefulSet %s has apiVersion %s, want apps/v1", d.Source, d.Name, d.APIVersion)
		}
		sts := &appsv1.StatefulSet{}
		if err := yaml.Unmarshal(d.Raw, sts); err != nil {
			return nil, fmt.Errorf("%s: not a valid StatefulSet: %w", d.Source, err)
		}
		if sts.Name == "" {
			return nil, fmt.Errorf("%s: StatefulSet has no metadata.name", d.Source)
		}
		s := StatefulSet{StatefulSet: sts, Source: d.Source, NamespaceGiven: sts.Namespace != ""}
		if !s.NamespaceGiven {
			sts.Namespace = namespace
		}
		if prev, dup := r.Find(s.Key()); dup {
			return nil, fmt.Errorf("two StatefulSets named %s: %s and %s; pass each release separately", s.Key(), prev.Source, s.Source)
		}
		r.StatefulSets = append(r.StatefulSets, s)
	}
	return r, nil
}

// Pods decodes docs that must all be pods.
func Pods(docs []Document) ([]corev1.Pod, error) {
	pods := make([]corev1.Pod, 0, len(docs))
	for _, d := range docs {
		if d.Kind != "Pod" {
			return nil, fmt.Errorf("%s is a %s (%s), want only Pods: pass the output of kubectl get pods -o yaml", d.Source, d.Kind, d.Name)
		}
		var p corev1.Pod
		if err := yaml.Unmarshal(d.Raw, &p); err != nil {
			return nil, fmt.Errorf("%s: not a valid Pod: %w", d.Source, err)
		}
		pods = append(pods, p)
	}
	return pods, nil
}
