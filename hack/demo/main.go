// Command demo walks through a guarded PingDirectory upgrade on a local control plane:
// plain `helm upgrade` runs, what pdguard does with each, and the pods afterwards. It
// exits non-zero as soon as a step does not behave as described.
//
//	make demo     (or: go run ./hack/demo after make tools)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/scenario"
)

// soak is shorter than pdguard's 30s default so the walk-through does not stall.
const soak = 5 * time.Second

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := scenario.NewPrinter(os.Stdout)
	p.Title("pdguard: a PingDirectory upgrade with nothing but helm upgrade")

	p.Section("Setting up")
	p.Step("Start a control plane on this machine: etcd, kube-apiserver, the controller manager, the scheduler, and KWOK playing the kubelet of one node. Build pdguard and register it as the cluster's admission webhooks, as its chart does (mutating: failurePolicy Ignore, validating: Fail).")
	began := time.Now()
	// A work dir of our own, so the logs can be kept when a step goes wrong.
	workDir, err := os.MkdirTemp("", "pdguard-demo-")
	if err != nil {
		return finish(ctx, p, nil, "", err)
	}
	env, err := scenario.Start(ctx, scenario.Options{
		WorkDir:     workDir,
		PdguardArgs: []string{"--soak=" + soak.String(), "--evidence-recheck=1s", "--log-format=console"},
	})
	if err != nil {
		return finish(ctx, p, nil, workDir, fmt.Errorf("starting: %w", err))
	}
	p.OK("ready in %s. pdguard runs `webhook serve --soak=%s` (30s by default).", time.Since(began).Round(100*time.Millisecond), soak)
	p.Say("Every command below is run exactly as shown, with KUBECONFIG pointing at this control plane; `helm` is helm %s (the end-to-end tests run the same story with helm 3 too).", "v4")

	d := &demo{ctx: ctx, p: p, env: env, rel: env.NewRelease(env.Helm4(), "pd", "directory")}
	for _, part := range []func() error{d.canaryUpgrade, d.bundledChange, d.report} {
		if err := part(); err != nil {
			return finish(ctx, p, env, workDir, err)
		}
	}
	return finish(ctx, p, env, workDir, nil)
}

// finish tears everything down, also after a failure or Ctrl-C, and picks the exit code.
// The work dir, with every component's log and pdguard's, stays after a failure.
func finish(ctx context.Context, p *scenario.Printer, env *scenario.Env, workDir string, err error) int {
	code := 0
	switch {
	case ctx.Err() != nil:
		p.Say("\nInterrupted.")
		code = 130
	case err != nil:
		p.Fail("%v", err)
		code = 1
	}
	if env != nil {
		p.Section("Tearing down")
		began := time.Now()
		if stopErr := env.Stop(); stopErr != nil {
			p.Fail("stopping: %v", stopErr)
			code = max(code, 1)
		} else {
			p.Say("Control plane and pdguard stopped in %s.", time.Since(began).Round(100*time.Millisecond))
		}
	}
	switch {
	case code == 1 && workDir != "":
		p.Say("Logs of the control plane and pdguard are kept in %s.", filepath.Join(workDir, "logs"))
	case workDir != "":
		os.RemoveAll(workDir)
	}
	if code == 0 {
		p.Say("\nEvery step behaved as described.")
	}
	return code
}

type demo struct {
	ctx context.Context
	p   *scenario.Printer
	env *scenario.Env
	rel *scenario.Release
}

// unexpected is a step that did not behave as the walk-through says it does.
func unexpected(format string, args ...any) error { return fmt.Errorf(format, args...) }

// upgrade runs `helm upgrade --install` with the values and prints it.
func (d *demo) upgrade(set ...string) scenario.Result {
	res := d.rel.Upgrade(d.ctx, set...)
	d.p.Command(res)
	return res
}

func (d *demo) mustSucceed(res scenario.Result) error {
	if !res.OK() {
		return unexpected("%s failed (exit %d):\n%s", res.CommandLine(), res.ExitCode, res.Output())
	}
	return nil
}

func (d *demo) mustBeDenied(res scenario.Result, contains ...string) error {
	if res.OK() {
		return unexpected("%s was allowed, but pdguard should have refused it", res.CommandLine())
	}
	denial := res.Denial()
	if denial == "" {
		return unexpected("%s failed, but not because pdguard refused it:\n%s", res.CommandLine(), res.Output())
	}
	for _, c := range contains {
		if !strings.Contains(denial, c) {
			return unexpected("pdguard's reason does not say %q", c)
		}
	}
	return nil
}

// showPods waits for the pods to run the tags (ordinal by ordinal) and prints them.
func (d *demo) showPods(tags ...string) ([]scenario.Pod, error) {
	pods, err := d.rel.WaitTags(d.ctx, tags...)
	if err != nil {
		return nil, err
	}
	d.p.Pods(pods)
	return pods, nil
}

func (d *demo) showState() error {
	sts, err := d.rel.Get(d.ctx)
	if err != nil {
		return err
	}
	partition, _ := rollout.Partition(sts)
	d.p.Fact("partition", fmt.Sprint(partition))
	if rec, err := rollout.ReadCanaryRecord(sts); err == nil && rec != nil && rollout.CanaryOpen(sts) {
		d.p.Fact("pdguard.io/canary", fmt.Sprintf("%s -> %s, opened by %s", rec.FromVersion, rec.ToVersion, rec.RequestedBy))
	}
	return nil
}

func sameUIDs(before, after []scenario.Pod, ordinals ...int) error {
	for _, i := range ordinals {
		if before[i].UID != after[i].UID {
			return unexpected("pod %s was replaced, but should have been left alone", before[i].Name)
		}
	}
	return nil
}

func (d *demo) showVerdict(ordinal int) error {
	res := d.rel.Kubectl(d.ctx, "get", "pod", d.rel.PodName(ordinal), "-o", `jsonpath={.metadata.annotations.pdguard\.io/replace-profile}`)
	d.p.Command(res)
	if !res.OK() {
		return unexpected("reading the verdict: %s", res.Output())
	}
	d.p.JSON(res.Stdout)
	return nil
}

func (d *demo) canaryUpgrade() error {
	p, rel := d.p, d.rel
	tag := func(t string) string { return "image.tag=" + t }
	p.Section("(a) The vendor's canary upgrade, from a plain helm upgrade")

	p.Step("Install PingDirectory with 2 replicas at %s.", scenario.OldTag)
	if err := d.mustSucceed(d.upgrade(tag(scenario.OldTag))); err != nil {
		return err
	}
	installed, err := d.showPods(scenario.OldTag, scenario.OldTag)
	if err != nil {
		return err
	}

	p.Step("Change only the tag, to %s, and run helm upgrade as always. The chart still sends partition: 0, which would restart every pod into replace-profile at once.", scenario.NewTag)
	res := d.upgrade(tag(scenario.NewTag))
	if err := d.mustSucceed(res); err != nil {
		return err
	}
	if !strings.Contains(strings.Join(res.Warnings(), " "), "to 1 (the request had 0)") {
		return unexpected("pdguard did not say that it set the partition to 1")
	}
	p.Say("pdguard's mutating webhook set the partition to 1: only the highest ordinal, the canary, moves; pod 0 (the replication seed) stays.")
	canary, err := d.showPods(scenario.OldTag, scenario.NewTag)
	if err != nil {
		return err
	}
	if err := sameUIDs(installed, canary, 0); err != nil {
		return err
	}
	if err := d.showState(); err != nil {
		return err
	}

	p.Step("Run the same upgrade again right away, before the canary has proved anything.")
	res = d.upgrade(tag(scenario.NewTag))
	if err := d.mustBeDenied(res, "the canary is not proven."); err != nil {
		return err
	}
	p.Say("Nothing rolled:")
	pods, err := d.showPods(scenario.OldTag, scenario.NewTag)
	if err != nil {
		return err
	}
	if err := sameUIDs(canary, pods, 0, 1); err != nil {
		return err
	}

	p.Step("The canary's container log shows manage-profile replace-profile migrating the server from 9.0.0.1 to 9.1.0.0 (here: a recorded log, served by KWOK). pdguard's evidence controller reads it and records its verdict on the pod.")
	success, err := d.env.Fixture(scenario.SuccessLog)
	if err != nil {
		return err
	}
	if err := rel.ServeLog(d.ctx, 1, success); err != nil {
		return err
	}
	if _, err := rel.WaitVerdict(d.ctx, 1, "verdict Succeeded", scenario.CurrentVerdict(rollout.VerdictSucceeded), true); err != nil {
		return err
	}
	if err := d.showVerdict(1); err != nil {
		return err
	}
	p.Say("pdguard also wants the canary Ready for --soak (%s here) before it counts.", soak)
	if err := rel.WaitSoaked(d.ctx, 1, soak); err != nil {
		return err
	}

	p.Step("Run the same helm upgrade again: now it promotes the rest.")
	if err := d.mustSucceed(d.upgrade(tag(scenario.NewTag))); err != nil {
		return err
	}
	pods, err = d.showPods(scenario.NewTag, scenario.NewTag)
	if err != nil {
		return err
	}
	if err := sameUIDs(canary, pods, 1); err != nil {
		return err
	}
	if err := d.showState(); err != nil {
		return err
	}
	p.OK("every pod runs %s, the canary first and only after its migration was proven.", scenario.NewTag)
	return nil
}

func (d *demo) bundledChange() error {
	p, rel := d.p, d.rel
	const env = "env.MAX_HEAP_SIZE=4g"
	p.Section("(b) Configuration and version in one upgrade")

	before, err := rel.Pods(d.ctx)
	if err != nil {
		return err
	}
	sts, err := rel.Get(d.ctx)
	if err != nil {
		return err
	}
	checksum := sts.Spec.Template.Annotations["checksum/config"]

	p.Step("Next upgrade: %s, and a JVM heap setting in the same values.", scenario.NextTag)
	res := d.upgrade("image.tag="+scenario.NextTag, env)
	if err := d.mustBeDenied(res, "a version change goes alone, without config changes.", "Next: helm rollback"); err != nil {
		return err
	}
	p.Say("(The warning is the mutating webhook's: it pinned a canary in the request, which the validating webhook then refused as a whole.) Nothing rolled:")
	pods, err := d.showPods(scenario.NewTag, scenario.NewTag)
	if err != nil {
		return err
	}
	if err := sameUIDs(before, pods, 0, 1); err != nil {
		return err
	}

	p.Step("What helm left behind. helm applies the ConfigMap before the StatefulSet, so the ConfigMap already changed; the release is marked failed.")
	hist, err := rel.History(d.ctx)
	if err != nil {
		return err
	}
	last := hist[len(hist)-1]
	p.Fact("helm history", fmt.Sprintf("revision %d %s, revision %d %s", hist[len(hist)-2].Revision, hist[len(hist)-2].Status, last.Revision, last.Status))
	data, err := rel.ConfigMapData(d.ctx)
	if err != nil {
		return err
	}
	p.Fact("ConfigMap "+rel.ConfigMap(), fmt.Sprint(data))
	sts, err = rel.Get(d.ctx)
	if err != nil {
		return err
	}
	image, _ := rollout.ContainerImage(&sts.Spec.Template.Spec, "pingdirectory")
	p.Fact("StatefulSet image", image)
	p.Fact("StatefulSet checksum/config", "unchanged ("+short(sts.Spec.Template.Annotations["checksum/config"])+")")
	if last.Status != "failed" || data["MAX_HEAP_SIZE"] != "4g" || sts.Spec.Template.Annotations["checksum/config"] != checksum {
		return unexpected("helm left a different state behind than described")
	}
	p.Say("No pod restarted, but each reads that ConfigMap when it starts: the next restart for any reason would pick up the new heap unannounced. Recover with `helm rollback %s %d -n %s`, or, as pdguard says, split the change:", rel.Name, hist[len(hist)-2].Revision, rel.Namespace)

	p.Step("First the configuration alone, with the current tag. No version change, so no canary: every pod restarts with the new setting.")
	if err := d.mustSucceed(d.upgrade("image.tag="+scenario.NewTag, env)); err != nil {
		return err
	}
	configured, err := d.showPods(scenario.NewTag, scenario.NewTag)
	if err != nil {
		return err
	}
	for i := range configured {
		if configured[i].UID == before[i].UID {
			return unexpected("pod %s did not restart for the configuration change", configured[i].Name)
		}
	}

	p.Step("Then only the tag. The canary opens as in (a); its log shows the 9.1.0.0 -> 9.2.0.0 migration.")
	migration, err := d.env.MigrationLog("9.1.0.0", "9.2.0.0")
	if err != nil {
		return err
	}
	if err := rel.ServeLog(d.ctx, 1, migration); err != nil {
		return err
	}
	res = d.upgrade("image.tag="+scenario.NextTag, env)
	if err := d.mustSucceed(res); err != nil {
		return err
	}
	if _, err := d.showPods(scenario.NewTag, scenario.NextTag); err != nil {
		return err
	}
	if _, err := rel.WaitVerdict(d.ctx, 1, "verdict Succeeded", scenario.CurrentVerdict(rollout.VerdictSucceeded), true); err != nil {
		return err
	}
	if err := d.showVerdict(1); err != nil {
		return err
	}
	p.OK("the canary on %s is proven; the same helm upgrade would promote pod 0 next.", scenario.NextTag)
	return nil
}

func (d *demo) report() error {
	d.p.Section("pdguard's own account: webhook report")
	res := d.env.Report(d.ctx, "-n", d.rel.Namespace)
	d.p.Command(res)
	if !res.OK() {
		return unexpected("webhook report failed: %s", res.Output())
	}
	// Event notes run to a kilobyte and their start says what happened, so only the
	// event lines (they start with a timestamp) are cut.
	var out strings.Builder
	for line := range strings.Lines(res.Stdout) {
		line = strings.TrimRight(line, "\n")
		if len(line) > 150 && line[0] >= '0' && line[0] <= '9' {
			line = line[:147] + "..."
		}
		out.WriteString(line + "\n")
	}
	d.p.Output(out.String())
	if !strings.Contains(res.Stdout, d.rel.StatefulSet()) {
		return errors.New("the report does not list the StatefulSet")
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12] + "..."
	}
	return s
}
