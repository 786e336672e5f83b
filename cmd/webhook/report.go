package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pdguard/pdguard/internal/report"
)

func newReportCommand() *cobra.Command {
	var (
		selector, container, output string
		since                       time.Duration
		allNamespaces               bool
	)
	kube := newKubeFlags(true)
	cmd := &cobra.Command{
		Use:   "report [-n NS | -A] [--context CTX] [--since 24h] [-o text|json]",
		Short: "Show guarded StatefulSets, their canaries and verdicts, and every rollout pdguard blocked or warned about",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "json" && output != "text" {
				return badInput(fmt.Errorf("-o must be json or text, got %q", output))
			}
			sel, err := labels.Parse(selector)
			if err != nil {
				return badInput(fmt.Errorf("--selector %q: %w", selector, err))
			}
			namespace, _, err := kube.namespace()
			if err != nil {
				return badInput(err)
			}
			if allNamespaces {
				namespace = ""
			}
			cs, err := kube.clientset()
			if err != nil {
				return badInput(err)
			}
			ctx := cmd.Context()
			list := metav1.ListOptions{LabelSelector: sel.String()}
			sets, err := cs.AppsV1().StatefulSets(namespace).List(ctx, list)
			if err != nil {
				return fmt.Errorf("listing guarded StatefulSets: %w", err)
			}
			pods, err := cs.CoreV1().Pods(namespace).List(ctx, list)
			if err != nil {
				return fmt.Errorf("listing their pods: %w", err)
			}
			events, err := cs.EventsV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "regarding.kind=StatefulSet"})
			if err != nil {
				return fmt.Errorf("listing events: %w", err)
			}
			r := report.BuildReport(time.Now(), sets.Items, pods.Items, events.Items, container, since)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return r.WriteText(cmd.OutOrStdout())
		},
	}
	kube.AddFlags(cmd.Flags())
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "report on every namespace (default: -n, else the kubeconfig's namespace)")
	cmd.Flags().StringVar(&selector, "selector", "app.kubernetes.io/name=pingdirectory", "label selector of guarded StatefulSets")
	cmd.Flags().StringVar(&container, "container", "pingdirectory", "name of the PingDirectory container")
	cmd.Flags().DurationVar(&since, "since", 7*24*time.Hour, "leave out events older than this (0: all)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
