//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

// vapLabel on a namespace puts it under the chart's ValidatingAdmissionPolicy for
// pdguard.io/ pod annotations; the other namespaces show what signatures alone do.
const vapLabel = "pdguard.test/verdict-policy"

// forgedVerdict is shaped exactly like the evidence controller's, for the pod's running
// container and update revision, without pdguard's signature.
func forgedVerdict(pod corev1.Pod) string {
	cs, _ := rollout.Container(&pod, fixture.Container)
	raw, _ := json.Marshal(rollout.Verdict{
		Verdict: rollout.VerdictSucceeded, Revision: pod.Labels[rollout.RevisionLabel], ContainerID: cs.ID,
		From: oldVersion, To: newVersion, ObservedAt: time.Now().UTC().Truncate(time.Second),
		Reason: "replace-profile completed",
	})
	return string(raw)
}

func annotationPatch(value string) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{rollout.ReplaceProfileAnnotation: value}}})
	return b
}

// grantPodPatch gives user pods get/list/patch in the namespace, nothing on StatefulSets.
func (g *guarded) grantPodPatch(user string) *rest.Config {
	g.t.Helper()
	g.grant(user, "pod-patcher", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "patch"}})
	cfg, err := env.cp.ConfigFor(user, "developers")
	if err != nil {
		g.t.Fatal(err)
	}
	return cfg
}

// installVerdictPolicy applies the chart's ValidatingAdmissionPolicy, rendered by helm,
// bound to the namespaces labelled vapLabel. The shared pdguard runs with the admin's
// credentials, which the chart's verdicts.extraWriters is for.
func installVerdictPolicy(t *testing.T) {
	t.Helper()
	helm := filepath.Join(env.root, "bin", "tools", "helm")
	out, err := exec.Command(helm, "template", "pdguard", filepath.Join(env.root, "charts", "pdguard"),
		"-n", "pdguard-system", "--show-only", "templates/verdict-policy.yaml",
		"--set", "verdicts.extraWriters={"+adminUser+"}").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	docs := bytes.Split(out, []byte("\n---"))
	var policy admissionregistrationv1.ValidatingAdmissionPolicy
	var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
	for _, doc := range docs {
		switch {
		case bytes.Contains(doc, []byte("kind: ValidatingAdmissionPolicyBinding")):
			if err := yaml.Unmarshal(doc, &binding); err != nil {
				t.Fatal(err)
			}
		case bytes.Contains(doc, []byte("kind: ValidatingAdmissionPolicy")):
			if err := yaml.Unmarshal(doc, &policy); err != nil {
				t.Fatal(err)
			}
		}
	}
	if policy.Name == "" || binding.Name == "" {
		t.Fatalf("the chart rendered no verdict policy and binding:\n%s", out)
	}
	binding.Spec.MatchResources = &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{vapLabel: "on"}},
	}
	ar := env.admin.AdmissionregistrationV1()
	if _, err := ar.ValidatingAdmissionPolicies().Create(t.Context(), &policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API server refused the chart's ValidatingAdmissionPolicy: %v", err)
	}
	if _, err := ar.ValidatingAdmissionPolicyBindings().Create(t.Context(), &binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ar.ValidatingAdmissionPolicyBindings().Delete(t.Context(), binding.Name, metav1.DeleteOptions{})
		_ = ar.ValidatingAdmissionPolicies().Delete(t.Context(), policy.Name, metav1.DeleteOptions{})
	})
}

// A user who can patch pods, the same user under pdguard's own field manager, and the
// cluster admin each write a Succeeded verdict while the canary's real one is InProgress;
// the promotion sent right after is denied every time, pdguard replaces the forgery with
// its own judgement and says who wrote it, and once pdguard's own verdict is Succeeded
// the same promotion is admitted with the verdict it rests on in the audit record.
func TestForgedVerdictsProveNothing(t *testing.T) {
	t.Parallel()
	g := newGuarded(t, "forgery")
	g.serveLog(1, "in-progress.log")
	g.openCanary()
	g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress })

	mallory := g.grantPodPatch("mallory")
	forgers := []struct {
		name string
		cfg  *rest.Config
		opts metav1.PatchOptions
	}{
		{"a user who may only patch pods", mallory, metav1.PatchOptions{}},
		{"the same user under pdguard's field manager", mallory, metav1.PatchOptions{FieldManager: "pdguard-evidence"}},
		{"the cluster admin", adminConfig(), metav1.PatchOptions{FieldManager: "pdguard-evidence"}},
	}
	for _, f := range forgers {
		t.Run(f.name, func(t *testing.T) {
			g := g.on(t)
			cs, err := kubernetes.NewForConfig(f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			canary := g.pod(1)
			if _, err := cs.CoreV1().Pods(g.ns).Patch(g.ctx, canary.Name, types.MergePatchType, annotationPatch(forgedVerdict(canary)), f.opts); err != nil {
				t.Fatalf("writing the forged verdict: %v", err)
			}
			_, _, err = g.patch(adminConfig(), partitionPatch(0))
			msg := mustDeny(t, err, "a promotion right after a forged verdict")
			if m := missing(msg, "partition-gate", "Pod "+canary.Name+":"); m != "" {
				t.Errorf("denial %s: %s", m, msg)
			}
			if !strings.Contains(msg, "was not issued by pdguard") && !strings.Contains(msg, "verdict InProgress") {
				t.Errorf("denial says neither that the verdict is not pdguard's nor pdguard's own verdict: %s", msg)
			}
			v, _, took := g.waitVerdict(1, "pdguard's own InProgress", func(v rollout.Verdict) bool {
				return v.Verdict == rollout.VerdictInProgress && v.Signature != ""
			})
			t.Logf("forgery replaced by pdguard's %s verdict %s after the test saw it", v.Verdict, took.Round(time.Millisecond))
		})
	}
	ev := g.waitEvent("ForgedVerdict", func(e eventsv1.Event) bool {
		return e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "that pdguard did not issue") && strings.Contains(e.Note, "written by field manager")
	})
	t.Logf("ForgedVerdict event: %s", ev.Note)
	// The Event series keeps its first note; the log names the writer of each forgery.
	var spoofed int
	for _, line := range strings.Split(env.guard.Logs(), "\n") {
		if strings.Contains(line, `"decision":"forged-verdict"`) && strings.Contains(line, `"namespace":"`+g.ns+`"`) && strings.Contains(line, `field manager \"pdguard-evidence\"`) {
			spoofed++
		}
	}
	if spoofed < 2 {
		t.Errorf("pdguard logged %d forgeries under the field manager pdguard-evidence, want 2 (the spoofing user and the admin)", spoofed)
	}
	if p := partitionOf(g.get()); p != 1 {
		t.Fatalf("partition = %d after the forgeries, want 1", p)
	}

	g.serveLog(1, "success-migration.log")
	v, _, _ := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	g.promote()
	d := g.waitDecision(env.guard, "the admitted promotion", func(d decision) bool {
		return d.Webhook == "validate" && d.Decision == "allowed" && len(d.Proof) > 0
	})
	if p := d.Proof[0]; p.Pod != podName(1) || p.ContainerID != v.ContainerID || p.Revision != v.Revision || !p.IssuedAt.Equal(v.ObservedAt) {
		t.Errorf("the promotion's audit record rests on %+v, want pdguard's verdict %+v", d.Proof, v)
	}
	g.waitEvent("CanaryPromoted", func(e eventsv1.Event) bool { return strings.Contains(e.Note, podName(1)) })
}

// With the chart's ValidatingAdmissionPolicy the forgery does not even reach the pod,
// while pdguard's own verdicts still do.
func TestVerdictPolicyRefusesForgers(t *testing.T) {
	t.Parallel()
	installVerdictPolicy(t)
	g := newGuarded(t, "verdict-policy")
	nsObj, err := env.admin.CoreV1().Namespaces().Get(g.ctx, g.ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Labels[vapLabel] = "on"
	if _, err := env.admin.CoreV1().Namespaces().Update(g.ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.serveLog(1, "in-progress.log")
	mallory := g.grantPodPatch("mallory")
	cs, err := kubernetes.NewForConfig(mallory)
	if err != nil {
		t.Fatal(err)
	}
	g.openCanary()
	g.waitVerdict(1, "InProgress", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictInProgress && v.Signature != "" })
	canary := g.pod(1)
	for _, manager := range []string{"", "pdguard-evidence"} {
		var msg string
		g.eventually("the verdict policy to refuse mallory", func() (bool, string) {
			_, err := cs.CoreV1().Pods(g.ns).Patch(g.ctx, canary.Name, types.MergePatchType, annotationPatch(forgedVerdict(canary)), metav1.PatchOptions{FieldManager: manager})
			if err == nil {
				return false, "the forgery was written (policy not in force yet)"
			}
			msg = apiMessage(err)
			return strings.Contains(msg, "may change pdguard.io/ annotations"), msg
		})
		if m := missing(msg, "User mallory tried to change it", "pdguard.io/override-reason"); m != "" {
			t.Errorf("refusal %s: %s", m, msg)
		}
	}
	g.serveLog(1, "success-migration.log")
	g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded })
	g.promote()
}

// A verdict signed by one pdguard process is trusted by another that reads the same key:
// the dryrun lane's pdguard (no evidence controller of its own) judges promotions on the
// verdicts the shared pdguard wrote.
func TestAnotherReplicaTrustsTheVerdicts(t *testing.T) {
	t.Parallel()
	// The pods carry the lane label too: the dryrun pdguard caches only pods that match
	// its selector.
	g := newGuarded(t, "replicas", func(s *appsv1.StatefulSet) {
		s.Labels[laneLabel] = dryrunLane
		s.Spec.Template.Labels[laneLabel] = dryrunLane
	})
	g.serveLog(1, "success-migration.log")
	stored, _, err := g.change(adminConfig(), func(s *appsv1.StatefulSet) {
		fixture.WithTag(s, newTag)
		s.Spec.UpdateStrategy.RollingUpdate.Partition = ptrTo(int32(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if partitionOf(stored) != 1 {
		t.Fatalf("partition %d, want 1", partitionOf(stored))
	}
	g.waitImages(oldImage, newImage)
	v, _, _ := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded && v.Signature != "" })
	// Dry-run promotions until the dryrun pdguard finds nothing to deny: it never denies,
	// so its decision line, not the answer, shows whether it trusted the verdict. Until the
	// soak has passed it finds the gate closed; with a key of its own it would forever.
	var last decision
	g.eventually("the other replica to find the promotion proven by the shared pdguard's verdict", func() (bool, string) {
		if _, err := env.admin.AppsV1().StatefulSets(g.ns).Patch(g.ctx, g.name, types.MergePatchType, []byte(partitionPatch(0)), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return false, apiMessage(err)
		}
		all := decisions(env.dryrun, g.ns)
		for i := len(all) - 1; i >= 0; i-- {
			if d := all[i]; d.Webhook == "validate" && d.DryRun {
				last = d
				break
			}
		}
		return len(last.Rules) == 0 && len(last.Proof) > 0, fmt.Sprintf("last dry-run decision %+v", last)
	})
	if last.Proof[0].ContainerID != v.ContainerID || last.Proof[0].Pod != podName(1) {
		t.Errorf("the dryrun pdguard rested the promotion on %+v, want the shared pdguard's verdict %+v", last.Proof, v)
	}
}

func ptrTo[T any](v T) *T { return &v }

// The proof outlives the process that issued it: after a restart pdguard admits the
// promotion on the verdict it signed before, without judging the pod again. Not parallel:
// the shared pdguard is down for a moment.
func TestARestartKeepsTheProof(t *testing.T) {
	g := newGuarded(t, "restart")
	g.serveLog(1, "success-migration.log")
	g.openCanary()
	v, pod, _ := g.waitVerdict(1, "Succeeded", func(v rollout.Verdict) bool { return v.Verdict == rollout.VerdictSucceeded && v.Signature != "" })
	before := pod.Annotations[rollout.ReplaceProfileAnnotation]
	began := time.Now()
	if err := env.guard.Restart(g.ctx); err != nil {
		t.Fatalf("restarting pdguard: %v", err)
	}
	t.Logf("pdguard restarted and ready in %s", time.Since(began).Round(time.Millisecond))
	g.promote()
	d := g.waitDecision(env.guard, "the admitted promotion", func(d decision) bool {
		return d.Webhook == "validate" && d.Decision == "allowed" && len(d.Proof) > 0
	})
	if p := d.Proof[0]; p.Pod != podName(1) || !p.IssuedAt.Equal(v.ObservedAt) || p.ContainerID != v.ContainerID {
		t.Errorf("after the restart the promotion rests on %+v, want the verdict issued before it (%+v)", d.Proof, v)
	}
	if after := g.pod(1).Annotations[rollout.ReplaceProfileAnnotation]; after != before {
		t.Errorf("the restarted pdguard re-issued the verdict:\n before %s\n after  %s", before, after)
	}
}
