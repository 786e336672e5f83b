package webhook

import (
	"encoding/json"
	"errors"
	"testing"

	evanjsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/pdguard/pdguard/internal/rollout"
)

var reviewCodecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	if err := admissionv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(s)
}()

// checkAnswer holds a handler's answer to the invariants of its path, reading the body
// the way the webhook server does: an object that does not decode is never allowed, and a
// mutating patch applies to the very object it was computed for and never lowers its
// partition.
func checkAnswer(t *testing.T, phase string, body []byte, out *admissionv1.AdmissionReview) {
	t.Helper()
	resp := out.Response
	var ar admissionv1.AdmissionReview
	if _, _, err := reviewCodecs.UniversalDeserializer().Decode(body, nil, &ar); err != nil || ar.Request == nil {
		if err != nil && resp.Allowed {
			t.Fatalf("%s: a body that is not an AdmissionReview (%v) was allowed", phase, err)
		}
		return
	}
	req := ar.Request
	if resp.UID != req.UID {
		t.Fatalf("%s: answer UID %q for request %q", phase, resp.UID, req.UID)
	}
	if req.Kind != statefulSetKind || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		if len(resp.Patch) > 0 {
			t.Fatalf("%s: patched a request pdguard does not guard", phase)
		}
		return
	}
	var sts, old appsv1.StatefulSet
	decodeErr := json.Unmarshal(req.Object.Raw, &sts)
	if len(req.Object.Raw) == 0 {
		decodeErr = errNoObject
	}
	if req.Operation == admissionv1.Update && decodeErr == nil {
		decodeErr = json.Unmarshal(req.OldObject.Raw, &old)
		if len(req.OldObject.Raw) == 0 {
			decodeErr = errNoObject
		}
	}
	if decodeErr != nil {
		if resp.Allowed {
			t.Fatalf("%s: a StatefulSet that does not decode (%v) was allowed", phase, decodeErr)
		}
		return
	}
	if len(resp.Patch) == 0 {
		return
	}
	if phase != "mutate" || !resp.Allowed {
		t.Fatalf("%s: patch on a %s answer with allowed=%v", phase, phase, resp.Allowed)
	}
	patch, err := evanjsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("the patch %s does not decode: %v", resp.Patch, err)
	}
	patched, err := patch.Apply(req.Object.Raw)
	if err != nil {
		t.Fatalf("the patch %s does not apply to the object it was computed for: %v", resp.Patch, err)
	}
	var after appsv1.StatefulSet
	if err := json.Unmarshal(patched, &after); err != nil {
		t.Fatalf("the patched object does not decode: %v", err)
	}
	before, _ := rollout.Partition(&sts)
	if got, _ := rollout.Partition(&after); got < before {
		t.Fatalf("the patch %s lowers the partition from %d to %d", resp.Patch, before, got)
	}
}

var errNoObject = errors.New("no object")
