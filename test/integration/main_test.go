//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// Labels that route a StatefulSet to webhooks other than the shared pdguard's. Webhook
// configurations are cluster-wide, so a test that needs the mutating webhook unreachable,
// or pdguard in another mode, gets it by labelling its own StatefulSet instead of
// changing what every other test runs against.
const (
	// laneLabel=dryrun sends both webhook calls to a second pdguard started with
	// --enforcement=dryrun.
	laneLabel  = "pdguard.test/lane"
	dryrunLane = "dryrun"
	// mutatingLabel=unreachable sends the mutating call to a closed port (failurePolicy
	// Ignore) while the shared pdguard still validates: the backstop situation.
	mutatingLabel   = "pdguard.test/mutating"
	unreachable     = "unreachable"
	unreachableHook = "mutate.unreachable.pdguard.io"
)

const (
	selectorLabel = "app.kubernetes.io/name"
	selectorValue = "pingdirectory"
	// The tags of the upgrade success-migration.log records.
	oldTag, newTag = "9.0.0.1-latest", "9.1.0.0-latest"
	oldImage       = "pingidentity/pingdirectory:" + oldTag
	newImage       = "pingidentity/pingdirectory:" + newTag
	oldVersion     = "9.0.0.1"
	newVersion     = "9.1.0.0"
	// adminUser is the common name of the control plane's admin client certificate.
	adminUser     = "pdguard-admin"
	overrideGroup = "system:masters"
	// Short enough that a proven canary promotes within seconds.
	serveSoak    = "1s"
	serveRecheck = "1s"

	logscanTestdata  = "../../internal/evidence/logscan/testdata"
	probeNamespace   = "pdguard-probe"
	startupTimeout   = 4 * time.Minute
	webhookInForceBy = time.Minute
)

// env is shared by every test: one control plane with controllers and KWOK, the pdguard
// binary, the shared pdguard server and the dryrun one.
var env struct {
	cp      *controlplane.ControlPlane
	root    string
	binary  string
	guard   *pdguardproc.Server
	dryrun  *pdguardproc.Server
	admin   kubernetes.Interface
	startup time.Duration
	began   time.Time
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	env.began = time.Now()
	workDir, err := os.MkdirTemp("", "pdguard-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keep := true
	defer func() {
		if keep {
			fmt.Fprintf(os.Stderr, "integration: work dir and component logs kept in %s\n", workDir)
		} else {
			os.RemoveAll(workDir)
		}
	}()
	stop, err := setUp(workDir)
	defer stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: setting up: %v\n", err)
		return 1
	}
	code := m.Run()
	for _, srv := range []*pdguardproc.Server{env.guard, env.dryrun} {
		lines, cold := refusedByRBAC(srv.Forbidden())
		if cold > 0 {
			logf("pdguard (%s) was refused %d calls by a kube-apiserver just restarted, before its RBAC cache had even the bootstrap roles", srv.LogPath, cold)
		}
		if len(lines) > 0 {
			logf("the API server refused pdguard (as %s, log %s) %d calls; the chart's RBAC must cover them:\n%s", srv.Identity.User, srv.LogPath, len(lines), strings.Join(lines, "\n"))
			code = max(code, 1)
		}
	}
	logf("whole package took %s (start-up %s)", time.Since(env.began).Round(time.Millisecond), env.startup.Round(time.Millisecond))
	keep = code != 0
	return code
}

// refusedByRBAC drops the refusals of a kube-apiserver that has just started: it serves
// requests before its RBAC cache is filled, and then finds no cluster role at all (not
// even the bootstrap ones every cluster has) or not yet the chart's. Those say nothing
// about the chart's RBAC: refusals that name a missing bootstrap role, or that were
// logged while the API server was being restarted or within restartSettle after it.
func refusedByRBAC(lines []string) (rbac []string, cold int) {
	for _, l := range lines {
		if strings.Contains(l, `system:public-info-viewer\" not found`) || strings.Contains(l, `system:basic-user\" not found`) || duringRestart(l) {
			cold++
			continue
		}
		rbac = append(rbac, l)
	}
	return rbac, cold
}

// restartSettle is how long after a kube-apiserver restart its RBAC cache may still lack
// the chart's roles.
const restartSettle = 10 * time.Second

var restarts struct {
	sync.Mutex
	windows [][2]time.Time
}

// noteRestart records that the API server was down from down until it answered again at up.
func noteRestart(down, up time.Time) {
	restarts.Lock()
	defer restarts.Unlock()
	restarts.windows = append(restarts.windows, [2]time.Time{down, up.Add(restartSettle)})
}

var logTime = regexp.MustCompile(`"ts":"([^"]+)"`)

func duringRestart(line string) bool {
	m := logTime.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return false
	}
	restarts.Lock()
	defer restarts.Unlock()
	for _, w := range restarts.windows {
		if !at.Before(w[0]) && !at.After(w[1]) {
			return true
		}
	}
	return false
}

// logf prints a line of the suite's own figures (fault summaries, timings). go test shows
// a passing package's output only with -v, so the lines also go to the file named by
// PDGUARD_TEST_SUMMARY, which make test-integration prints after the run.
func logf(format string, args ...any) {
	line := fmt.Sprintf("%s integration: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	fmt.Fprint(os.Stderr, line)
	if path := os.Getenv("PDGUARD_TEST_SUMMARY"); path != "" {
		summary.Lock()
		defer summary.Unlock()
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprint(f, line)
			f.Close()
		}
	}
}

var summary sync.Mutex

// setUp starts everything the tests share and returns once every webhook lane is in
// force. stop is always safe to call.
func setUp(workDir string) (stop func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}

	env.root, err = filepath.Abs("../..")
	if err != nil {
		return stop, err
	}
	// The build and the control plane start-up overlap: each takes seconds.
	built := make(chan error, 1)
	go func() {
		began := time.Now()
		var err error
		env.binary, err = pdguardproc.Build(ctx, env.root)
		logf("pdguard built in %s", time.Since(began).Round(time.Millisecond))
		built <- err
	}()

	began := time.Now()
	env.cp, err = controlplane.Start(ctx, controlplane.Options{WorkDir: workDir, Controllers: true, KWOK: true, Logf: logf})
	if err != nil {
		<-built
		return stop, err
	}
	stops = append(stops, func() {
		if err := env.cp.Stop(); err != nil {
			logf("stopping the control plane: %v", err)
		}
	})
	logf("control plane with controllers and KWOK started in %s", time.Since(began).Round(time.Millisecond))
	if err := <-built; err != nil {
		return stop, err
	}

	cfg := env.cp.RESTConfig()
	cfg.WarningHandlerWithContext = rest.NoWarnings{}
	if env.admin, err = kubernetes.NewForConfig(cfg); err != nil {
		return stop, err
	}

	began = time.Now()
	// The dryrun pdguard starts before the Report CRD exists and the shared one after it,
	// so both situations are served throughout.
	env.dryrun, err = pdguardproc.Start(ctx, env.cp, pdguardproc.Options{
		Binary: env.binary,
		Args: []string{
			"--soak=" + serveSoak, "--log-format=json", "--enforcement=dryrun", "--disable-evidence-controller",
			"--selector=" + selectorLabel + "=" + selectorValue + "," + laneLabel + "=" + dryrunLane,
		},
		SkipRegistration: true,
	})
	if err != nil {
		return stop, fmt.Errorf("starting the dryrun pdguard: %w", err)
	}
	stops = append(stops, env.dryrun.Stop)
	if err := pdguardproc.InstallReportCRD(ctx, env.cp, pdguardproc.ChartOf(env.cp, env.binary)); err != nil {
		return stop, err
	}
	env.guard, err = pdguardproc.Start(ctx, env.cp, pdguardproc.Options{
		Binary: env.binary,
		Args:   []string{"--soak=" + serveSoak, "--evidence-recheck=" + serveRecheck, "--log-format=json"},
	})
	if err != nil {
		return stop, fmt.Errorf("starting pdguard: %w", err)
	}
	stops = append(stops, env.guard.Stop)
	logf("two pdguard servers ready in %s (logs %s, %s)", time.Since(began).Round(time.Millisecond), env.guard.LogPath, env.dryrun.LogPath)

	if err := registerLanes(ctx); err != nil {
		return stop, err
	}
	began = time.Now()
	if err := probeLanes(ctx); err != nil {
		return stop, err
	}
	logf("every webhook lane in force %s after registration", time.Since(began).Round(time.Millisecond))
	env.startup = time.Since(env.began)
	logf("start-up took %s", env.startup.Round(time.Millisecond))
	return stop, nil
}

// registerLanes keeps the shared pdguard's configurations away from the other lanes and
// registers those lanes.
func registerLanes(ctx context.Context) error {
	cs := env.admin.AdmissionregistrationV1()
	absent := func(keys ...string) []metav1.LabelSelectorRequirement {
		var reqs []metav1.LabelSelectorRequirement
		for _, k := range keys {
			reqs = append(reqs, metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpDoesNotExist})
		}
		return reqs
	}
	mutating, err := cs.MutatingWebhookConfigurations().Get(ctx, "pdguard", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i := range mutating.Webhooks {
		mutating.Webhooks[i].ObjectSelector.MatchExpressions = absent(laneLabel, mutatingLabel)
	}
	if _, err := cs.MutatingWebhookConfigurations().Update(ctx, mutating, metav1.UpdateOptions{}); err != nil {
		return err
	}
	validating, err := cs.ValidatingWebhookConfigurations().Get(ctx, "pdguard", metav1.GetOptions{})
	if err != nil {
		return err
	}
	for i := range validating.Webhooks {
		validating.Webhooks[i].ObjectSelector.MatchExpressions = absent(laneLabel)
	}
	if _, err := cs.ValidatingWebhookConfigurations().Update(ctx, validating, metav1.UpdateOptions{}); err != nil {
		return err
	}

	if err := env.cp.RegisterWebhooks(ctx, controlplane.WebhookOptions{
		Name: "pdguard-dryrun", URL: env.dryrun.URL, CABundle: env.dryrun.CAPEM,
		Selector:                map[string]string{selectorLabel: selectorValue, laneLabel: dryrunLane},
		MutatingFailurePolicy:   admissionregistrationv1.Ignore,
		ValidatingFailurePolicy: admissionregistrationv1.Fail,
	}); err != nil {
		return err
	}

	// A port that was free a moment ago and is closed now: the apiserver's call is
	// refused, as when every pdguard pod is gone.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	closed := "https://" + l.Addr().String() + "/mutate"
	l.Close()
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	_, err = cs.MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "pdguard-unreachable"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         unreachableHook,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &closed, CABundle: env.guard.CAPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"statefulsets"}},
			}},
			FailurePolicy:           &ignore,
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{selectorLabel: selectorValue, mutatingLabel: unreachable}},
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	return err
}

// probeLanes waits until the apiserver calls the right webhooks for each lane. It only
// sends dry-run updates, which go through admission but are never stored.
func probeLanes(ctx context.Context) error {
	if _, err := env.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNamespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	probes := []struct {
		name   string
		labels map[string]string
		// annotations on the live object
		annotations map[string]string
		change      func(*appsv1.StatefulSet)
		inForce     func(stored *appsv1.StatefulSet, warnings []string, err error) bool
	}{
		{
			name:   "shared",
			change: func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) },
			inForce: func(s *appsv1.StatefulSet, _ []string, err error) bool {
				return err == nil && partitionOf(s) == 1 && s.Annotations[rollout.CanaryAnnotation] != ""
			},
		},
		{
			name:        "dryrun",
			labels:      map[string]string{laneLabel: dryrunLane},
			annotations: map[string]string{rollout.EnforcementAnnotation: "warn"},
			change:      bundle,
			// Allowed (the shared pdguard would deny) and warned (no webhook at all would not).
			inForce: func(_ *appsv1.StatefulSet, warnings []string, err error) bool {
				return err == nil && len(warnings) > 0
			},
		},
		{
			name:   "unreachable",
			labels: map[string]string{mutatingLabel: unreachable},
			change: func(s *appsv1.StatefulSet) { fixture.WithTag(s, newTag) },
			inForce: func(_ *appsv1.StatefulSet, _ []string, err error) bool {
				return err != nil && strings.Contains(err.Error(), "without a canary partition") && failOpenCount(ctx) > 0
			},
		},
	}
	for _, p := range probes {
		sts := chartStatefulSet(probeNamespace)
		sts.Name = "probe-" + p.name
		for k, v := range p.labels {
			sts.Labels[k] = v
		}
		for k, v := range p.annotations {
			sts.Annotations[k] = v
		}
		live, err := env.admin.AppsV1().StatefulSets(probeNamespace).Create(ctx, sts, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating probe %s: %w", p.name, err)
		}
		var last string
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, webhookInForceBy, true, func(ctx context.Context) (bool, error) {
			req := live.DeepCopy()
			p.change(req)
			w := &warningLog{}
			cs, err := clientWithWarnings(env.cp.RESTConfig(), w)
			if err != nil {
				return false, err
			}
			stored, err := cs.AppsV1().StatefulSets(probeNamespace).Update(ctx, req, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			last = fmt.Sprintf("err=%v warnings=%q", err, w.list())
			return p.inForce(stored, w.list(), err), nil
		})
		if err != nil {
			return fmt.Errorf("webhook lane %s not in force: %w (last answer: %s)", p.name, err, last)
		}
	}
	return nil
}

// failOpenCount is how often the apiserver let a request through after failing to call
// the unreachable mutating webhook.
func failOpenCount(ctx context.Context) float64 {
	raw, err := env.admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return -1
	}
	return sumSamples(parseMetrics(string(raw)), "apiserver_admission_webhook_fail_open_count", map[string]string{"name": unreachableHook})
}
