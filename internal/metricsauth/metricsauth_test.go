package metricsauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
)

// reviewer knows tokens and the users allowed to GET /metrics, and counts what it is asked.
type reviewer struct {
	users   map[string]authenticationv1.UserInfo
	allowed map[string]bool
	fail    error
	authn   int
	authz   int
}

func (r *reviewer) Authenticate(_ context.Context, token string) (authenticationv1.UserInfo, bool, error) {
	r.authn++
	if r.fail != nil {
		return authenticationv1.UserInfo{}, false, r.fail
	}
	u, ok := r.users[token]
	return u, ok, nil
}

func (r *reviewer) Authorize(_ context.Context, u authenticationv1.UserInfo, verb, path string) (bool, string, error) {
	r.authz++
	return r.allowed[u.Username] && verb == "get" && path == "/metrics", "", nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func serve(t *testing.T, r Reviewer, c *clock) func(method, path, authorization string) (int, string) {
	t.Helper()
	h, err := NewFilter(r, c.now)(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "pdguard_admission_decisions_total 1")
	}))
	if err != nil {
		t.Fatal(err)
	}
	return func(method, path, authorization string) (int, string) {
		req := httptest.NewRequest(method, path, nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
}

func newReviewer() *reviewer {
	return &reviewer{
		users: map[string]authenticationv1.UserInfo{
			"scraper-token":  {Username: "system:serviceaccount:monitoring:prometheus", Groups: []string{"system:serviceaccounts"}},
			"stranger-token": {Username: "system:serviceaccount:default:default"},
		},
		allowed: map[string]bool{"system:serviceaccount:monitoring:prometheus": true},
	}
}

func TestFilterAnswers(t *testing.T) {
	for _, c := range []struct {
		name, method, path, authorization string
		status                            int
		body                              string
	}{
		{"allowed scraper", "GET", "/metrics", "Bearer scraper-token", 200, "pdguard_admission_decisions_total 1"},
		{"scheme in any case", "GET", "/metrics", "bearer scraper-token", 200, "pdguard_admission_decisions_total 1"},
		{"no token", "GET", "/metrics", "", 401, "Unauthorized"},
		{"basic credentials", "GET", "/metrics", "Basic c2NyYXBlcjp4", 401, "Unauthorized"},
		{"empty token", "GET", "/metrics", "Bearer ", 401, "Unauthorized"},
		{"unknown token", "GET", "/metrics", "Bearer forged", 401, "Unauthorized"},
		{"user without the right", "GET", "/metrics", "Bearer stranger-token", 403, "Authorization denied for user system:serviceaccount:default:default"},
		{"other verb", "POST", "/metrics", "Bearer scraper-token", 403, "Authorization denied for user system:serviceaccount:monitoring:prometheus"},
		{"other path", "GET", "/debug", "Bearer scraper-token", 403, "Authorization denied for user system:serviceaccount:monitoring:prometheus"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := serve(t, newReviewer(), &clock{t: time.Unix(1e9, 0)})(c.method, c.path, c.authorization)
			if status != c.status || body != c.body {
				t.Errorf("got %d %q, want %d %q", status, body, c.status, c.body)
			}
		})
	}
}

// Scrapes come every few seconds: each must not cost the API server two reviews, but a
// revoked token or right must stop working once its answer expires.
func TestFilterCachesAnswersUntilTheyExpire(t *testing.T) {
	r, c := newReviewer(), &clock{t: time.Unix(1e9, 0)}
	get := serve(t, r, c)
	for range 5 {
		if status, _ := get("GET", "/metrics", "Bearer scraper-token"); status != 200 {
			t.Fatalf("status %d, want 200", status)
		}
		c.t = c.t.Add(10 * time.Second)
	}
	if r.authn != 1 || r.authz != 1 {
		t.Fatalf("5 scrapes in 50s cost %d TokenReviews and %d SubjectAccessReviews, want 1 and 1", r.authn, r.authz)
	}
	c.t = c.t.Add(tokenTTL)
	delete(r.users, "scraper-token")
	if status, _ := get("GET", "/metrics", "Bearer scraper-token"); status != 401 {
		t.Errorf("a token the API server no longer accepts, asked after %s: status %d, want 401", tokenTTL, status)
	}

	r, c = newReviewer(), &clock{t: time.Unix(1e9, 0)}
	get = serve(t, r, c)
	get("GET", "/metrics", "Bearer scraper-token")
	r.allowed = map[string]bool{}
	c.t = c.t.Add(allowTTL - time.Second)
	if status, _ := get("GET", "/metrics", "Bearer scraper-token"); status != 200 {
		t.Errorf("a right within its %s: status %d, want 200 (cached)", allowTTL, status)
	}
	c.t = c.t.Add(time.Second)
	if status, _ := get("GET", "/metrics", "Bearer scraper-token"); status != 403 {
		t.Errorf("a revoked right after %s: status %d, want 403", allowTTL, status)
	}
	r.allowed = map[string]bool{"system:serviceaccount:monitoring:prometheus": true}
	c.t = c.t.Add(denyTTL)
	if status, _ := get("GET", "/metrics", "Bearer scraper-token"); status != 200 {
		t.Errorf("a right granted again after a refusal's %s: status %d, want 200", denyTTL, status)
	}
}

// An API server that does not answer is a server error, not a refusal to cache.
func TestFilterReviewErrorsAreNotCached(t *testing.T) {
	r, c := newReviewer(), &clock{t: time.Unix(1e9, 0)}
	r.fail = errors.New("connection refused")
	get := serve(t, r, c)
	if status, body := get("GET", "/metrics", "Bearer scraper-token"); status != 500 || body != "Authentication failed" {
		t.Errorf("got %d %q, want 500 Authentication failed", status, body)
	}
	r.fail = nil
	if status, _ := get("GET", "/metrics", "Bearer scraper-token"); status != 200 {
		t.Errorf("after the API server is back: status %d, want 200", status)
	}
}

// A flood of made-up tokens must not grow the server's memory without bound.
func TestFilterCacheIsBounded(t *testing.T) {
	r, c := newReviewer(), &clock{t: time.Unix(1e9, 0)}
	get := serve(t, r, c)
	for i := range 3 * cacheSize {
		get("GET", "/metrics", fmt.Sprintf("Bearer made-up-%d", i))
	}
	if r.authn != 3*cacheSize {
		t.Fatalf("%d TokenReviews for %d distinct tokens", r.authn, 3*cacheSize)
	}
	if status, _ := get("GET", "/metrics", "Bearer scraper-token"); status != 200 {
		t.Errorf("after the flood: status %d, want 200", status)
	}
}

func TestCacheDropsExpiredEntriesFirst(t *testing.T) {
	c := newCache[bool]()
	now := time.Unix(1e9, 0)
	c.put("kept", true, now, time.Hour)
	for i := range cacheSize - 1 {
		c.put(fmt.Sprint(i), true, now, time.Second)
	}
	c.put("new", true, now.Add(time.Minute), time.Second)
	if len(c.entries) != 2 {
		t.Fatalf("%d entries after the expired ones were dropped, want 2", len(c.entries))
	}
	if _, ok := c.get("kept", now.Add(time.Minute)); !ok {
		t.Error("an entry that had not expired was dropped")
	}
	for i := range 2 * cacheSize {
		c.put(fmt.Sprint("live", i), true, now, time.Hour)
		if len(c.entries) > cacheSize {
			t.Fatalf("%d entries, bound is %d", len(c.entries), cacheSize)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":    "abc",
		"BEARER abc":    "abc",
		" Bearer  abc ": "abc",
		"Bearer":        "",
		"Bearer a b":    "",
		"Token abc":     "",
		"":              "",
	} {
		got, ok := BearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}
