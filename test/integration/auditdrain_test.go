//go:build integration

package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// A rolling restart of pdguard loses no record: every denial answered before, during
// and after SIGTERM is in the Report once the new process runs. The reviews go straight
// to a second server, so the shared one keeps serving the other tests.
func TestAuditDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "audit-drain")
	srv, hc := g.reviewServer("--audit-drain-timeout=20s")
	live, changed := g.bundledChange()
	// Each review is against another generation of the live object, so each is a record
	// of its own, as successive upgrades of a StatefulSet whose spec moved on are.
	send := func(i int) bool {
		out, err := sendReview(hc, srv, g.bundledReview(live, changed, fmt.Sprintf("drain-%d", i), live.Generation+int64(i)))
		if err != nil {
			return false
		}
		switch {
		case out.Allowed:
			t.Errorf("review %d: the bundled change was allowed", i)
		case out.Result == nil || out.Result.Code != http.StatusForbidden:
			// An error answer is what a cancelled evaluation gives: the fail-closed
			// webhook would refuse the change for pdguard's restart, not for the rule.
			t.Errorf("review %d: answered with an error instead of the rule's denial: %+v", i, out.Result)
			return false
		}
		return true
	}

	var answered atomic.Int64
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1))
				if i > 90 {
					return
				}
				if send(i) {
					answered.Add(1)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	g.eventually("some reviews answered before the restart", func() (bool, string) {
		return answered.Load() >= 10, fmt.Sprint(answered.Load())
	})
	beforeSignal := answered.Load()
	if err := srv.Restart(g.ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	total := answered.Load()
	if total > 100 {
		t.Fatalf("%d reviews answered; the Report keeps 100 results, so this test cannot tell a loss", total)
	}
	t.Logf("%d reviews answered before SIGTERM, %d in all", beforeSignal, total)
	g.waitResults(fmt.Sprintf("all %d answered denials", total), func(rs []reportsv1alpha1.ReportResult) bool {
		return len(matching(rs, "fail", "bundled-config-and-version", "")) >= int(total)
	})
	if !bytes.Contains([]byte(srv.Logs()), []byte("audit queue drained")) {
		t.Error("the stopped server did not log its drain")
	}
}

// reviewServer starts a pdguard of the test's own, with the extra flags, that the API
// server does not call: the test sends it reviews straight to its TLS endpoint with the
// client returned, and the shared pdguard keeps serving the other tests.
func (g *guarded) reviewServer(args ...string) (*pdguardproc.Server, *http.Client) {
	g.t.Helper()
	srv, err := pdguardproc.Start(g.ctx, env.cp, pdguardproc.Options{
		Binary: env.binary, SkipRegistration: true,
		Args: append([]string{"--log-format=json", "--disable-evidence-controller"}, args...),
	})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(srv.Stop)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	return srv, &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// bundledChange is the live StatefulSet and the same with a bundled change.
func (g *guarded) bundledChange() (live, changed *appsv1.StatefulSet) {
	live = g.get()
	changed = live.DeepCopy()
	bundle(changed)
	return live, changed
}

// bundledReview is the validating review of changed over live, against the resourceVersion
// id (a record of its own per id), from the admin user.
// bundledReview is the bundled change's review against the live object as of generation.
func (g *guarded) bundledReview(live, changed *appsv1.StatefulSet, id string, generation int64) admissionv1.AdmissionReview {
	old := live.DeepCopy()
	old.ResourceVersion = id
	old.Generation = generation
	return admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID(id), Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
			Resource: metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
			Name:     g.name, Namespace: g.ns, Operation: admissionv1.Update,
			UserInfo:  authenticationv1.UserInfo{Username: adminUser},
			Object:    runtime.RawExtension{Raw: mustMarshal(g.t, changed)},
			OldObject: runtime.RawExtension{Raw: mustMarshal(g.t, old)},
		},
	}
}

// sendReview sends a review to the server's validating webhook and returns its answer.
func sendReview(hc *http.Client, srv *pdguardproc.Server, review admissionv1.AdmissionReview) (*admissionv1.AdmissionResponse, error) {
	body, err := json.Marshal(review)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Post(srv.URL+"/validate", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Response == nil {
		return nil, fmt.Errorf("a review without a response")
	}
	if out.Response.UID != review.Request.UID {
		return nil, fmt.Errorf("the response is for request %s, not %s", out.Response.UID, review.Request.UID)
	}
	return out.Response, nil
}
