package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/go-logr/logr"
	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/policy"
)

type staticPods []corev1.Pod

func (s staticPods) PodsFor(context.Context, *appsv1.StatefulSet) ([]corev1.Pod, error) {
	return s, nil
}

// newServer is the handler the webhook server registers for phase.
func newServer(t testing.TB, phase string) http.Handler {
	t.Helper()
	return newHandler(t, phase)
}

func newHandler(t testing.TB, phase string) *Handler {
	t.Helper()
	sel, _ := labels.Parse("app.kubernetes.io/name=pingdirectory")
	return &Handler{
		Phase: phase, Guard: newGuard(t, nil), Selector: sel, Pods: staticPods(nil),
		Audit: audit.New(audit.Options{Log: logr.Discard()}),
	}
}

func review(t testing.TB, op admissionv1.Operation, old, nw runtime.Object) []byte {
	t.Helper()
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID("4f0c8f3e-1d2b-4c3a-9e8f-000000000001"),
		Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
		Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
		Name:      "pd-upgrade-example-pingdirectory",
		Namespace: "ping",
		Operation: op,
		UserInfo:  authenticationv1.UserInfo{Username: "helm-user", Groups: []string{"system:authenticated"}},
	}
	if nw != nil {
		req.Object = runtime.RawExtension{Raw: mustJSON(t, nw)}
	}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: mustJSON(t, old)}
	}
	return mustJSON(t, &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t testing.TB, srv http.Handler, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	srv.ServeHTTP(rec, r)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v\n%s", err, rec.Body.String())
	}
	if out.Response == nil {
		t.Fatalf("AdmissionReview has no response: %s", rec.Body.String())
	}
	return out.Response
}

func TestHandlers(t *testing.T) {
	tests := map[string]struct {
		phase       string
		op          admissionv1.Operation
		old, new    func() runtime.Object
		wantAllowed bool
		wantPatch   string // substring of the JSON patch
		wantMessage string // substring of the denial message
		wantWarning string
	}{
		"an image change of an OnDelete StatefulSet is denied with what to change, not answered as an error": {
			phase: "mutate", op: admissionv1.Update,
			old:         func() runtime.Object { return onDelete(fixture.Live()) },
			new:         func() runtime.Object { return onDelete(fixture.WithTag(fixture.Live(), "9.1.0.0-latest")) },
			wantMessage: "updateStrategy is OnDelete, which has no partition. Set updateStrategy.type to RollingUpdate",
		},
		"the mutating webhook pins a canary on a helm upgrade that changes the tag": {
			phase: "mutate", op: admissionv1.Update,
			old:         func() runtime.Object { return fixture.Live() },
			new:         func() runtime.Object { return fixture.WithTag(fixture.Live(), "9.1.0.0-latest") },
			wantAllowed: true, wantPatch: `"path":"/spec/updateStrategy/rollingUpdate/partition","value":1`,
			wantWarning: "pd-upgrade-example-pingdirectory-1",
		},
		"the validating webhook denies a tag change bundled with a config change": {
			phase: "validate", op: admissionv1.Update,
			old: func() runtime.Object { return fixture.Live() },
			new: func() runtime.Object {
				s := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				s.Spec.Template.Annotations["checksum/config"] = "changed"
				one := int32(1)
				s.Spec.UpdateStrategy.RollingUpdate.Partition = &one
				return s
			},
			wantAllowed: false, wantMessage: "checksum/config",
		},
		"the validating webhook denies a tag change that arrives without a canary partition": {
			phase: "validate", op: admissionv1.Update,
			old:         func() runtime.Object { return fixture.Live() },
			new:         func() runtime.Object { return fixture.WithTag(fixture.Live(), "9.1.0.0-latest") },
			wantAllowed: false, wantMessage: "partition",
		},
		"a StatefulSet without the guard's label passes untouched": {
			phase: "validate", op: admissionv1.Update,
			old: func() runtime.Object { s := fixture.Live(); s.Labels = map[string]string{"app": "other"}; return s },
			new: func() runtime.Object {
				s := fixture.WithTag(fixture.Live(), "9.1.0.0-latest")
				s.Labels = map[string]string{"app": "other"}
				return s
			},
			wantAllowed: true,
		},
		"an object that is not a StatefulSet is allowed without a decision": {
			phase: "validate", op: admissionv1.Update,
			old:         func() runtime.Object { return &corev1.ConfigMap{} },
			new:         func() runtime.Object { return &corev1.ConfigMap{} },
			wantAllowed: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			body := review(t, tc.op, tc.old(), tc.new())
			if _, isCM := tc.new().(*corev1.ConfigMap); isCM {
				body = bytes.Replace(body, []byte(`"kind":"StatefulSet"`), []byte(`"kind":"ConfigMap"`), 1)
				body = bytes.Replace(body, []byte(`"group":"apps"`), []byte(`"group":""`), 1)
			}
			resp := post(t, newServer(t, tc.phase), body)
			if resp.Allowed != tc.wantAllowed {
				t.Fatalf("allowed = %v, want %v: %+v", resp.Allowed, tc.wantAllowed, resp.Result)
			}
			if tc.wantPatch != "" && !strings.Contains(string(resp.Patch), tc.wantPatch) {
				t.Errorf("patch %s does not contain %s", resp.Patch, tc.wantPatch)
			}
			if tc.wantMessage != "" && (resp.Result == nil || !strings.Contains(resp.Result.Message, tc.wantMessage)) {
				t.Errorf("denial %+v does not mention %q", resp.Result, tc.wantMessage)
			}
			if !tc.wantAllowed && resp.Result != nil && resp.Result.Code != http.StatusForbidden {
				t.Errorf("denial code = %d, want 403", resp.Result.Code)
			}
			if tc.wantWarning != "" && !strings.Contains(strings.Join(resp.Warnings, "\n"), tc.wantWarning) {
				t.Errorf("warnings %q do not mention %q", resp.Warnings, tc.wantWarning)
			}
			// The API server sends managedFields in every review; they change no answer.
			old, nw := tc.old(), tc.new()
			if o, ok := old.(*appsv1.StatefulSet); ok {
				fixture.WithManagedFields(o)
				fixture.WithManagedFields(nw.(*appsv1.StatefulSet))
				if bookkept := post(t, newServer(t, tc.phase), review(t, tc.op, old, nw)); !reflect.DeepEqual(bookkept, resp) {
					t.Errorf("with managedFields the answer is\n%+v\nwithout them\n%+v", bookkept, resp)
				}
			}
		})
	}
}

func TestUndecodableObjectIsAnErrorNotAnAllow(t *testing.T) {
	body := review(t, admissionv1.Update, fixture.Live(), fixture.Live())
	var ar admissionv1.AdmissionReview
	_ = json.Unmarshal(body, &ar)
	ar.Request.Object.Raw = []byte(`{"spec":{"replicas":"two"}}`)
	resp := post(t, newServer(t, "validate"), mustJSON(t, &ar))
	if resp.Allowed {
		t.Fatal("an undecodable StatefulSet was allowed")
	}
	if resp.Result == nil || !strings.Contains(resp.Result.Message, "decoding the StatefulSet") {
		t.Errorf("message %+v does not name the problem", resp.Result)
	}
}

// FuzzAdmissionReview feeds arbitrary bodies to both handlers: every answer must be a
// well-formed AdmissionReview, and a body the handler could not decide is never allowed
// with a patch.
func FuzzAdmissionReview(f *testing.F) {
	f.Add(review(f, admissionv1.Update, fixture.Live(), fixture.WithTag(fixture.Live(), "9.1.0.0-latest")))
	f.Add(review(f, admissionv1.Create, nil, fixture.Live()))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"StatefulSet"},"operation":"UPDATE","object":{"metadata":{"labels":{"app.kubernetes.io/name":"pingdirectory"}}}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	mutate, validate := newHandler(f, "mutate"), newHandler(f, "validate")
	f.Fuzz(func(t *testing.T, body []byte) {
		for phase, h := range map[string]*Handler{"mutate": mutate, "validate": validate} {
			rec := serveWithin(t, h, body)
			if !typedReview(body) {
				refusesUntyped(t, rec)
				continue
			}
			// The handler decodes the review itself; controller-runtime's admission.Webhook
			// around the same decisions must give the very same bytes.
			if want := serveWithin(t, &admission.Webhook{Handler: h}, body); !bytes.Equal(rec.Body.Bytes(), want.Body.Bytes()) || rec.Code != want.Code {
				t.Fatalf("%s: answer differs from admission.Webhook's\n got %d %s\nwant %d %s", phase, rec.Code, rec.Body, want.Code, want.Body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("answer is not an AdmissionReview with a response: %s", rec.Body.String())
			}
			checkAnswer(t, phase, body, &out)
		}
	})
}

func serveWithin(t *testing.T, srv http.Handler, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeHTTP(rec, r) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not answer")
	}
	return rec
}

func onDelete(sts *appsv1.StatefulSet) *appsv1.StatefulSet {
	sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	return sts
}

func TestRequestsTheAPIServerNeverSendsAreRefused(t *testing.T) {
	full := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: statefulSetKind, Resource: metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, Operation: admissionv1.Update,
	}}
	if err := fromAPIServer(full); err != nil {
		t.Fatalf("a complete request: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*admission.Request)
		want string
	}{
		"no uid":                   {func(r *admission.Request) { r.UID = "" }, "request.uid empty"},
		"no kind and no operation": {func(r *admission.Request) { r.Kind.Kind, r.Operation = "", "" }, "request.kind, request.operation empty"},
		"no resource":              {func(r *admission.Request) { r.Resource.Resource = "" }, "request.resource empty"},
	} {
		t.Run(name, func(t *testing.T) {
			req := full
			tc.edit(&req)
			if err := fromAPIServer(req); err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Errorf("got %v, want an error ending %q", err, tc.want)
			}
		})
	}
}

// TestDecisionsLeaveThePodsAsTheyWere: the pods a decision gets are the informer cache's
// own (CachedPods), so every decision, signed verdicts checked or not, must only read them.
func TestDecisionsLeaveThePodsAsTheyWere(t *testing.T) {
	key := rollout.VerdictKey("0123456789abcdef0123456789abcdef")
	live := openCanary()
	base := canaryPods(live, time.Hour, nil)
	signed := canaryPods(live, time.Hour, succeededFor(canaryRev, containerID(base[1])))
	v, err := rollout.ReadVerdict(&signed[1])
	if err != nil || v == nil {
		t.Fatalf("verdict of the signed pod: %v, %v", v, err)
	}
	key.Sign(&signed[1], v)
	signed[1].Annotations[rollout.ReplaceProfileAnnotation] = string(mustJSON(t, v))
	failed := canaryPods(live, time.Hour, &rollout.Verdict{Verdict: rollout.VerdictFailed, Revision: canaryRev, ContainerID: containerID(base[1]), Reason: "Error", ObservedAt: now})
	stale := canaryPods(live, time.Hour, succeededFor(stableRev, "containerd://earlier"))
	young := canaryPods(live, time.Second, succeededFor(canaryRev, containerID(base[1])))
	stranger := canaryPods(live, time.Hour, nil)
	stranger[0].OwnerReferences = nil
	stranger[1].Name = "someone-else-1"

	requests := map[string][2]*appsv1.StatefulSet{
		"promotion":                       {live, withPartition(openCanaryNoStatus(), 0)},
		"promotion by one ordinal":        {withPartition(openCanary(), 1), withPartition(openCanaryNoStatus(), 0)},
		"scale-up during the canary":      {live, func() *appsv1.StatefulSet { s := openCanaryNoStatus(); s.Spec.Replicas = new(int32(3)); return s }()},
		"config change during the canary": {live, withEnv(openCanaryNoStatus(), "X", "1")},
		"another tag during the canary":   {live, fixture.WithTag(openCanaryNoStatus(), "9.1.0.1-latest")},
		"rollback to the stable tag":      {live, fixture.WithTag(openCanaryNoStatus(), "9.0.0.1-latest")},
		"an update that changes nothing":  {live, openCanaryNoStatus()},
		"override of the gate":            {live, withAnnotation(withPartition(openCanaryNoStatus(), 0), rollout.OverrideReasonAnnotation, "CHG-1")},
	}
	pods := map[string][]corev1.Pod{"no verdict": base, "signed Succeeded": signed, "Failed": failed, "stale": stale, "not soaked": young, "not the set's": stranger}
	handlers := map[bool]map[string]*Handler{}
	for _, trusted := range []bool{false, true} {
		handlers[trusted] = map[string]*Handler{}
		for _, phase := range []string{"mutate", "validate"} {
			h := newHandler(t, phase)
			if trusted {
				h.Guard = newGuard(t, func(c *policy.Config) { c.Trust = key.Trust })
			}
			handlers[trusted][phase] = h
		}
	}
	h := handlers[true]["validate"]
	h.Pods = staticPods(signed)
	if resp := post(t, h, review(t, admissionv1.Update, live, withPartition(openCanaryNoStatus(), 0))); !resp.Allowed {
		t.Fatalf("the promotion on a signed verdict is refused, so the trusted path goes untested: %+v", resp.Result)
	}
	for trusted, byPhase := range handlers {
		for phase, h := range byPhase {
			for podsName, ps := range pods {
				for reqName, objs := range requests {
					before := make([]corev1.Pod, len(ps))
					for i := range ps {
						ps[i].DeepCopyInto(&before[i])
					}
					h.Pods = staticPods(ps)
					post(t, h, review(t, admissionv1.Update, objs[0], objs[1]))
					if !reflect.DeepEqual(before, ps) {
						t.Errorf("%s, pods %s, %s, trusted %v: the decision changed the pods it was given", reqName, podsName, phase, trusted)
					}
				}
			}
		}
	}
}
