//go:build e2e

// Package e2e runs pdguard the way a cluster does, against a real kube-apiserver with
// the StatefulSet controller and KWOK for kubelets, and drives it with the helm 3 and
// helm 4 binaries a person would use. One control plane and one pdguard serve the whole
// package; every flow has its own release and namespace, per helm version.
package e2e

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

// soak is pdguard's --soak here: how long a canary must have been Ready before its
// verdict may promote. 30s in production; 2s keeps the suite quick.
const soak = 2 * time.Second

var env *scenario.Env

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// Not a temporary directory removed by Stop: the component and pdguard logs must
	// outlive a failed run to be read.
	workDir, err := os.MkdirTemp("", "pdguard-e2e-")
	if err != nil {
		log.Print(err)
		return 1
	}
	// Generous: on a cold build cache compiling pdguard alone takes minutes on two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	env, err = scenario.Start(ctx, scenario.Options{
		WorkDir:     workDir,
		PdguardArgs: []string{"--soak=" + soak.String(), "--evidence-recheck=1s", "--log-format=console"},
		Logf:        log.Printf,
	})
	if err != nil {
		log.Printf("starting the control plane and pdguard: %v (work dir %s)", err, workDir)
		return 1
	}
	log.Printf("control plane and pdguard up in %s; pdguard log %s", time.Since(began).Round(time.Millisecond), env.Guard.LogPath)

	code := m.Run()
	if lines := env.Guard.Forbidden(); len(lines) > 0 {
		log.Printf("the API server refused pdguard (as %s) %d calls; the chart's RBAC must cover them:\n%s", env.Guard.Identity.User, len(lines), strings.Join(lines, "\n"))
		code = max(code, 1)
	}

	stopped := time.Now()
	if err := env.Stop(); err != nil {
		log.Printf("stopping: %v", err)
		code = max(code, 1)
	}
	log.Printf("control plane and pdguard stopped in %s", time.Since(stopped).Round(time.Millisecond))
	if code != 0 {
		log.Printf("logs kept in %s (pdguard: %s)", env.CP.LogDir(), env.Guard.LogPath)
		return code
	}
	os.RemoveAll(workDir)
	return code
}

// eachHelm runs fn once with helm 4 and once with helm 3, in parallel: the releases and
// namespaces are separate, so only pdguard and the control plane are shared.
func eachHelm(t *testing.T, fn func(t *testing.T, h scenario.Helm)) {
	t.Helper()
	for _, h := range env.Helms() {
		t.Run(h.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, h)
		})
	}
}

// flow is one release driven through a scenario by one test.
type flow struct {
	t   *testing.T
	ctx context.Context
	rel *scenario.Release
}

// newFlow names the release after the scenario and the helm major version, each in a
// namespace of its own.
func newFlow(t *testing.T, h scenario.Helm, name string) *flow {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	release := fmt.Sprintf("%s%d", name, h.Major)
	rel := env.NewRelease(h, release, "e2e-"+release)
	rel.Logf = t.Logf
	return &flow{t: t, ctx: ctx, rel: rel}
}

func (f *flow) logResult(res scenario.Result) {
	f.t.Helper()
	f.t.Logf("$ %s\n-> exit %d in %s", res.CommandLine(), res.ExitCode, res.Took.Round(time.Millisecond))
	for _, w := range res.Warnings() {
		f.t.Logf("   warning: %.240s", w)
	}
	if d := res.Denial(); d != "" {
		f.t.Logf("   denied: %.400s", d)
	} else if !res.OK() {
		f.t.Logf("   error: %s", res.Output())
	}
}

// upgrade runs `helm upgrade --install` with the values and logs what came back.
func (f *flow) upgrade(set ...string) scenario.Result {
	f.t.Helper()
	res := f.rel.Upgrade(f.ctx, set...)
	f.logResult(res)
	return res
}

// mustUpgrade is an upgrade that pdguard and the apiserver must accept.
func (f *flow) mustUpgrade(set ...string) scenario.Result {
	f.t.Helper()
	res := f.upgrade(set...)
	if !res.OK() {
		f.t.Fatalf("helm upgrade %v: want success, got exit %d:\n%s", set, res.ExitCode, res.Output())
	}
	return res
}

// mustDeny is an upgrade that pdguard's validating webhook must refuse; it returns
// pdguard's message.
func (f *flow) mustDeny(set ...string) string {
	f.t.Helper()
	return f.denied(f.upgrade(set...))
}

func (f *flow) denied(res scenario.Result) string {
	f.t.Helper()
	if res.OK() {
		f.t.Fatalf("%s: want a denial by pdguard, but it succeeded:\n%s", res.CommandLine(), res.Output())
	}
	d := res.Denial()
	if d == "" {
		f.t.Fatalf("%s: want a denial by pdguard, got exit %d without one:\n%s", res.CommandLine(), res.ExitCode, res.Output())
	}
	if !strings.HasPrefix(d, "pdguard") {
		f.t.Errorf("denial does not start with pdguard's prefix: %.200s", d)
	}
	return d
}

func (f *flow) kubectl(args ...string) scenario.Result {
	f.t.Helper()
	res := f.rel.Kubectl(f.ctx, args...)
	f.logResult(res)
	return res
}

func (f *flow) kubectlAs(kubeconfig string, args ...string) scenario.Result {
	f.t.Helper()
	res := f.rel.KubectlAs(f.ctx, kubeconfig, args...)
	f.logResult(res)
	return res
}

// install puts 2 replicas at the old tag and waits for them.
func (f *flow) install() []scenario.Pod {
	f.t.Helper()
	f.mustUpgrade("image.tag=" + scenario.OldTag)
	return f.waitTags(scenario.OldTag, scenario.OldTag)
}

func (f *flow) waitTags(tags ...string) []scenario.Pod {
	f.t.Helper()
	pods, err := f.rel.WaitTags(f.ctx, tags...)
	if err != nil {
		f.t.Fatal(err)
	}
	return pods
}

func (f *flow) waitComplete() *appsv1.StatefulSet {
	f.t.Helper()
	sts, err := f.rel.WaitComplete(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return sts
}

func (f *flow) pods() []scenario.Pod {
	f.t.Helper()
	pods, err := f.rel.Pods(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return pods
}

func (f *flow) sts() *appsv1.StatefulSet {
	f.t.Helper()
	sts, err := f.rel.Get(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return sts
}

func (f *flow) serve(ordinal int, fixture string) {
	f.t.Helper()
	lines, err := env.Fixture(fixture)
	if err != nil {
		f.t.Fatal(err)
	}
	f.serveLines(ordinal, lines)
}

func (f *flow) serveLines(ordinal int, lines []string) {
	f.t.Helper()
	if err := f.rel.ServeLog(f.ctx, ordinal, lines); err != nil {
		f.t.Fatal(err)
	}
}

func (f *flow) waitVerdict(ordinal int, verdict string) scenario.Pod {
	f.t.Helper()
	pod, err := f.rel.WaitVerdict(f.ctx, ordinal, "verdict "+verdict, scenario.CurrentVerdict(verdict), true)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Logf("%s: %s %s -> %s: %s", pod.Name, pod.Verdict.Verdict, pod.Verdict.From, pod.Verdict.To, pod.Verdict.Reason)
	return pod
}

func (f *flow) waitSoaked(ordinal int) {
	f.t.Helper()
	if err := f.rel.WaitSoaked(f.ctx, ordinal, soak); err != nil {
		f.t.Fatal(err)
	}
}

func (f *flow) waitEvent(reason string, contains ...string) scenario.Event {
	f.t.Helper()
	e, err := f.rel.WaitEvent(f.ctx, reason, contains...)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// canaryUp opens a canary the way a person does it: serve the canary's log (KWOK has
// no PingDirectory to write one), change only the tag, and wait for pdguard's
// partition to have let exactly the highest ordinal through.
func (f *flow) canaryUp(installed []scenario.Pod, canaryLog []string) []scenario.Pod {
	f.t.Helper()
	if canaryLog != nil {
		f.serveLines(1, canaryLog)
	}
	f.mustUpgrade("image.tag=" + scenario.NewTag)
	pods := f.waitTags(scenario.OldTag, scenario.NewTag)
	f.sameUID(installed[0], pods[0])
	return pods
}

// sameUID fails when a pod was replaced.
func (f *flow) sameUID(before, after scenario.Pod) {
	f.t.Helper()
	if before.UID != after.UID {
		f.t.Errorf("pod %s was replaced (uid %s -> %s), want it left alone", before.Name, before.UID, after.UID)
	}
}

// nothingRolled checks the state after a refused change: the StatefulSet was not
// written (same generation) and every pod is the one from before. A refused write
// cannot roll anything later, so this needs no waiting.
func (f *flow) nothingRolled(generation int64, before []scenario.Pod) {
	f.t.Helper()
	if g := f.sts().Generation; g != generation {
		f.t.Errorf("StatefulSet generation %d -> %d: the refused change was written", generation, g)
	}
	after := f.pods()
	if len(after) != len(before) {
		f.t.Fatalf("pods changed after a refused change: before %s\nafter %s", scenario.DescribePods(before), scenario.DescribePods(after))
	}
	for i := range before {
		if before[i].UID != after[i].UID || before[i].Image != after[i].Image {
			f.t.Errorf("pod %s changed after a refused change: before %s\nafter %s", before[i].Name,
				scenario.DescribePods(before[i:i+1]), scenario.DescribePods(after[i:i+1]))
		}
	}
}

func partitionOf(sts *appsv1.StatefulSet) int32 {
	p, _ := rollout.Partition(sts)
	return p
}

func mustContain(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, text)
		}
	}
}

func anyContains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func lastRevision(t *testing.T, f *flow) scenario.Revision {
	t.Helper()
	hist, err := f.rel.History(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) == 0 {
		t.Fatal("helm history is empty")
	}
	return hist[len(hist)-1]
}

// editorKubeconfig is a kubeconfig for a user who may read and patch StatefulSets in
// the release's namespace but is not in system:masters, the group pdguard's overrides
// need. It returns once the apiserver's authorizer has caught up with the binding.
func (f *flow) editorKubeconfig(user string) string {
	f.t.Helper()
	ns := f.rel.Namespace
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-statefulsets", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"apps"}, Resources: []string{"statefulsets"},
			Verbs: []string{"get", "list", "watch", "patch", "update"},
		}},
	}
	if _, err := env.Client.RbacV1().Roles(ns).Create(f.ctx, role, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-statefulsets", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	if _, err := env.Client.RbacV1().RoleBindings(ns).Create(f.ctx, binding, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	groups := []string{"pdguard-e2e:developers"}
	cfg, err := env.CP.ConfigFor(user, groups...)
	if err != nil {
		f.t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "patch", Group: "apps", Resource: "statefulsets"},
	}}
	began := time.Now()
	err = wait.PollUntilContextTimeout(f.ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		res, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		return err == nil && res.Status.Allowed, nil
	})
	if err != nil {
		f.t.Fatalf("user %s never allowed to patch statefulsets in %s: %v", user, ns, err)
	}
	f.t.Logf("RBAC for %s in force after %s", user, time.Since(began).Round(time.Millisecond))
	kc, err := env.CP.KubeconfigFor(user, groups...)
	if err != nil {
		f.t.Fatal(err)
	}
	return kc
}
