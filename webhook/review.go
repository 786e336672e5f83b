package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// ServeHTTP answers an AdmissionReview the way controller-runtime's admission.Webhook
// does (same limits, same errors, same response shape), registered on its webhook server
// so TLS, certificate reloads and the webhook metrics stay controller-runtime's. What it
// saves is the review's decoding: admission.Webhook reads the whole 15 KB body twice, once
// with encoding/json only to find apiVersion and kind, and builds a logger per request;
// that was more than a third of a request's CPU.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		writeReview(w, admission.Errored(http.StatusBadRequest, errors.New("request body is empty")), nil)
		return
	}
	defer r.Body.Close()
	buf := bodies.Get().(*bytes.Buffer)
	defer putBody(buf)
	limited := &io.LimitedReader{R: r.Body, N: maxReviewSize}
	if _, err := buf.ReadFrom(limited); err != nil {
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	if limited.N <= 0 {
		writeReview(w, admission.Errored(http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", maxReviewSize)), nil)
		return
	}
	if contentType := r.Header.Get("Content-Type"); contentType != "application/json" {
		writeReview(w, admission.Errored(http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", contentType)), nil)
		return
	}
	// The request's objects point into buf, which goes back to the pool once the answer
	// is written: nothing keeps them past the request (the decoded StatefulSets are copies).
	req, gvk, err := decodeReview(buf.Bytes())
	if err == nil {
		err = checkReviewType(gvk)
	}
	if err != nil {
		writeReview(w, admission.Errored(http.StatusBadRequest, err), nil)
		return
	}
	writeReview(w, h.answer(r.Context(), req), gvk)
}

// checkReviewType refuses a body that does not say it is an AdmissionReview of a version
// the API server sends. controller-runtime's admission.Webhook answers such a body, so a
// review without its type, or of another kind, and with a request for an object pdguard
// does not guard would be allowed; the API server never sends one.
func checkReviewType(gvk *schema.GroupVersionKind) error {
	if gvk != nil && gvk.Kind == "AdmissionReview" && gvk.Group == admissionv1.GroupName &&
		(gvk.Version == admissionv1.SchemeGroupVersion.Version || gvk.Version == admissionv1beta1.SchemeGroupVersion.Version) {
		return nil
	}
	var got string
	if gvk != nil {
		got = gvk.GroupVersion().String() + " " + gvk.Kind
	}
	return fmt.Errorf("not an AdmissionReview: the body says apiVersion/kind %q, want admission.k8s.io/v1 (or v1beta1) AdmissionReview", strings.TrimSpace(got))
}

// bodies hold request bodies between requests: a review is about 15 KB, read into a
// buffer that grew by doubling it was a fifth of a request's allocations.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// pooledBodyLimit keeps the odd huge review's buffer out of the pool.
const pooledBodyLimit = 256 << 10

func putBody(b *bytes.Buffer) {
	if b.Cap() > pooledBodyLimit {
		return
	}
	b.Reset()
	bodies.Put(b)
}

// maxReviewSize is controller-runtime's limit: two objects of at most 3 MB each and the
// rest of the review.
const maxReviewSize = int64(7 * 1024 * 1024)

// answer is admission.Webhook.Handle: a panic is an error answer, not a dropped
// connection, and the response carries the request's uid and its patch encoded.
func (h *Handler) answer(ctx context.Context, req admission.Request) (resp admission.Response) {
	defer func() {
		if p := recover(); p != nil {
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("panic: %v [recovered]", p))
			resp.UID = req.UID
		}
	}()
	resp = h.Handle(ctx, req)
	if err := resp.Complete(req); err != nil {
		resp = admission.Errored(http.StatusInternalServerError, errors.New("unable to encode response"))
		resp.UID = req.UID
	}
	return resp
}

// decodeReview reads the review as controller-runtime's universal deserializer does, in
// one pass with go-json-experiment/json (sigs.k8s.io/json, which that deserializer ends
// in, scans the 15 KB body three times: a fifth of a request's CPU). Anything else
// (YAML, a body the fast decoder refuses or may read otherwise) goes through the
// universal deserializer itself, so its answer and its error words are the ones
// admission.Webhook gives; TestServeHTTPMatchesAdmissionWebhook and FuzzAdmissionReview
// hold the fast path to it.
func decodeReview(body []byte) (admission.Request, *schema.GroupVersionKind, error) {
	if utilyaml.IsJSONBuffer(body) {
		if req, gvk, ok := decodeJSONReview(body); ok {
			return req, gvk, nil
		}
	}
	return decodeReviewSlow(body)
}

func decodeJSONReview(body []byte) (admission.Request, *schema.GroupVersionKind, bool) {
	var fr fastRequest
	ar := fastReview{Request: &fr}
	if err := jsonv2.Unmarshal(body, &ar, reviewOptions); err != nil || len(ar.Unknown) > 0 {
		return admission.Request{}, nil, false
	}
	gv, err := schema.ParseGroupVersion(ar.APIVersion)
	if err != nil {
		return admission.Request{}, nil, false
	}
	req := admission.Request{AdmissionRequest: fr.AdmissionRequest}
	req.Object.Raw, req.OldObject.Raw = fr.Object, fr.OldObject
	return req, &schema.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: ar.Kind}, true
}

// reviewOptions make go-json-experiment/json decode as sigs.k8s.io/json's case-sensitive
// decoding does wherever both accept the body: names match exactly and unknown members
// are skipped. What either refuses (duplicate names, invalid UTF-8, a value of the wrong
// type) makes decodeReview fall back to the universal deserializer.
var reviewOptions = jsonv2.JoinOptions(jsonv2.RejectUnknownMembers(false), jsonv2.MatchCaseInsensitiveNames(false))

// fastReview is the v1 review with its two objects left in the body instead of copied
// out of it (runtime.RawExtension copies): the outer fields win over the embedded
// ones of the same JSON name, by the embedding rule both decoders share (shallowest wins).
//
// The universal deserializer reads apiVersion and kind with encoding/json, whose names
// match in any case ("Kind", "APIVERSION"), and the review with sigs.k8s.io/json, whose
// names match exactly. Here they match exactly, so a body with any other top-level
// member, where such a spelling would hide, goes to the universal deserializer; the API
// server sends only apiVersion, kind and request.
type fastReview struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Request    *fastRequest   `json:"request"`
	Unknown    jsontext.Value `json:",embed"`
}

type fastRequest struct {
	admissionv1.AdmissionRequest
	Object    bodySlice `json:"object,omitempty"`
	OldObject bodySlice `json:"oldObject,omitempty"`
}

// bodySlice is runtime.RawExtension's decoding (null leaves it as it was) without the
// copy: decoding from a byte slice, the decoder hands out values that are slices of it
// (TestReviewObjectsStayInTheBody).
type bodySlice []byte

func (b *bodySlice) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if v.Kind() != 'n' {
		*b = []byte(v)
	}
	return nil
}

func decodeReviewSlow(body []byte) (admission.Request, *schema.GroupVersionKind, error) {
	var req admission.Request
	ar := unversionedReview{}
	ar.Request = &req.AdmissionRequest
	ar.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	_, gvk, err := admissionCodecs.UniversalDeserializer().Decode(body, nil, &ar)
	if err != nil {
		return admission.Request{}, nil, err
	}
	return req, gvk, nil
}

// admissionCodecs know both AdmissionReview versions, as controller-runtime's do.
var admissionCodecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	if err := admissionv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := admissionv1beta1.AddToScheme(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s)
}()

// unversionedReview is not registered in the scheme, so a v1beta1 review decodes into
// the v1 type, whose fields are the same.
type unversionedReview struct {
	admissionv1.AdmissionReview
}

var _ runtime.Object = &unversionedReview{}

// writeReview writes the answer as admission.Webhook does: typed with the request's
// review version, v1 when the request named none.
func writeReview(w io.Writer, resp admission.Response, gvk *schema.GroupVersionKind) {
	ar := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	if gvk != nil {
		if *gvk == (schema.GroupVersionKind{}) {
			ar.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
		} else {
			ar.SetGroupVersionKind(*gvk)
		}
	}
	if err := json.NewEncoder(w).Encode(ar); err != nil {
		serverError := admission.Errored(http.StatusInternalServerError, err)
		_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{Response: &serverError.AdmissionResponse})
	}
}
