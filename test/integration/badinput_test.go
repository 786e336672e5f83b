//go:build integration

package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// badInput is one hostile or broken request posted straight to pdguard's TLS port, as
// the API server would post it (or as anyone who can reach the port could).
type badInput struct {
	name string
	path string // /mutate or /validate
	body []byte
	// contentType defaults to application/json.
	contentType string
	// status is the HTTP status; the webhook protocol answers 200 whenever it answers
	// with an AdmissionReview.
	status  int
	allowed bool
	// code is the response's result code (0: not checked).
	code int32
	// message must be in the result message, warning in the warnings, patch in the
	// JSON patch.
	message, warning, patch string
	// absent must appear nowhere in the answer.
	absent string
}

// adminReview is an AdmissionReview of a StatefulSet change by the admin user; edit
// changes the request before it is encoded.
func adminReview(t *testing.T, op admissionv1.Operation, old, nw *appsv1.StatefulSet, edit ...func(*admissionv1.AdmissionRequest)) []byte {
	t.Helper()
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID(fmt.Sprintf("bad-input-%d", time.Now().UnixNano())),
		Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
		Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
		Name:      fixture.Name,
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: adminUser, Groups: []string{"system:authenticated"}},
	}
	if nw != nil {
		req.Namespace = nw.Namespace
		req.Object = runtime.RawExtension{Raw: mustMarshal(t, nw)}
	}
	if old != nil {
		req.Namespace = old.Namespace
		req.OldObject = runtime.RawExtension{Raw: mustMarshal(t, old)}
	}
	for _, e := range edit {
		e(req)
	}
	return mustMarshal(t, &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edited returns a copy of sts changed by each edit.
func edited(sts *appsv1.StatefulSet, edits ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	c := sts.DeepCopy()
	for _, e := range edits {
		e(c)
	}
	return c
}

func withPartition(p int32) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &p}
	}
}

func withProductImage(image string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { productContainer(&s.Spec.Template.Spec).Image = image }
}

func withAnnotation(k, v string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

// guardClient posts to the shared pdguard over TLS, trusting only its CA.
func guardClient(t *testing.T) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(env.guard.CAPEM) {
		t.Fatal("pdguard's CA does not parse")
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// Every case gets a clear answer from the real server: the expected HTTP status,
// allowed or not, and a message that names the problem; never a dropped connection, a
// panic or an allow where a rule should speak.
func TestBadInput(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "bad-input")
	g.serveLog(1, "in-progress.log")
	open := g.openCanary()
	g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress })
	stable := chartStatefulSet(g.ns)
	stable.UID, stable.Generation = open.UID, open.Generation
	stable.Status = open.Status
	stable.Status.UpdateRevision = stable.Status.CurrentRevision
	tagged := func(tag string) *appsv1.StatefulSet {
		return edited(stable, func(s *appsv1.StatefulSet) { fixture.WithTag(s, tag) }, withPartition(1))
	}
	promotion := edited(open, withPartition(0))

	// A second StatefulSet with the same labels and selector: its pods are listed with
	// the canary's, and must not count for it.
	g.twin()

	review := func(op admissionv1.Operation, old, nw *appsv1.StatefulSet, edit ...func(*admissionv1.AdmissionRequest)) []byte {
		return adminReview(t, op, old, nw, edit...)
	}
	asUser := func(name string, groups ...string) func(*admissionv1.AdmissionRequest) {
		return func(r *admissionv1.AdmissionRequest) {
			r.UserInfo = authenticationv1.UserInfo{Username: name, Groups: groups}
		}
	}
	big := strings.Repeat("x", 3<<20)
	valid := review(admissionv1.Update, stable, tagged(newTag))
	noCanary := review(admissionv1.Update, stable, edited(stable, func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) }))
	twoProducts := edited(tagged(newTag), func(s *appsv1.StatefulSet) {
		c := *productContainer(&s.Spec.Template.Spec)
		c.Image = oldImage
		s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers, c)
	})
	// An init step of the product's image moves with it: changing only its tag is a
	// version change that needs a canary.
	seedOld := edited(stable, func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.InitContainers = append(s.Spec.Template.Spec.InitContainers, corev1.Container{Name: "seed", Image: oldImage})
	})
	seed := edited(seedOld, func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.InitContainers[len(s.Spec.Template.Spec.InitContainers)-1].Image = newImage
	})
	deployment := mustMarshal(t, &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: fixture.Name, Namespace: g.ns, Labels: stable.Labels},
		Spec:       appsv1.DeploymentSpec{Template: stable.Spec.Template},
	})

	cases := []badInput{
		{name: "a body that is not JSON", path: "/validate", body: []byte("helm upgrade --install"), status: 200, code: 400, message: "couldn't get version/kind"},
		{name: "truncated JSON", path: "/validate", body: valid[:len(valid)/2], status: 200, code: 400, message: "unexpected end of JSON input"},
		{name: "an empty body", path: "/validate", body: nil, status: 200, code: 400, message: "request body is empty"},
		{name: "a body that is not declared JSON", path: "/validate", body: valid, contentType: "text/plain", status: 200, code: 400, message: "contentType=text/plain, expected application/json"},
		{name: "a 3 MiB object is decided like any other", path: "/mutate", body: review(admissionv1.Update, stable, edited(tagged(newTag), withPartition(0), withAnnotation("example.com/blob", big))), status: 200, allowed: true, patch: `"value":1`},
		{name: "a body past the 7 MiB limit", path: "/validate", body: review(admissionv1.Update, edited(stable, withAnnotation("example.com/blob", big)), edited(tagged(newTag), withAnnotation("example.com/blob", big+big))), status: 200, code: 413, message: "request entity is too large"},
		// The server reads any review as v1 (the fields are the same), so what decides is
		// the change it carries: a tag change without a canary partition.
		{name: "a review of another apiVersion is refused", path: "/validate", body: bytes.Replace(noCanary, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v2"`), 1), status: 200, code: 400, message: `not an AdmissionReview: the body says apiVersion/kind "admission.k8s.io/v2 AdmissionReview"`},
		{name: "a review of another kind is refused", path: "/mutate", body: bytes.Replace(noCanary, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"AdmissionResponse"`), 1), status: 200, code: 400, message: `"admission.k8s.io/v1 AdmissionResponse", want admission.k8s.io/v1 (or v1beta1) AdmissionReview`},
		{name: "a Deployment sent to the StatefulSet webhook", path: "/validate", body: review(admissionv1.Update, nil, nil, func(r *admissionv1.AdmissionRequest) {
			r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
			r.Object, r.OldObject = runtime.RawExtension{Raw: deployment}, runtime.RawExtension{Raw: deployment}
		}), status: 200, allowed: true, message: "only guards apps/v1 StatefulSets"},
		{name: "a Deployment object in a StatefulSet request", path: "/validate", body: review(admissionv1.Update, stable, nil, func(r *admissionv1.AdmissionRequest) {
			r.Object = runtime.RawExtension{Raw: deployment}
		}), status: 200, code: 400, message: "apps/v1 Deployment, not a StatefulSet"},
		{name: "an UPDATE without oldObject", path: "/validate", body: review(admissionv1.Update, nil, tagged(newTag)), status: 200, code: 400, message: "carries no oldObject"},
		{name: "a CREATE is decided without a live object", path: "/validate", body: review(admissionv1.Create, nil, stable), status: 200, allowed: true},
		{name: "a DELETE is not pdguard's to decide", path: "/validate", body: review(admissionv1.Delete, stable, nil), status: 200, allowed: true},
		{name: "a CONNECT is not pdguard's to decide", path: "/validate", body: review(admissionv1.Connect, nil, nil), status: 200, allowed: true},
		{name: "a dry run is judged like the real change", path: "/validate", body: review(admissionv1.Update, stable, edited(tagged(newTag), func(s *appsv1.StatefulSet) { bundle(s) }), func(r *admissionv1.AdmissionRequest) {
			r.DryRun = ptrTo(true)
		}), status: 200, code: 403, message: "[bundled-config-and-version]"},
		{name: "object and oldObject of different names", path: "/validate", body: review(admissionv1.Update, edited(open, func(s *appsv1.StatefulSet) { s.Name = "pd-other" }), promotion), status: 200, code: 400, message: "/pd-other into " + g.ns + "/" + fixture.Name + ": object and oldObject must be the same StatefulSet"},
		{name: "negative replicas", path: "/validate", body: review(admissionv1.Update, stable, edited(tagged(newTag), func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptrTo(int32(-1)) })), status: 200, code: 400, message: "replicas"},
		{name: "missing replicas is one replica", path: "/mutate", body: review(admissionv1.Update, stable, edited(tagged(newTag), withPartition(0), func(s *appsv1.StatefulSet) { s.Spec.Replicas = nil })), status: 200, allowed: true, warning: "[single-replica]"},
		{name: "partition above replicas stays", path: "/mutate", body: review(admissionv1.Update, stable, edited(tagged(newTag), withPartition(5))), status: 200, allowed: true, patch: "pdguard.io~1canary", warning: "keeps spec.updateStrategy.rollingUpdate.partition", absent: "/spec/updateStrategy/rollingUpdate/partition"},
		{name: "no container of the configured name", path: "/validate", body: review(admissionv1.Update, stable, edited(tagged(newTag), func(s *appsv1.StatefulSet) { productContainer(&s.Spec.Template.Spec).Name = "pd" })), status: 200, allowed: true, warning: `has no container named "pingdirectory"`},
		{name: "two containers of the configured name", path: "/validate", body: review(admissionv1.Update, stable, twoProducts), status: 200, code: 400, message: `2 containers named "pingdirectory"`},
		{name: "an init container with the PingDirectory image", path: "/validate", body: review(admissionv1.Update, seedOld, seed), status: 200, code: 403, message: "[missing-canary]"},
		{name: "image by digest only", path: "/mutate", body: review(admissionv1.Update, stable, edited(stable, withProductImage("pingidentity/pingdirectory@sha256:3f1c2d7e8a915b0c6a0e3f0d4a8e9b536f1c2d7e8a915b0c6a0e3f0d4a8e9b53"))), status: 200, allowed: true, patch: `"value":1`, warning: "to pingidentity/pingdirectory@sha256:3f1c2d7e"},
		{name: "tag latest", path: "/mutate", body: review(admissionv1.Update, stable, edited(stable, withProductImage("pingidentity/pingdirectory:latest"))), status: 200, allowed: true, patch: `"value":1`, warning: "to pingidentity/pingdirectory:latest reaches only pod"},
		{name: "tag edge", path: "/mutate", body: review(admissionv1.Update, stable, edited(stable, withProductImage("pingidentity/pingdirectory:edge"))), status: 200, allowed: true, patch: `"value":1`, warning: "to pingidentity/pingdirectory:edge reaches only pod"},
		{name: "an unparseable tag", path: "/validate", body: review(admissionv1.Update, stable, edited(tagged(newTag), withProductImage("pingidentity/pingdirectory:9.1.0.0:latest!"))), status: 200, code: 400, message: `image reference "pingidentity/pingdirectory:9.1.0.0:latest!"`},
		{name: "a hand-written canary record that is not JSON", path: "/validate", body: review(admissionv1.Update, edited(open, withAnnotation(rollout.CanaryAnnotation, "{canary: yes")), edited(promotion, withAnnotation(rollout.CanaryAnnotation, "{canary: yes"))), status: 200, code: 403, message: "[partition-gate]"},
		{name: "a hand-written canary record naming another image", path: "/validate", body: review(admissionv1.Update, edited(open, withAnnotation(rollout.CanaryAnnotation, `{"fromImage":"`+newImage+`","toImage":"`+oldImage+`","partition":0}`)), promotion), status: 200, code: 403, message: "[partition-gate]"},
		{name: "a promotion while the canary's verdict is InProgress", path: "/validate", body: review(admissionv1.Update, open, promotion), status: 200, code: 403, message: "verdict InProgress"},
		{name: "an override from a user outside the groups", path: "/validate", body: review(admissionv1.Update, open, edited(promotion, withAnnotation(rollout.OverrideReasonAnnotation, "INC-1 rollback")), asUser("mallory", "developers")), status: 200, code: 403, message: "annotation was ignored because user mallory is not in groups [system:masters]"},
		{name: "unicode and control characters in the name", path: "/validate", body: review(admissionv1.Update, edited(open, func(s *appsv1.StatefulSet) { s.Name = fixture.Name + "\u202e\x00" }), edited(promotion, func(s *appsv1.StatefulSet) { s.Name = fixture.Name + "\u202e\x00" })), status: 200, code: 403, message: "[partition-gate]"},
		{name: "control characters in an annotation", path: "/validate", body: review(admissionv1.Update, open, edited(promotion, withAnnotation(rollout.OverrideReasonAnnotation, "\x1b[2J\x07\u202e"), withAnnotation(rollout.EnforcementAnnotation, "warn\x00"))), status: 200, code: 403, message: "[partition-gate]", warning: `is "warn\x00", which is not one of enforce, warn, dryrun`},
		{name: "another StatefulSet's pods share the labels", path: "/validate", body: review(admissionv1.Update, open, promotion), status: 200, code: 403, message: "Pod " + podName(1) + ":", absent: "pd-twin"},
	}

	// A verdict written on the canary by a user: the gate must not count it. pdguard's
	// controller replaces it soon after, so the denial names either the forgery or
	// pdguard's own InProgress verdict; both refuse the promotion on the canary.
	canary := g.pod(1)
	if _, err := env.admin.CoreV1().Pods(g.ns).Patch(g.ctx, canary.Name, types.MergePatchType, annotationPatch(forgedVerdict(canary)), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, badInput{name: "a verdict forged on the canary pod", path: "/validate", body: review(admissionv1.Update, open, promotion), status: 200, code: 403, message: "[partition-gate] "})
	// A verdict that is not JSON, written on the canary by hand.
	cases = append(cases, badInput{name: "a hand-written verdict that is not JSON", path: "/validate", body: review(admissionv1.Update, open, promotion), status: 200, code: 403, message: "Pod " + podName(1) + ":"})

	client := guardClient(t)
	for i, tc := range cases {
		if tc.name == "a hand-written verdict that is not JSON" {
			if _, err := env.admin.CoreV1().Pods(g.ns).Patch(g.ctx, canary.Name, types.MergePatchType, annotationPatch("Succeeded!"), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(fmt.Sprintf("%02d %s", i+1, tc.name), func(t *testing.T) {
			got := postReview(t, client, tc)
			t.Logf("%s: HTTP %d allowed=%v code=%d message=%q warnings=%q", tc.name, got.status, got.resp.Allowed, got.code(), got.message(), got.resp.Warnings)
			if got.status != tc.status {
				t.Fatalf("HTTP %d, want %d", got.status, tc.status)
			}
			if got.resp.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v", got.resp.Allowed, tc.allowed)
			}
			if tc.code != 0 && got.code() != tc.code {
				t.Errorf("result code %d, want %d", got.code(), tc.code)
			}
			if !strings.Contains(got.message(), tc.message) {
				t.Errorf("message %q does not contain %q", got.message(), tc.message)
			}
			if w := strings.Join(got.resp.Warnings, "\n"); !strings.Contains(w, tc.warning) {
				t.Errorf("warnings %q do not contain %q", got.resp.Warnings, tc.warning)
			}
			if !strings.Contains(string(got.resp.Patch), tc.patch) {
				t.Errorf("patch %s does not contain %s", got.resp.Patch, tc.patch)
			}
			if tc.absent != "" && strings.Contains(got.raw, tc.absent) {
				t.Errorf("the answer mentions %q: %s", tc.absent, got.raw)
			}
		})
	}
	t.Logf("bad input: %d cases answered over TLS by the running pdguard", len(cases))
}

type reviewAnswer struct {
	status int
	resp   admissionv1.AdmissionResponse
	raw    string
}

func (a reviewAnswer) code() int32 {
	if a.resp.Result == nil {
		return 0
	}
	return a.resp.Result.Code
}

func (a reviewAnswer) message() string {
	if a.resp.Result == nil {
		return ""
	}
	return a.resp.Result.Message
}

func postReview(t *testing.T, client *http.Client, tc badInput) reviewAnswer {
	t.Helper()
	ct := tc.contentType
	if ct == "" {
		ct = "application/json"
	}
	var body io.Reader = http.NoBody
	if tc.body != nil {
		body = bytes.NewReader(tc.body)
	}
	req, err := http.NewRequest(http.MethodPost, env.guard.URL+tc.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &out); err != nil || out.Response == nil {
		t.Fatalf("HTTP %d, answer is not an AdmissionReview with a response: %s", resp.StatusCode, raw)
	}
	return reviewAnswer{status: resp.StatusCode, resp: *out.Response, raw: string(raw)}
}
