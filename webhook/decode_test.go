package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// decodeCorpus is every object the webhook tests send, each fixture with every value in
// turn removed, nulled, given another JSON type or its key recased, the objects inside
// the admission-review fuzz seeds, and byte-level oddities.
func decodeCorpus(t testing.TB) [][]byte {
	var corpus [][]byte
	add := func(v any) {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, raw)
	}
	bases := []*appsv1.StatefulSet{
		fixture.Live(), fixture.HelmTemplate(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest"),
		onDelete(fixture.Live()), {}, fixture.WithManagedFields(fixture.Live()),
	}
	for _, sts := range bases {
		add(sts)
	}
	for _, sts := range bases[:2] {
		raw, _ := json.Marshal(sts)
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		for _, variant := range variants(doc) {
			add(variant)
		}
		for cut := 0; cut < len(raw); cut += 97 {
			corpus = append(corpus, raw[:cut])
		}
	}
	for _, body := range [][]byte{
		review(t, admissionv1.Update, fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest")),
		review(t, admissionv1.Create, nil, fixture.Live()),
	} {
		var r admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, r.Request.Object.Raw, r.Request.OldObject.Raw)
	}
	for _, s := range []string{
		`{"metadata":{"labels":{"app.kubernetes.io/name":"pingdirectory"}}}`, `{}`, `not json`, `null`, `[]`, `""`, ``,
		`{"spec":{"replicas":1e2}}`, `{"spec":{"replicas":2.5}}`, `{"spec":{"replicas":99999999999}}`, `{"spec":{"replicas":"2"}}`,
		`{"metadata":{"name":"a","name":"b"}}`, `{"METADATA":{"NAME":"x"}}`, `{"metadata":{"n\u0061me":"x"}}`,
		`{"spec":{"template":{"spec":{"containers":[{"name":"pingdirectory","resources":{"limits":{"memory":"1Gx"}}}]}}}}`,
		`{"spec":{"template":{"spec":{"containers":[{"name":"pingdirectory","ports":[{"containerPort":"x"}]}]}}}}`,
		`{"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":"50%","partition":1}}}}`,
		`{"metadata":{"creationTimestamp":"yesterday"}}`, `{"metadata":{"annotations":{"a":1}}}`, `{"status":{}} trailing`,
		`{"spec":{"replicas":1}}` + "\n", ` {"spec":{"replicas":-1}} `, `{"spec":{"selector":{"matchLabels":null}}}`,
		`{"metadata":{"managedFields":null}}`, `{"metadata":{"managedFields":[]}}`, `{"metadata":{"managedFields":[null,{}]}}`,
		`{"metadata":{"managedFields":5}}`, `{"metadata":{"managedFields":{}}}`, `{"metadata":{"managedFields":[5]}}`,
		`{"metadata":{"managedFields":[[]]}}`, `{"metadata":{"managedFields":["x"]}}`, `{"metadata":{"managedFields":[{"manager":5}]}}`,
		`{"metadata":{"managedFields":[{"time":"yesterday"}],"name":"a"}}`, `{"metadata":{"managedFields":[{"fieldsV1":"x"}],"name":"a"}}`,
		`{"metadata":{"managedFields":[{"manager":5}]},"spec":{"replicas":"2"}}`, `{"metadata":{"ManagedFields":[{"manager":"helm"}]}}`,
		`{"metadata":{"MANAGEDFIELDS":[5]}}`, `{"metadata":{"managedFields":[{"manager":"helm"}],"managedfields":[{"manager":"x"}]}}`,
		`{"metadata":{"managedFields":[{"manager":"helm"}` + "\n",
	} {
		corpus = append(corpus, []byte(s))
	}
	return corpus
}

// variants changes one value of doc at a time.
func variants(doc any) []any {
	var out []any
	var walk func(v any, set func(any), rename func(string) bool)
	walk = func(v any, set func(any), rename func(string) bool) {
		for _, other := range []any{nil, "x", float64(1), true, map[string]any{}, []any{}} {
			set(other)
			out = append(out, deepCopyJSON(doc))
		}
		set(v)
		if rename != nil && rename("") {
			out = append(out, deepCopyJSON(doc))
			rename("undo")
		}
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				walk(child, func(n any) { v[k] = n }, func(op string) bool {
					if op == "undo" {
						val := v[strings.ToUpper(k)]
						delete(v, strings.ToUpper(k))
						v[k] = val
						return true
					}
					if strings.ToUpper(k) == k {
						return false
					}
					v[strings.ToUpper(k)] = v[k]
					delete(v, k)
					return true
				})
				delete(v, k)
				out = append(out, deepCopyJSON(doc))
				v[k] = child
			}
		case []any:
			for i, child := range v {
				walk(child, func(n any) { v[i] = n }, nil)
			}
		}
	}
	walk(doc, func(any) {}, nil)
	return out
}

func deepCopyJSON(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

func TestDecodeStatefulSetMatchesEncodingJSON(t *testing.T) {
	corpus := decodeCorpus(t)
	if len(corpus) < 1000 {
		t.Fatalf("corpus has only %d inputs", len(corpus))
	}
	for i, raw := range corpus {
		if msg := compareDecoders(raw); msg != "" {
			t.Errorf("input %d %.300s: %s", i, raw, msg)
		}
	}
}

func FuzzDecodeStatefulSet(f *testing.F) {
	for _, raw := range decodeCorpus(f)[:200] {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if msg := compareDecoders(raw); msg != "" {
			t.Error(msg)
		}
	})
}

// compareDecoders holds decodeStatefulSet to encoding/json: the same object but its
// managedFields, refused where encoding/json refuses it even with managedFields unread,
// and in the words encoding/json has for a StatefulSet.
func compareDecoders(raw []byte) string {
	var full appsv1.StatefulSet
	fullErr := json.Unmarshal(raw, &full)
	var unread admissionObject
	unreadErr := json.Unmarshal(raw, &unread)
	var got appsv1.StatefulSet
	gotErr := decodeStatefulSet(raw, &got)
	switch {
	case fullErr == nil && unreadErr != nil:
		return fmt.Sprintf("with managedFields unread, encoding/json refuses what it accepts in full: %v", unreadErr)
	case (unreadErr == nil) != (gotErr == nil):
		return fmt.Sprintf("encoding/json error %v, decodeStatefulSet error %v", unreadErr, gotErr)
	case unreadErr != nil:
		if fullErr.Error() != gotErr.Error() {
			return fmt.Sprintf("error %q, encoding/json says %q", gotErr, fullErr)
		}
		return ""
	}
	want := full
	if fullErr != nil {
		// Only managedFields were wrong: encoding/json's object is the one without them.
		want = appsv1.StatefulSet{TypeMeta: unread.TypeMeta, ObjectMeta: unread.ObjectMeta.ObjectMeta, Spec: unread.Spec, Status: unread.Status}
	}
	want.ManagedFields = nil
	if !reflect.DeepEqual(want, got) {
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(got)
		return fmt.Sprintf("decoded\n%s\nencoding/json decoded\n%s", g, w)
	}
	return ""
}
