// Package metricsauth guards the metrics endpoint: each scrape's bearer token is checked
// with a TokenReview and its right to GET the path with a SubjectAccessReview, as
// controller-runtime's filters.WithAuthenticationAndAuthorization does (same cache times,
// same answers). That filter is built on k8s.io/apiserver, whose 47 packages (with cel-go,
// gRPC and OpenTelemetry) made 10 MB of pdguard's binary and 11 MiB of its resident
// memory, paid whether metrics are secured or not; the two reviews need only client-go.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Cache times are controller-runtime's: a scraper every 15 to 60 seconds costs the API
// server about one TokenReview a minute and one SubjectAccessReview every five, and a
// revoked right stops working within five minutes, a refused one is asked again after 30
// seconds.
const (
	tokenTTL      = time.Minute
	allowTTL      = 5 * time.Minute
	denyTTL       = 30 * time.Second
	reviewTimeout = 10 * time.Second
	// cacheSize bounds what a flood of made-up tokens can make the server hold.
	cacheSize = 1024
)

// Reviewer asks the API server who a token belongs to and what that user may do.
type Reviewer interface {
	// Authenticate returns the token's user, or ok false when the token is not valid.
	Authenticate(ctx context.Context, token string) (user authenticationv1.UserInfo, ok bool, err error)
	// Authorize says whether user may do verb on the non-resource path.
	Authorize(ctx context.Context, user authenticationv1.UserInfo, verb, path string) (allowed bool, reason string, err error)
}

// FilterProvider is the metrics server's FilterProvider: reviews through the API server
// pdguard talks to, as pdguard's ServiceAccount.
func FilterProvider(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metrics authentication client: %w", err)
	}
	authz, err := authorizationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metrics authorization client: %w", err)
	}
	return NewFilter(&apiReviewer{tokens: authn.TokenReviews(), access: authz.SubjectAccessReviews()}, time.Now), nil
}

// NewFilter returns a metrics server filter that lets through only requests whose bearer
// token the reviewer accepts for the request's verb and path.
func NewFilter(r Reviewer, now func() time.Time) metricsserver.Filter {
	g := &guard{reviewer: r, now: now, tokens: newCache[tokenResult](), access: newCache[bool]()}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			status, msg, err := g.check(req)
			if err != nil {
				log.Error(err, msg)
			}
			if status != http.StatusOK {
				http.Error(w, msg, status)
				return
			}
			next.ServeHTTP(w, req)
		}), nil
	}
}

type guard struct {
	reviewer Reviewer
	now      func() time.Time
	tokens   *cache[tokenResult]
	access   *cache[bool]
}

type tokenResult struct {
	user authenticationv1.UserInfo
	ok   bool
}

// check answers with the status to send: 200 lets the request through.
func (g *guard) check(req *http.Request) (status int, msg string, err error) {
	token, ok := BearerToken(req.Header.Get("Authorization"))
	if !ok {
		return http.StatusUnauthorized, "Unauthorized", nil
	}
	ctx, cancel := context.WithTimeout(req.Context(), reviewTimeout)
	defer cancel()
	now := g.now()
	tokenKey := string(sha256Of(token))
	tr, cached := g.tokens.get(tokenKey, now)
	if !cached {
		user, ok, err := g.reviewer.Authenticate(ctx, token)
		if err != nil {
			return http.StatusInternalServerError, "Authentication failed", err
		}
		tr = tokenResult{user: user, ok: ok}
		g.tokens.put(tokenKey, tr, now, tokenTTL)
	}
	if !tr.ok {
		return http.StatusUnauthorized, "Unauthorized", nil
	}
	verb, path := strings.ToLower(req.Method), req.URL.Path
	accessKey := accessKeyOf(tr.user, verb, path)
	allowed, cached := g.access.get(accessKey, now)
	if !cached {
		var err error
		allowed, _, err = g.reviewer.Authorize(ctx, tr.user, verb, path)
		if err != nil {
			return http.StatusInternalServerError, fmt.Sprintf("Authorization for user %s failed", tr.user.Username), err
		}
		ttl := denyTTL
		if allowed {
			ttl = allowTTL
		}
		g.access.put(accessKey, allowed, now, ttl)
	}
	if !allowed {
		return http.StatusForbidden, fmt.Sprintf("Authorization denied for user %s", tr.user.Username), nil
	}
	return http.StatusOK, "", nil
}

// BearerToken reads the token of an Authorization header, as the API server does: the
// scheme in any case, then the token, which must not be empty.
func BearerToken(header string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// accessKeyOf keys a decision by everything the SubjectAccessReview is asked with.
func accessKeyOf(u authenticationv1.UserInfo, verb, path string) string {
	var b strings.Builder
	for _, s := range []string{u.Username, u.UID, verb, path} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, g := range u.Groups {
		b.WriteString(g)
		b.WriteByte(1)
	}
	for k, vs := range u.Extra {
		b.WriteString(k)
		b.WriteByte(2)
		for _, v := range vs {
			b.WriteString(v)
			b.WriteByte(3)
		}
	}
	return string(sha256Of(b.String()))
}

// cache holds answers until they expire. When full it first drops what has expired, and
// if that frees nothing, everything: a full cache only costs reviews asked again.
type cache[V any] struct {
	mu      sync.Mutex
	entries map[string]entry[V]
}

type entry[V any] struct {
	value   V
	expires time.Time
}

func newCache[V any]() *cache[V] { return &cache[V]{entries: map[string]entry[V]{}} }

func (c *cache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (c *cache[V]) put(key string, v V, now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= cacheSize {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= cacheSize {
			clear(c.entries)
		}
	}
	c.entries[key] = entry[V]{value: v, expires: now.Add(ttl)}
}

// apiReviewer asks the API server.
type apiReviewer struct {
	tokens authenticationclient.TokenReviewInterface
	access authorizationclient.SubjectAccessReviewInterface
}

func (a *apiReviewer) Authenticate(ctx context.Context, token string) (authenticationv1.UserInfo, bool, error) {
	tr, err := a.tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, false, fmt.Errorf("TokenReview: %w", err)
	}
	if !tr.Status.Authenticated {
		return authenticationv1.UserInfo{}, false, nil
	}
	if tr.Status.User.Username == "" {
		return authenticationv1.UserInfo{}, false, errors.New("TokenReview: authenticated a token without a user name")
	}
	return tr.Status.User, true, nil
}

func (a *apiReviewer) Authorize(ctx context.Context, u authenticationv1.UserInfo, verb, path string) (bool, string, error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.access.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: verb, Path: path},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("SubjectAccessReview: %w", err)
	}
	return sar.Status.Allowed && !sar.Status.Denied, sar.Status.Reason, nil
}
