package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/status"
)

var statusFormats = []string{"text", "wide", "json", "yaml"}

type statusOptions struct {
	kube          kubeFlags
	allNamespaces bool
	output        string
	watch         bool
	interval      time.Duration
	selector      string
	container     string
	soak          time.Duration
	verdictKey    string
}

func newStatusCommand() *cobra.Command {
	o := statusOptions{kube: newKubeFlags(true)}
	cmd := &cobra.Command{
		Use:   "status [NAME] [-n NS | -A] [-o text|wide|json|yaml] [-w]",
		Short: "Where each guarded StatefulSet's rollout stands, what blocks promotion, and what to run next",
		Long: `status shows, per guarded StatefulSet, the stable and update revision and image, the partition,
each pod's revision, readiness and replace-profile verdict with its age, whether a canary is open,
what blocks promotion, and the next step: the helm value to change in the same helm upgrade, a
kubectl command, or wait for the verdict. -w reads the cluster every --interval and prints again
whenever the state changed, until every rollout settles; then it exits 0.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(statusFormats, o.output) {
				return badInput(fmt.Errorf("-o must be one of %s, got %q", strings.Join(statusFormats, ", "), o.output))
			}
			sel, err := labels.Parse(o.selector)
			if err != nil {
				return badInput(fmt.Errorf("--selector %q: %w", o.selector, err))
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), sel, name)
		},
	}
	fs := cmd.Flags()
	o.kube.AddFlags(fs)
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "every namespace")
	fs.StringVarP(&o.output, "output", "o", "text", strings.Join(statusFormats, ", "))
	fs.BoolVarP(&o.watch, "watch", "w", false, "print again on every change until every rollout settles")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "with -w: how often to read the cluster")
	fs.StringVar(&o.selector, "selector", "app.kubernetes.io/name=pingdirectory", "label selector of guarded StatefulSets")
	fs.StringVar(&o.container, "container", "pingdirectory", "name of the PingDirectory container")
	fs.DurationVar(&o.soak, "soak", 5*time.Minute, "the webhook's --soak: how long a canary must be Ready before it can promote")
	fs.StringVar(&o.verdictKey, "verdict-key-secret", "pdguard/pdguard-verdict-key", "NAMESPACE/NAME of pdguard's verdict key Secret, to check the verdicts' signatures")
	return cmd
}

func (o *statusOptions) run(ctx context.Context, w io.Writer, sel labels.Selector, name string) error {
	ns, _, err := o.kube.namespace()
	if err != nil {
		return badInput(err)
	}
	if o.allNamespaces {
		ns = ""
	}
	r, err := o.kube.liveReader()
	if err != nil {
		return badInput(err)
	}
	var last []byte
	for {
		sets, note, err := o.read(ctx, r, ns, sel, name)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := printStatus(&buf, o.output, sets, note, o.allNamespaces); err != nil {
			return err
		}
		if !bytes.Equal(buf.Bytes(), last) {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			last = buf.Bytes()
		}
		if !o.watch || allSettled(sets) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
	}
}

func allSettled(sets []status.Status) bool {
	for _, s := range sets {
		if !s.Settled() {
			return false
		}
	}
	return true
}

// read observes every guarded StatefulSet in ns ("" all) with the rollout model, as
// admission does.
func (o *statusOptions) read(ctx context.Context, r *liveReader, ns string, sel labels.Selector, name string) ([]status.Status, string, error) {
	var list appsv1.StatefulSetList
	opts := []client.ListOption{client.MatchingLabelsSelector{Selector: sel}}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := r.client.List(ctx, &list, opts...); err != nil {
		return nil, "", fmt.Errorf("listing guarded StatefulSets: %w", err)
	}
	trust, note, err := r.trust(ctx, o.verdictKey)
	if err != nil {
		return nil, "", badInput(err)
	}
	out := []status.Status{}
	for i := range list.Items {
		sts := &list.Items[i]
		if name != "" && sts.Name != name {
			continue
		}
		pods, err := r.pods(ctx, sts)
		if err != nil {
			return nil, "", err
		}
		t := now()
		state := rollout.Observe(sts, pods, rollout.ObserveOptions{Container: o.container, Soak: o.soak, Now: t, Trust: trust})
		out = append(out, status.Of(state, status.Options{
			Namespace: sts.Namespace, Name: sts.Name, Soak: o.soak, Now: t,
			AutoPromote: sts.Annotations[rollout.AutoPromoteAnnotation] == "true",
		}))
	}
	if name != "" && len(out) == 0 {
		where := "namespace " + ns
		if ns == "" {
			where = "any namespace"
		}
		return nil, "", badInput(fmt.Errorf("no guarded StatefulSet %q in %s (selector %s)", name, where, sel))
	}
	slices.SortFunc(out, func(a, b status.Status) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return out, note, nil
}

func printStatus(w io.Writer, format string, sets []status.Status, note string, withNamespace bool) error {
	switch format {
	case "json", "yaml":
		list, err := statusList(sets)
		if err != nil {
			return err
		}
		var p printers.ResourcePrinter = &printers.JSONPrinter{}
		if format == "yaml" {
			p = &printers.YAMLPrinter{}
		}
		return p.PrintObj(list, w)
	}
	if len(sets) == 0 {
		_, err := fmt.Fprintln(w, "no guarded StatefulSets")
		return err
	}
	for i, s := range sets {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := printStatusText(w, s, format == "wide"); err != nil {
			return err
		}
	}
	if note != "" {
		fmt.Fprintf(w, "\nnote: %s\n", note)
	}
	return nil
}

// statusList is the statuses as a Kubernetes-style list, for cli-runtime's printers.
func statusList(sets []status.Status) (*unstructured.UnstructuredList, error) {
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "pdguard.io/v1", "kind": "RolloutStatusList"}}
	for i := range sets {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&sets[i])
		if err != nil {
			return nil, err
		}
		u := unstructured.Unstructured{Object: m}
		u.SetAPIVersion("pdguard.io/v1")
		u.SetKind("RolloutStatus")
		list.Items = append(list.Items, u)
	}
	return list, nil
}

func printStatusText(w io.Writer, s status.Status, wide bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s: %s, partition %d of %d replicas", s.Namespace, s.Name, s.Phase, s.Partition, s.Replicas)
	if s.CanaryOpen {
		b.WriteString(", canary open")
	}
	if s.AutoPromote {
		b.WriteString(", auto-promote")
	}
	fmt.Fprintf(&b, "\n  stable: %s  %s\n", orDash(s.StableRevision), orDash(s.StableImage))
	if s.Phase != status.PhaseStable {
		fmt.Fprintf(&b, "  update: %s  %s\n", orDash(s.UpdateRevision), orDash(s.UpdateImage))
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Pod", Type: "string"}, {Name: "Revision", Type: "string"}, {Name: "Role", Type: "string"},
		{Name: "Ready", Type: "string"}, {Name: "Verdict", Type: "string"}, {Name: "Verdict Age", Type: "string"},
		{Name: "Proven", Type: "string"},
		{Name: "Image", Type: "string", Priority: 1}, {Name: "Evidence", Type: "string", Priority: 1}, {Name: "Reason", Type: "string", Priority: 1},
	}}
	for _, p := range s.Pods {
		role := "stable"
		if p.Canary {
			role = "canary"
		}
		ready := "no"
		if p.Ready {
			ready = "yes (" + (time.Duration(p.ReadySeconds) * time.Second).String() + ")"
		}
		age := "-"
		if p.Verdict != "" && p.VerdictAgeSeconds >= 0 {
			age = (time.Duration(p.VerdictAgeSeconds) * time.Second).String()
		}
		table.Rows = append(table.Rows, metav1.TableRow{Cells: []any{
			p.Name, p.Revision, role, ready, orDash(p.Verdict), age, yesNo(p.Proven), p.Image, string(p.Evidence), orDash(p.Reason),
		}})
	}
	if err := printers.NewTablePrinter(printers.PrintOptions{Wide: wide}).PrintObj(table, w); err != nil {
		return err
	}
	b.Reset()
	for _, bl := range s.Blockers {
		fmt.Fprintf(&b, "  blocked: %s\n", bl)
	}
	fmt.Fprintf(&b, "  next: %s\n", s.Next.Text)
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
