package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/pdguard/pdguard/internal/rollout/specdiff"
	"github.com/pdguard/pdguard/policy"
	"github.com/pdguard/pdguard/webhook"
)

func newCheckCommand() *cobra.Command {
	var (
		flags                  guardFlags
		oldFile, newFile, pods string
		name, user, output     string
		groups                 []string
	)
	cmd := &cobra.Command{
		Use:   "check --new NEW.yaml [--old LIVE.yaml] [--pods PODS.yaml]",
		Short: "Decide a StatefulSet change offline, exactly as the webhooks would",
		Long: `check runs pdguard's mutating then validating decision on one change, as the API server
would: --old is the live object (kubectl get statefulset NAME -o yaml; absent means CREATE),
--new the requested one (helm template output is fine: other documents are ignored), --pods
the StatefulSet's pods (kubectl get pods -l ... -o yaml). Exit code 0 allowed, 1 denied,
2 bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "json" && output != "text" {
				return badInput(fmt.Errorf("-o must be json or text, got %q", output))
			}
			if newFile == "" {
				return badInput(errors.New("--new is required: the requested StatefulSet (a file, or - for stdin)"))
			}
			opts, sel, err := flags.options()
			if err != nil {
				return badInput(err)
			}
			req := &policy.Request{Operation: "CREATE", User: authenticationv1.UserInfo{Username: user, Groups: groups}}
			if req.New, err = readStatefulSet(cmd.InOrStdin(), newFile, name, sel); err != nil {
				return badInput(err)
			}
			if oldFile != "" {
				req.Operation = "UPDATE"
				if req.Old, err = readStatefulSet(cmd.InOrStdin(), oldFile, req.New.Name, sel); err != nil {
					return badInput(err)
				}
				if req.New.Namespace == "" {
					req.New.Namespace = req.Old.Namespace
				}
			}
			if pods != "" {
				if req.Pods, err = readPods(cmd.InOrStdin(), pods); err != nil {
					return badInput(err)
				}
			}
			// helm template output carries no defaults and kubectl get output carries them
			// all: fill them on both so only real changes count.
			specdiff.Normalize(req.New)
			if req.Old != nil {
				specdiff.Normalize(req.Old)
			}
			if !sel.Matches(labels.Set(req.New.Labels)) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: statefulset %s does not match --selector %q: the webhooks would not be called for it\n", req.New.Name, flags.selector)
			}
			engine, err := flags.engine()
			if err != nil {
				return badInput(err)
			}
			res, err := webhook.NewGuard(engine, opts).Check(cmd.Context(), req)
			if err != nil {
				return badInput(err)
			}
			if err := printCheck(cmd.OutOrStdout(), output, req, res); err != nil {
				return err
			}
			if !res.Allowed {
				return &exitCodeError{Code: exitDenied}
			}
			return nil
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVar(&oldFile, "old", "", "live StatefulSet YAML/JSON (absent: the change is a CREATE)")
	cmd.Flags().StringVar(&newFile, "new", "", "requested StatefulSet YAML/JSON, or helm template output")
	cmd.Flags().StringVar(&pods, "pods", "", "the StatefulSet's pods: a List or multi-document YAML")
	cmd.Flags().StringVar(&name, "name", "", "which StatefulSet to take when --new holds several guarded ones")
	cmd.Flags().StringVar(&user, "user", "kubernetes-admin", "user the request is made as")
	cmd.Flags().StringSliceVar(&groups, "group", nil, "group of the user (repeat)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "json or text")
	return cmd
}

func printCheck(w io.Writer, output string, req *policy.Request, res *webhook.CheckResult) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	var b strings.Builder
	verdict := "ALLOWED"
	if !res.Allowed {
		verdict = "DENIED"
	}
	fmt.Fprintf(&b, "%s %s %s/%s", verdict, req.Operation, req.New.Namespace, req.New.Name)
	if len(res.Rules) > 0 {
		fmt.Fprintf(&b, " (rules: %s)", strings.Join(res.Rules, ", "))
	}
	b.WriteString("\n")
	for _, op := range res.Patch {
		val, _ := json.Marshal(op.Value)
		fmt.Fprintf(&b, "  patch: %s %s %s\n", op.Operation, op.Path, val)
	}
	for _, r := range res.Reasons {
		fmt.Fprintf(&b, "  denied: %s\n", r)
	}
	for _, wmsg := range res.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", wmsg)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// readDocuments splits a YAML or JSON file (or - for stdin) into documents, unwrapping
// Lists, and returns each with its kind.
func readDocuments(stdin io.Reader, path string) ([]document, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var docs []document
	for i := 1; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s: document %d is not valid YAML or JSON: %w", path, i, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		var head struct {
			Kind  string            `json:"kind"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("%s: document %d is not a Kubernetes object: %w", path, i, err)
		}
		if strings.HasSuffix(head.Kind, "List") {
			for _, item := range head.Items {
				var ih struct {
					Kind string `json:"kind"`
				}
				_ = json.Unmarshal(item, &ih)
				docs = append(docs, document{kind: ih.Kind, raw: item, where: fmt.Sprintf("%s: document %d", path, i)})
			}
			continue
		}
		docs = append(docs, document{kind: head.Kind, raw: raw, where: fmt.Sprintf("%s: document %d", path, i)})
	}
	return docs, nil
}

type document struct {
	kind  string
	raw   []byte
	where string
}

func readStatefulSet(stdin io.Reader, path, name string, sel labels.Selector) (*appsv1.StatefulSet, error) {
	docs, err := readDocuments(stdin, path)
	if err != nil {
		return nil, err
	}
	var found []*appsv1.StatefulSet
	for _, d := range docs {
		if d.kind != "StatefulSet" {
			continue
		}
		sts := &appsv1.StatefulSet{}
		if err := yaml.Unmarshal(d.raw, sts); err != nil {
			return nil, fmt.Errorf("%s: not a valid StatefulSet: %w", d.where, err)
		}
		if name != "" && sts.Name != name {
			continue
		}
		found = append(found, sts)
	}
	if len(found) > 1 {
		var guarded []*appsv1.StatefulSet
		for _, s := range found {
			if sel.Matches(labels.Set(s.Labels)) {
				guarded = append(guarded, s)
			}
		}
		if len(guarded) > 0 {
			found = guarded
		}
	}
	switch len(found) {
	case 0:
		if name != "" {
			return nil, fmt.Errorf("%s holds no StatefulSet named %q", path, name)
		}
		return nil, fmt.Errorf("%s holds no StatefulSet", path)
	case 1:
		return found[0], nil
	default:
		names := make([]string, len(found))
		for i, s := range found {
			names[i] = s.Name
		}
		return nil, fmt.Errorf("%s holds %d StatefulSets (%s): pick one with --name", path, len(found), strings.Join(names, ", "))
	}
}

func readPods(stdin io.Reader, path string) ([]corev1.Pod, error) {
	docs, err := readDocuments(stdin, path)
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	for _, d := range docs {
		if d.kind != "Pod" {
			return nil, fmt.Errorf("%s is a %q, want Pod", d.where, d.kind)
		}
		var p corev1.Pod
		if err := yaml.Unmarshal(d.raw, &p); err != nil {
			return nil, fmt.Errorf("%s: not a valid Pod: %w", d.where, err)
		}
		pods = append(pods, p)
	}
	return pods, nil
}
