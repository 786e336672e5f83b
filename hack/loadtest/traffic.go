package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
	"github.com/pdguard/pdguard/webhook"
)

const (
	newTag = "9.1.0.0-latest"
	// One change in bundledEvery is a bundled one, so denials are exercised without
	// dominating the figures.
	bundledEvery  = 10
	partitionPath = "/spec/updateStrategy/rollingUpdate/partition"
	// The API server's default webhook timeout.
	requestTimeout = 10 * time.Second
)

// Every request gets its own UID, which the answer must echo. The template carries a
// placeholder of the same length that is overwritten in a copy of the body, so the client
// spends no time encoding JSON inside the measured window.
const uidPlaceholder = "00000000-0000-0000-0000-000000000000"

type client struct {
	http  *http.Client
	base  string
	uids  atomic.Int64
	dials atomic.Int64
}

func newClient(srv *pdguardproc.Server, concurrency int) (*client, error) {
	return newClientFor(srv.URL, srv.CAPEM, concurrency)
}

// newClientFor talks to any webhook server at base whose certificate caPEM signs.
func newClientFor(base string, caPEM []byte, concurrency int) (*client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the server's CA bundle holds no certificate")
	}
	c := &client{base: base}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		// No Proxy: the server is on loopback and a proxy from the environment would be
		// measured too.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		// An empty map keeps the transport on HTTP/1.1, as the API server talks to webhooks.
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConnsPerHost: concurrency + burstConcurrency,
		IdleConnTimeout:     time.Minute,
	}
	c.http = &http.Client{Transport: transport, Timeout: requestTimeout}
	return c, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// request is one prepared AdmissionReview and the answer it must get.
type request struct {
	path  string // "/mutate" or "/validate"
	body  []byte
	uidAt int
	check func(*admissionv1.AdmissionResponse) error
}

// change is what one `helm upgrade` of the StatefulSet costs in admission: the mutating
// call, then the validating call on the patched object.
type change struct {
	bundled          bool
	mutate, validate request
}

// call sends r and returns the wall time of the HTTPS round trip, from sending the request
// until the whole answer is read, which is what the API server waits for.
func (c *client) call(ctx context.Context, r *request) (time.Duration, error) {
	body := slices.Clone(r.body)
	uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", c.uids.Add(1))
	copy(body[r.uidAt:], uid)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+r.path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	began := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	if err != nil {
		return took, err
	}
	if resp.StatusCode != http.StatusOK {
		return took, fmt.Errorf("%s: HTTP %s: %.200s", r.path, resp.Status, answer)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(answer, &review); err != nil {
		return took, fmt.Errorf("%s: answer is not an AdmissionReview: %w", r.path, err)
	}
	if review.Response == nil {
		return took, fmt.Errorf("%s: AdmissionReview without a response", r.path)
	}
	if string(review.Response.UID) != uid {
		return took, fmt.Errorf("%s: answer for UID %q, sent %q", r.path, review.Response.UID, uid)
	}
	if err := r.check(review.Response); err != nil {
		return took, fmt.Errorf("%s: %w", r.path, err)
	}
	return took, nil
}

// prepare builds the two kinds of change. The mutating answer depends on the server (the
// canary record names the time and the user), so each object to validate is the one the
// server itself patched, as the API server would send it.
func prepare(ctx context.Context, c *client) ([]*change, error) {
	live := fixture.Live()
	tagged := fixture.WithTag(fixture.Live(), newTag)
	bundled := fixture.WithTag(fixture.Live(), newTag)
	bundled.Spec.Template.Annotations["checksum/config"] = "changed"

	tagChange, err := prepareChange(ctx, c, live, tagged, false)
	if err != nil {
		return nil, fmt.Errorf("tag change: %w", err)
	}
	bundledChange, err := prepareChange(ctx, c, live, bundled, true)
	if err != nil {
		return nil, fmt.Errorf("bundled change: %w", err)
	}
	mix := make([]*change, bundledEvery)
	for i := range mix {
		mix[i] = tagChange
	}
	mix[bundledEvery-1] = bundledChange
	return mix, nil
}

func prepareChange(ctx context.Context, c *client, old, nw *appsv1.StatefulSet, bundled bool) (*change, error) {
	ch := &change{bundled: bundled}
	var err error
	ch.mutate, err = newRequest("/mutate", old, nw, checkCanaryPatch(old))
	if err != nil {
		return nil, err
	}
	// Keep the patch of one answer to build the object the validating call sees.
	var patch []jsonpatch.JsonPatchOperation
	check := ch.mutate.check
	ch.mutate.check = func(r *admissionv1.AdmissionResponse) error {
		if err := check(r); err != nil {
			return err
		}
		return json.Unmarshal(r.Patch, &patch)
	}
	if _, err := c.call(ctx, &ch.mutate); err != nil {
		return nil, err
	}
	ch.mutate.check = check
	patched, err := webhook.ApplyPatch(nw, patch)
	if err != nil {
		return nil, err
	}
	validateCheck := checkAllowed
	if bundled {
		validateCheck = checkDenied("bundled-config-and-version")
	}
	ch.validate, err = newRequest("/validate", old, patched, validateCheck)
	if err != nil {
		return nil, err
	}
	if _, err := c.call(ctx, &ch.validate); err != nil {
		return nil, err
	}
	return ch, nil
}

func newRequest(path string, old, nw *appsv1.StatefulSet, check func(*admissionv1.AdmissionResponse) error) (request, error) {
	oldRaw, err := json.Marshal(old)
	if err != nil {
		return request{}, err
	}
	newRaw, err := json.Marshal(nw)
	if err != nil {
		return request{}, err
	}
	body, err := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         uidPlaceholder,
			Kind:        metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
			Resource:    metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
			RequestKind: &metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
			Name:        nw.Name,
			Namespace:   nw.Namespace,
			Operation:   admissionv1.Update,
			UserInfo:    authenticationv1.UserInfo{Username: "helm-user", Groups: []string{"system:authenticated"}},
			Object:      runtime.RawExtension{Raw: newRaw},
			OldObject:   runtime.RawExtension{Raw: oldRaw},
			Options:     runtime.RawExtension{Raw: []byte(`{"apiVersion":"meta.k8s.io/v1","kind":"UpdateOptions","fieldManager":"helm"}`)},
		},
	})
	if err != nil {
		return request{}, err
	}
	at := bytes.Index(body, []byte(uidPlaceholder))
	if at < 0 || bytes.Count(body, []byte(uidPlaceholder)) != 1 {
		return request{}, errors.New("the UID placeholder is not unique in the request body")
	}
	return request{path: path, body: body, uidAt: at, check: check}, nil
}

func checkAllowed(r *admissionv1.AdmissionResponse) error {
	if !r.Allowed {
		return fmt.Errorf("denied, want allowed: %s", message(r))
	}
	return nil
}

func checkDenied(rule string) func(*admissionv1.AdmissionResponse) error {
	return func(r *admissionv1.AdmissionResponse) error {
		if r.Allowed {
			return errors.New("allowed, want denied")
		}
		if msg := message(r); !strings.Contains(msg, rule) {
			return fmt.Errorf("denied without naming %s: %s", rule, msg)
		}
		return nil
	}
}

// checkCanaryPatch wants the answer to pin the partition to replicas-1, so only the top
// ordinal takes the new version.
func checkCanaryPatch(old *appsv1.StatefulSet) func(*admissionv1.AdmissionResponse) error {
	want := float64(*old.Spec.Replicas - 1)
	return func(r *admissionv1.AdmissionResponse) error {
		if err := checkAllowed(r); err != nil {
			return err
		}
		if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
			return fmt.Errorf("no JSON patch in the answer (patch %q)", r.Patch)
		}
		var ops []jsonpatch.JsonPatchOperation
		if err := json.Unmarshal(r.Patch, &ops); err != nil {
			return fmt.Errorf("patch does not decode: %w", err)
		}
		for _, op := range ops {
			if got, ok := partitionIn(op); ok {
				if got != want {
					return fmt.Errorf("patch sets the partition to %v, want %v", got, want)
				}
				return nil
			}
		}
		return fmt.Errorf("patch does not set the partition: %s", r.Patch)
	}
}

// partitionIn finds the partition in an operation that sets it directly or sets one of the
// objects around it (the guard adds the whole updateStrategy when the object has none).
func partitionIn(op jsonpatch.JsonPatchOperation) (float64, bool) {
	if op.Operation != "add" && op.Operation != "replace" {
		return 0, false
	}
	v := op.Value
	switch op.Path {
	case partitionPath:
	case "/spec/updateStrategy":
		v = field(v, "rollingUpdate")
		fallthrough
	case "/spec/updateStrategy/rollingUpdate":
		v = field(v, "partition")
	default:
		return 0, false
	}
	n, ok := v.(float64)
	return n, ok
}

func field(v any, name string) any {
	m, _ := v.(map[string]any)
	return m[name]
}

func message(r *admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return "(no message)"
	}
	return r.Result.Message
}

// recorder collects the round trips of one phase. Only answered, correct requests have a
// latency; everything else counts as an error.
type recorder struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration
	errors    map[string]int
	firstErrs []string
	lags      []time.Duration
}

func newRecorder() *recorder {
	return &recorder{latencies: map[string][]time.Duration{}, errors: map[string]int{}}
}

// The rows of the report: both webhooks, and the pair as the API server pays for it,
// with the bundled (denied) pairs also on their own.
const (
	rowMutate   = "mutate"
	rowValidate = "validate"
	rowPair     = "pair"
	rowBundled  = "pair-denied"
)

var rows = []string{rowMutate, rowValidate, rowPair, rowBundled}

func (r *recorder) ok(row string, d time.Duration) {
	r.mu.Lock()
	r.latencies[row] = append(r.latencies[row], d)
	r.mu.Unlock()
}

// fail counts an error; err is nil when it was already reported on another row.
func (r *recorder) fail(row string, err error) {
	r.mu.Lock()
	r.errors[row]++
	if err != nil && len(r.firstErrs) < 5 {
		r.firstErrs = append(r.firstErrs, err.Error())
	}
	r.mu.Unlock()
}

func (r *recorder) lag(d time.Duration) {
	r.mu.Lock()
	r.lags = append(r.lags, d)
	r.mu.Unlock()
}

// run sends one change. Both calls are made even when the first fails, since the API
// server calls the validating webhook after a failed mutating one too (failurePolicy
// Ignore); the pair's latency is the sum of the two round trips, the time the webhooks add
// to the user's request.
func (ch *change) run(ctx context.Context, c *client, rec *recorder) {
	dm, errM := c.call(ctx, &ch.mutate)
	dv, errV := c.call(ctx, &ch.validate)
	if ctx.Err() != nil {
		return // interrupted: the phase is thrown away
	}
	pairRows := []string{rowPair}
	if ch.bundled {
		pairRows = append(pairRows, rowBundled)
	}
	if errM != nil {
		rec.fail(rowMutate, errM)
	} else {
		rec.ok(rowMutate, dm)
	}
	if errV != nil {
		rec.fail(rowValidate, errV)
	} else {
		rec.ok(rowValidate, dv)
	}
	for _, row := range pairRows {
		if errM != nil || errV != nil {
			rec.fail(row, nil)
		} else {
			rec.ok(row, dm+dv)
		}
	}
}

// openLoop starts changes on a fixed schedule, rate/2 per second since each is two
// requests, whatever the server's speed, as independent helm users would. At most
// concurrency run at once; a start the workers cannot take on time is recorded as lag
// rather than dropped, so a slow server shows up in the figures.
func openLoop(ctx context.Context, c *client, mix []*change, rate float64, d time.Duration, concurrency int) (*recorder, error) {
	rec := newRecorder()
	type job struct {
		due time.Time
		ch  *change
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for j := range jobs {
				rec.lag(time.Since(j.due))
				j.ch.run(ctx, c, rec)
			}
		})
	}
	interval := time.Duration(float64(2*time.Second) / rate)
	began := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
schedule:
	for i := 0; ; i++ {
		due := began.Add(time.Duration(i) * interval)
		if due.Sub(began) >= d {
			break
		}
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			break schedule
		case <-timer.C:
		}
		select {
		case <-ctx.Done():
			break schedule
		case jobs <- job{due: due, ch: mix[i%len(mix)]}:
		}
	}
	close(jobs)
	wg.Wait()
	return rec, ctx.Err()
}

// closedLoop sends changes back to back from concurrency workers until d has passed: the
// throughput ceiling of the server on this machine.
func closedLoop(ctx context.Context, c *client, mix []*change, concurrency int, d time.Duration) (*recorder, error) {
	rec := newRecorder()
	deadline := time.Now().Add(d)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				mix[int(next.Add(1)-1)%len(mix)].run(ctx, c, rec)
			}
		})
	}
	wg.Wait()
	return rec, ctx.Err()
}
