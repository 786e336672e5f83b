package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// TestServeHTTPMatchesAdmissionWebhook sends the same requests to the handler and to
// controller-runtime's admission.Webhook around it: the bytes of every answer, and its
// HTTP status, must be the same, including for what the API server never sends.
func TestServeHTTPMatchesAdmissionWebhook(t *testing.T) {
	upgrade := review(t, admissionv1.Update, fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest"))
	v1beta1 := bytes.Replace(upgrade, []byte(`"apiVersion":"admission.k8s.io/v1"`), []byte(`"apiVersion":"admission.k8s.io/v1beta1"`), 1)
	bodies := map[string]struct {
		body        []byte
		contentType string
	}{
		"tag change":                 {upgrade, "application/json"},
		"v1beta1 review":             {v1beta1, "application/json"},
		"create":                     {review(t, admissionv1.Create, nil, fixture.Live()), "application/json"},
		"wrong content type":         {upgrade, "text/plain"},
		"no content type":            {upgrade, ""},
		"empty body":                 {nil, "application/json"},
		"YAML body":                  {[]byte("apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest:\n  uid: \"1\"\n"), "application/json"},
		"bad apiVersion":             {[]byte(`{"apiVersion":"a/b/c","kind":"AdmissionReview","request":{"uid":"1"}}`), "application/json"},
		"no apiVersion":              {[]byte(`{"request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"StatefulSet"},"operation":"DELETE"}}`), "application/json"},
		"keys in other case":         {[]byte(`{"APIVERSION":"admission.k8s.io/v1","Kind":"AdmissionReview","Request":{"UID":"1"}}`), "application/json"},
		"truncated":                  {upgrade[:len(upgrade)/2], "application/json"},
		"request is null":            {[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`), "application/json"},
		"object of the wrong shape":  {[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"StatefulSet"},"operation":"UPDATE","object":{"spec":{"replicas":"two"}},"oldObject":{}}}`), "application/json"},
		"object twice and null":      {[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"StatefulSet"},"operation":"CREATE","object":{"metadata":{"name":"a"}},"object":{"metadata":{"name":"b","labels":{"app.kubernetes.io/name":"pingdirectory"}}},"object":null}}`), "application/json"},
		"number where a string goes": {[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}`), "application/json"},
		"kind in other case only":    {bytes.Replace(upgrade, []byte(`"kind":"AdmissionReview"`), []byte(`"KIND":"AdmissionReview"`), 1), "application/json"},
		"kind twice":                 {bytes.Replace(upgrade, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"Other","kind":"AdmissionReview"`), 1), "application/json"},
		"kind twice, other case":     {bytes.Replace(upgrade, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"Other","Kind":"AdmissionReview"`), 1), "application/json"},
		"uid in other case":          {bytes.Replace(upgrade, []byte(`"uid":`), []byte(`"UID":`), 1), "application/json"},
		"another top-level member":   {bytes.Replace(upgrade, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"AdmissionReview","response":{"uid":"x","allowed":true}`), 1), "application/json"},
		"invalid UTF-8 in a name":    {bytes.Replace(upgrade, []byte(`"name":"`), []byte("\"name\":\"\xff"), 1), "application/json"},
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzAdmissionReview"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzAdmissionReview", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		body, ok := fuzzBytes(string(raw))
		if !ok {
			t.Fatalf("corpus file %s: no []byte value", e.Name())
		}
		bodies["corpus "+e.Name()] = struct {
			body        []byte
			contentType string
		}{body, "application/json"}
	}
	for _, phase := range []string{"mutate", "validate"} {
		h := newHandler(t, phase)
		for name, b := range bodies {
			t.Run(phase+"/"+name, func(t *testing.T) {
				got, want := serveWith(h, b.body, b.contentType), serveWith(&admission.Webhook{Handler: h}, b.body, b.contentType)
				if !typedReview(b.body) {
					// admission.Webhook answers a body without the AdmissionReview type;
					// pdguard refuses it.
					refusesUntyped(t, got)
					return
				}
				if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
					t.Fatalf("answer differs from admission.Webhook's\n got %d %s\nwant %d %s", got.Code, got.Body, want.Code, want.Body)
				}
			})
		}
	}
}

func serveWith(srv http.Handler, body []byte, contentType string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	var r *http.Request
	if body == nil {
		r = httptest.NewRequest(http.MethodPost, "/", http.NoBody)
	} else {
		r = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	srv.ServeHTTP(rec, r)
	return rec
}

// fuzzBytes reads the one []byte("...") value of a go test fuzz corpus file.
func fuzzBytes(file string) ([]byte, bool) {
	for _, line := range strings.Split(file, "\n") {
		if v, ok := strings.CutPrefix(line, "[]byte("); ok {
			s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
			return []byte(s), err == nil
		}
	}
	return nil, false
}

// typedReview reports whether body says it is an AdmissionReview (apiVersion and kind),
// as everything the API server sends does.
func typedReview(body []byte) bool {
	_, _, err := admissionCodecs.UniversalDeserializer().Decode(body, nil, nil)
	return err == nil
}

func refusesUntyped(t *testing.T, got *httptest.ResponseRecorder) {
	t.Helper()
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(got.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("answer is not an AdmissionReview with a response: %d %s", got.Code, got.Body)
	}
	if out.Response.Allowed || out.Response.Result == nil || out.Response.Result.Code != http.StatusBadRequest {
		t.Fatalf("a body that is not a typed AdmissionReview was not refused with 400: %s", got.Body)
	}
}

// TestReviewObjectsStayInTheBody holds decodeJSONReview to what saves its copies: the
// objects it returns are slices of the body, so the body must outlive them (ServeHTTP
// keeps it until the answer is written).
func TestReviewObjectsStayInTheBody(t *testing.T) {
	body := review(t, admissionv1.Update, fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest"))
	req, _, ok := decodeJSONReview(body)
	if !ok {
		t.Fatal("the fast path refused a review the API server sends")
	}
	for name, raw := range map[string][]byte{"object": req.Object.Raw, "oldObject": req.OldObject.Raw} {
		i := bytes.Index(body, raw)
		if len(raw) == 0 || i < 0 || &body[i] != &raw[0] {
			t.Errorf("%s is not a slice of the body", name)
		}
	}
}
