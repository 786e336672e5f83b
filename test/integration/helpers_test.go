//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

const (
	// waitLong bounds anything the controllers, KWOK or pdguard do in the background; on
	// two loaded cores a step takes a second or two, so reaching this means it never came.
	waitLong = 90 * time.Second
	pollStep = 100 * time.Millisecond
	testTime = 3 * time.Minute
)

// chartStatefulSet is the fixture StatefulSet as the chart creates it in ns: the live
// object without what the apiserver fills in.
func chartStatefulSet(ns string) *appsv1.StatefulSet {
	sts := fixture.Live()
	sts.Namespace = ns
	sts.UID, sts.ResourceVersion, sts.Generation = "", "", 0
	sts.CreationTimestamp = metav1.Time{}
	sts.ManagedFields = nil
	sts.Status = appsv1.StatefulSetStatus{}
	for i := range sts.Spec.VolumeClaimTemplates {
		sts.Spec.VolumeClaimTemplates[i].Status = corev1.PersistentVolumeClaimStatus{}
	}
	return sts
}

// bundle is the change pdguard must never let through: the new tag and an env var.
func bundle(sts *appsv1.StatefulSet) {
	fixture.WithTag(sts, newTag)
	c := productContainer(&sts.Spec.Template.Spec)
	c.Env = append(c.Env, corev1.EnvVar{Name: "MAX_HEAP_SIZE", Value: "4g"})
}

const envPath = "spec.template.spec.containers[pingdirectory].env"

func productContainer(spec *corev1.PodSpec) *corev1.Container {
	for i := range spec.Containers {
		if spec.Containers[i].Name == fixture.Container {
			return &spec.Containers[i]
		}
	}
	return &corev1.Container{}
}

func partitionOf(sts *appsv1.StatefulSet) int32 {
	if sts == nil {
		return -1
	}
	p, _ := rollout.Partition(sts)
	return p
}

func partitionPatch(p int32) string {
	return fmt.Sprintf(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":%d}}}}`, p)
}

func podName(ordinal int32) string { return fmt.Sprintf("%s-%d", fixture.Name, ordinal) }

// warningLog collects the warnings the apiserver returns with a response; admission
// webhooks' warnings reach the client this way.
type warningLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningLog) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, code int, agent string, text string) {
	w.HandleWarningHeader(code, agent, text)
}

func (w *warningLog) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

func clientWithWarnings(cfg *rest.Config, w *warningLog) (kubernetes.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = nil
	cfg.WarningHandlerWithContext = w
	return kubernetes.NewForConfig(cfg)
}

func adminConfig() *rest.Config { return env.cp.RESTConfig() }

// guarded is one test's guarded StatefulSet in a namespace of its own.
type guarded struct {
	t    *testing.T
	ctx  context.Context
	ns   string
	name string
}

// newGuarded creates the chart's StatefulSet, edited by edits, in a fresh namespace and
// waits for every pod to run Ready.
func newGuarded(t *testing.T, prefix string, edits ...func(*appsv1.StatefulSet)) *guarded {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTime)
	t.Cleanup(cancel)
	ns, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "it-" + prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := &guarded{t: t, ctx: ctx, ns: ns.Name, name: fixture.Name}
	t.Cleanup(func() {
		if t.Failed() {
			g.describe()
		}
	})
	// Pods are refused until the service account controller has made the namespace's
	// default account.
	g.eventually("the default service account", func() (bool, string) {
		_, err := env.admin.CoreV1().ServiceAccounts(g.ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	sts := chartStatefulSet(g.ns)
	for _, edit := range edits {
		edit(sts)
	}
	began := time.Now()
	if _, err := env.admin.AppsV1().StatefulSets(g.ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating StatefulSet: %v", err)
	}
	g.waitImages(slices.Repeat([]string{oldImage}, int(rollout.Replicas(sts)))...)
	t.Logf("namespace %s: every pod Running and Ready %s after create", g.ns, time.Since(began).Round(time.Millisecond))
	return g
}

// on is g for a subtest: helpers fail the test they are given.
func (g *guarded) on(t *testing.T) *guarded {
	c := *g
	c.t = t
	return &c
}

func (g *guarded) get() *appsv1.StatefulSet {
	g.t.Helper()
	sts, err := env.admin.AppsV1().StatefulSets(g.ns).Get(g.ctx, g.name, metav1.GetOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	return sts
}

// pods lists the StatefulSet's pods by ordinal.
func (g *guarded) pods() (map[int32]corev1.Pod, error) {
	list, err := env.admin.CoreV1().Pods(g.ns).List(g.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=pd-upgrade-example"})
	if err != nil {
		return nil, err
	}
	out := map[int32]corev1.Pod{}
	for _, p := range list.Items {
		if n, ok := rollout.PodOrdinal(g.name, &p); ok {
			out[n] = p
		}
	}
	return out, nil
}

func (g *guarded) pod(ordinal int32) corev1.Pod {
	g.t.Helper()
	p, err := env.admin.CoreV1().Pods(g.ns).Get(g.ctx, podName(ordinal), metav1.GetOptions{})
	if err != nil {
		g.t.Fatal(err)
	}
	return *p
}

// eventually polls check until it reports done and fails the test with the last state it
// reported when waitLong passes first. It returns how long it took.
func (g *guarded) eventually(what string, check func() (done bool, state string)) time.Duration {
	g.t.Helper()
	return eventually(g.t, g.ctx, what, check)
}

func eventually(t *testing.T, ctx context.Context, what string, check func() (done bool, state string)) time.Duration {
	t.Helper()
	began := time.Now()
	var last string
	err := wait.PollUntilContextTimeout(ctx, pollStep, waitLong, true, func(context.Context) (bool, error) {
		done, state := check()
		last = state
		return done, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last seen: %s", what, err, last)
	}
	return time.Since(began)
}

// waitImages waits until the StatefulSet controller has acted on the stored spec and pod
// i runs images[i], Ready, on the revision that goes with that image: the update revision
// for the spec's image, the current revision for any other.
func (g *guarded) waitImages(images ...string) (*appsv1.StatefulSet, map[int32]corev1.Pod, time.Duration) {
	g.t.Helper()
	var sts *appsv1.StatefulSet
	var pods map[int32]corev1.Pod
	took := g.eventually(fmt.Sprintf("pods running %q", images), func() (bool, string) {
		var err error
		if sts, err = env.admin.AppsV1().StatefulSets(g.ns).Get(g.ctx, g.name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		if pods, err = g.pods(); err != nil {
			return false, err.Error()
		}
		state := fmt.Sprintf("generation %d observed %d, current %s update %s; pods:%s", sts.Generation, sts.Status.ObservedGeneration,
			sts.Status.CurrentRevision, sts.Status.UpdateRevision, describePodMap(pods))
		if sts.Status.ObservedGeneration < sts.Generation || len(pods) != len(images) {
			return false, state
		}
		specImage, _ := rollout.ContainerImage(&sts.Spec.Template.Spec, fixture.Container)
		for i, want := range images {
			p, ok := pods[int32(i)]
			if !ok || p.DeletionTimestamp != nil || !runningAndReady(&p) {
				return false, state
			}
			image, _ := rollout.ContainerImage(&p.Spec, fixture.Container)
			onUpdate := p.Labels[rollout.RevisionLabel] == sts.Status.UpdateRevision
			if image != want || onUpdate != (image == specImage) {
				return false, state
			}
		}
		return true, state
	})
	return sts, pods, took
}

func describePodMap(pods map[int32]corev1.Pod) string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(pods)) {
		p := pods[n]
		image, _ := rollout.ContainerImage(&p.Spec, fixture.Container)
		fmt.Fprintf(&b, " [%s %s rev=%s ready=%v deleting=%v", p.Name, image, p.Labels[rollout.RevisionLabel], runningAndReady(&p), p.DeletionTimestamp != nil)
		if v := p.Annotations[rollout.ReplaceProfileAnnotation]; v != "" {
			fmt.Fprintf(&b, " verdict=%s", v)
		}
		b.WriteString("]")
	}
	return b.String()
}

// change reads the live StatefulSet, edits it and sends it back whole, as kubectl apply
// or helm upgrade would, as the user of cfg. A conflict with the StatefulSet
// controller's status writes is retried on a fresh read. It returns the stored object,
// the warnings the client was shown and the apiserver's error.
func (g *guarded) change(cfg *rest.Config, edit func(*appsv1.StatefulSet)) (*appsv1.StatefulSet, []string, error) {
	g.t.Helper()
	var stored *appsv1.StatefulSet
	var warnings []string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		w := &warningLog{}
		cs, err := clientWithWarnings(cfg, w)
		if err != nil {
			return err
		}
		live, err := cs.AppsV1().StatefulSets(g.ns).Get(g.ctx, g.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		edit(live)
		stored, err = cs.AppsV1().StatefulSets(g.ns).Update(g.ctx, live, metav1.UpdateOptions{})
		warnings = w.list()
		return err
	})
	return stored, warnings, err
}

// patch sends a JSON merge patch of the StatefulSet as the user of cfg.
func (g *guarded) patch(cfg *rest.Config, body string) (*appsv1.StatefulSet, []string, error) {
	return g.patchAs(cfg, types.MergePatchType, body)
}

func (g *guarded) patchAs(cfg *rest.Config, pt types.PatchType, body string) (*appsv1.StatefulSet, []string, error) {
	g.t.Helper()
	w := &warningLog{}
	cs, err := clientWithWarnings(cfg, w)
	if err != nil {
		g.t.Fatal(err)
	}
	stored, err := cs.AppsV1().StatefulSets(g.ns).Patch(g.ctx, g.name, pt, []byte(body), metav1.PatchOptions{})
	return stored, w.list(), err
}

// openCanary changes the tag as the chart would (partition 0 in the request) and waits
// for the canary pod, ordinal 1, to run the new image Ready.
func (g *guarded) openCanary() *appsv1.StatefulSet {
	g.t.Helper()
	stored, _, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) })
	if err != nil {
		g.t.Fatalf("changing the tag: %v", err)
	}
	if p := partitionOf(stored); p != 1 {
		g.t.Fatalf("stored partition after the tag change = %d, want 1", p)
	}
	sts, _, took := g.waitImages(oldImage, newImage)
	g.t.Logf("canary %s replaced and Ready %s after the tag change", podName(1), took.Round(time.Millisecond))
	return sts
}

// promote lowers the partition to 0 as soon as the gate lets it: admission reads the
// verdict from its pod cache, which may be a moment behind the apiserver, and the soak
// counts whole seconds of Ready.
func (g *guarded) promote() {
	g.t.Helper()
	attempts := 0
	var lastDenial string
	took := g.eventually("the promotion to be allowed", func() (bool, string) {
		attempts++
		_, _, err := g.patch(adminConfig(), partitionPatch(0))
		if err != nil {
			lastDenial = apiMessage(err)
			return false, lastDenial
		}
		return true, ""
	})
	g.t.Logf("promotion allowed after %d attempt(s) in %s (last denial: %q)", attempts, took.Round(time.Millisecond), lastDenial)
}

// mustDeny checks that the apiserver refused a write with 403 Forbidden and returns the
// message the client saw.
func mustDeny(t *testing.T, err error, what string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("%s was allowed, want it denied", what)
	}
	if !apierrors.IsForbidden(err) {
		t.Fatalf("%s: want 403 Forbidden from the validating webhook, got %v", what, err)
	}
	msg := apiMessage(err)
	if !strings.Contains(msg, `admission webhook "validate.`) {
		t.Fatalf("%s was refused, but not by pdguard's validating webhook: %s", what, msg)
	}
	return msg
}

func apiMessage(err error) string {
	if status, ok := err.(apierrors.APIStatus); ok {
		return status.Status().Message
	}
	return err.Error()
}

// missing returns the first of want that text does not contain, or "".
func missing(text string, want ...string) string {
	for _, w := range want {
		if !strings.Contains(text, w) {
			return w
		}
	}
	return ""
}

// anyMentions reports whether one of texts contains every one of want.
func anyMentions(texts []string, want ...string) bool {
	for _, text := range texts {
		if missing(text, want...) == "" {
			return true
		}
	}
	return false
}

func countMentions(texts []string, want string) int {
	n := 0
	for _, text := range texts {
		n += strings.Count(text, want)
	}
	return n
}

// serveLog makes KWOK serve a logscan test log as the current log of the pod.
func (g *guarded) serveLog(ordinal int32, file string) {
	g.t.Helper()
	raw, err := os.ReadFile(filepath.Join(logscanTestdata, file))
	if err != nil {
		g.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if err := env.cp.ServePodLogs(g.ctx, g.ns, podName(ordinal), lines, nil); err != nil {
		g.t.Fatal(err)
	}
}

// waitVerdict waits until the pod carries a verdict about its running container that ok
// accepts. A verdict written before the container started, or about an earlier one,
// proves nothing and is waited past.
func (g *guarded) waitVerdict(ordinal int32, what string, ok func(rollout.Verdict) bool) (rollout.Verdict, corev1.Pod, time.Duration) {
	g.t.Helper()
	var v rollout.Verdict
	var pod corev1.Pod
	took := g.eventually(fmt.Sprintf("a %s verdict on %s", what, podName(ordinal)), func() (bool, string) {
		p, err := env.admin.CoreV1().Pods(g.ns).Get(g.ctx, podName(ordinal), metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = *p
		got, err := rollout.ReadVerdict(p)
		if err != nil || got == nil {
			return false, fmt.Sprintf("annotation %q (%v)", p.Annotations[rollout.ReplaceProfileAnnotation], err)
		}
		v = *got
		cs, _ := rollout.Container(p, fixture.Container)
		fresh := cs.ID != "" && v.ContainerID == cs.ID && v.Revision == p.Labels[rollout.RevisionLabel]
		return fresh && ok(v), fmt.Sprintf("%s (running container %s, revision %s)", p.Annotations[rollout.ReplaceProfileAnnotation], cs.ID, p.Labels[rollout.RevisionLabel])
	})
	return v, pod, took
}

// waitEvent waits for an events.k8s.io Event about the StatefulSet with the reason and
// returns the first that ok accepts.
func (g *guarded) waitEvent(reason string, ok func(eventsv1.Event) bool) eventsv1.Event {
	g.t.Helper()
	var found eventsv1.Event
	g.eventually("a "+reason+" Event", func() (bool, string) {
		events, err := g.events()
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range events {
			if e.Reason != reason {
				continue
			}
			seen = append(seen, e.Type+": "+e.Note)
			if ok(e) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d %s events: %q", len(seen), reason, seen)
	})
	return found
}

func (g *guarded) events() ([]eventsv1.Event, error) {
	list, err := env.admin.EventsV1().Events(g.ns).List(g.ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "StatefulSet" && e.Regarding.Name == g.name {
			out = append(out, e)
		}
	}
	return out, nil
}

// decision is one "admission decision" line of a pdguard JSON log.
type decision struct {
	Msg       string   `json:"msg"`
	Webhook   string   `json:"webhook"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Operation string   `json:"operation"`
	User      string   `json:"user"`
	Decision  string   `json:"decision"`
	Mode      string   `json:"mode"`
	Rules     []string `json:"rules"`
	Reason    string   `json:"reason"`
	Details   []string `json:"details"`
	Warnings  []string `json:"warnings"`
	Latency   string   `json:"latency"`
	DryRun    bool     `json:"dryRun"`
	// Proof is what an admitted promotion rested on.
	Proof []rollout.Proof `json:"proof"`
}

func decisions(srv *pdguardproc.Server, ns string) []decision {
	var out []decision
	sc := bufio.NewScanner(strings.NewReader(srv.Logs()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var d decision
		if json.Unmarshal(sc.Bytes(), &d) == nil && d.Msg == "admission decision" && d.Namespace == ns {
			out = append(out, d)
		}
	}
	return out
}

// waitDecision waits for a log line of srv about this namespace that ok accepts. pdguard
// logs before it answers, so the line is there by the time the client has its answer;
// the wait only covers the file write.
func (g *guarded) waitDecision(srv *pdguardproc.Server, what string, ok func(decision) bool) decision {
	g.t.Helper()
	var found decision
	g.eventually("a log line for "+what, func() (bool, string) {
		all := decisions(srv, g.ns)
		for _, d := range all {
			if ok(d) {
				found = d
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d decision lines for %s: %+v", len(all), g.ns, all)
	})
	return found
}

// describe logs what a failed test needs to be understood: the StatefulSet, its pods,
// its Events and pdguard's decisions about the namespace.
func (g *guarded) describe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.ctx = ctx
	if sts, err := env.admin.AppsV1().StatefulSets(g.ns).Get(ctx, g.name, metav1.GetOptions{}); err == nil {
		g.t.Logf("statefulset %s/%s: generation %d, partition %d, status %+v, annotations %q", g.ns, g.name, sts.Generation, partitionOf(sts), sts.Status, sts.Annotations)
	}
	if pods, err := g.pods(); err == nil {
		g.t.Logf("pods:%s", describePodMap(pods))
	}
	if events, err := g.events(); err == nil {
		for _, e := range events {
			g.t.Logf("event %s %s: %s", e.Type, e.Reason, e.Note)
		}
	}
	for _, srv := range []*pdguardproc.Server{env.guard, env.dryrun} {
		for _, d := range decisions(srv, g.ns) {
			g.t.Logf("pdguard (%s) decision: %+v", filepath.Base(srv.LogPath), d)
		}
	}
	var other []string
	for _, line := range strings.Split(env.guard.Logs(), "\n") {
		if strings.Contains(line, g.ns) && !strings.Contains(line, `"admission decision"`) {
			other = append(other, line)
		}
	}
	if len(other) > 0 {
		g.t.Logf("other pdguard log lines about %s:\n%s", g.ns, strings.Join(other, "\n"))
	}
}

// grantStatefulSetEdit lets user read and change StatefulSets in the namespace, nothing
// more, and waits until the apiserver's authorizer knows.
func (g *guarded) grantStatefulSetEdit(user string) {
	g.grant(user, "statefulset-editor", rbacv1.PolicyRule{
		APIGroups: []string{"apps"}, Resources: []string{"statefulsets"},
		Verbs: []string{"get", "list", "watch", "update", "patch"},
	})
}

// grant binds user to a Role of one rule in the namespace and waits until the
// apiserver's authorizer allows the rule's last verb on its first resource.
func (g *guarded) grant(user, role string, rule rbacv1.PolicyRule) {
	g.t.Helper()
	r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: role}, Rules: []rbacv1.PolicyRule{rule}}
	if _, err := env.admin.RbacV1().Roles(g.ns).Create(g.ctx, r, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role + "-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := env.admin.RbacV1().RoleBindings(g.ns).Create(g.ctx, binding, metav1.CreateOptions{}); err != nil {
		g.t.Fatal(err)
	}
	verb, resource := rule.Verbs[len(rule.Verbs)-1], rule.Resources[0]
	g.eventually("RBAC to let "+user+" "+verb+" "+resource, func() (bool, string) {
		review, err := env.admin.AuthorizationV1().SubjectAccessReviews().Create(g.ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: g.ns, Verb: verb, Group: rule.APIGroups[0], Resource: resource,
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, err.Error()
		}
		return review.Status.Allowed, review.Status.Reason
	})
}

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseMetrics(text string) []metricSample {
	var out []metricSample
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		labels := map[string]string{}
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			name, rest = line[:i], strings.TrimSpace(line[j+1:])
			for _, m := range labelPair.FindAllStringSubmatch(line[i+1:j], -1) {
				labels[m[1]] = m[2]
			}
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			name, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out = append(out, metricSample{name: name, labels: labels, value: v})
	}
	return out
}

// sumSamples adds up the samples of a metric whose labels include want.
func sumSamples(samples []metricSample, name string, want map[string]string) float64 {
	total := 0.0
	for _, s := range samples {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			total += s.value
		}
	}
	return total
}
