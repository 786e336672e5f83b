package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/report"
)

func newAuditCommand() *cobra.Command {
	var (
		allNamespaces    bool
		since            time.Duration
		statefulSet      string
		output, selector string
	)
	kube := newKubeFlags(true)
	cmd := &cobra.Command{
		Use:   "audit [-n NS | -A] [--since 24h] [--statefulset NAME] [-o table|json|markdown|html]",
		Short: "Show the rollouts pdguard blocked, warned about or let through on an override, newest first, from its Reports and recent Events",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(report.AuditFormats, output) {
				return badInput(fmt.Errorf("-o must be one of %s, got %q", strings.Join(report.AuditFormats, ", "), output))
			}
			if allNamespaces && cmd.Flags().Changed("namespace") {
				return badInput(fmt.Errorf("-n and -A cannot both be given: -n names one namespace, -A means all"))
			}
			cfg, err := kube.restConfig()
			if err != nil {
				return badInput(err)
			}
			ns, _, err := kube.namespace()
			if err != nil {
				return badInput(err)
			}
			if allNamespaces {
				ns = metav1.NamespaceAll
			}
			scheme := runtime.NewScheme()
			if err := reportsv1alpha1.Install(scheme); err != nil {
				return err
			}
			c, err := client.New(cfg, client.Options{Scheme: scheme})
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			in := report.AuditInput{StatefulSet: statefulSet, Since: since}
			var reports reportsv1alpha1.ReportList
			switch err := c.List(ctx, &reports, client.InNamespace(ns)); {
			case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
				fmt.Fprintln(cmd.ErrOrStderr(), "webhook: the openreports.io Report CRD is not installed; showing Events only, which the API server keeps for its --event-ttl (1h by default)")
			case err != nil:
				return fmt.Errorf("listing Reports: %w", err)
			default:
				in.Reports = reports.Items
			}
			events, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "regarding.kind=StatefulSet"})
			if err != nil {
				return fmt.Errorf("listing Events: %w", err)
			}
			in.Events = events.Items
			sets, err := cs.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return fmt.Errorf("listing guarded StatefulSets: %w", err)
			}
			in.StatefulSets = sets.Items
			return report.BuildAudit(time.Now(), in).Write(cmd.OutOrStdout(), output)
		},
	}
	fs := cmd.Flags()
	kube.AddFlags(fs)
	fs.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "every namespace")
	fs.DurationVar(&since, "since", 24*time.Hour, "leave out records older than this (0: all)")
	fs.StringVar(&statefulSet, "statefulset", "", "only this StatefulSet")
	fs.StringVar(&selector, "selector", "app.kubernetes.io/name=pingdirectory", "label selector of guarded StatefulSets")
	fs.StringVarP(&output, "output", "o", "table", "table, json, markdown or html")
	return cmd
}
