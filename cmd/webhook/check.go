package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/pdguard/pdguard/internal/manifest"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/rollout/specdiff"
	"github.com/pdguard/pdguard/policy"
	"github.com/pdguard/pdguard/webhook"
)

// now is the clock of check and status; golden tests fix it.
var now = time.Now

// NoLiveStatusRule names the finding of an UPDATE whose old object carries no status.
const noLiveStatusRule = "no-live-status"

type checkOptions struct {
	guard              guardFlags
	kube               kubeFlags
	oldPaths, newPaths []string
	podPaths           []string
	name, user, output string
	groups             []string
	verbose            bool
	live               bool
	verdictKey         string
}

var checkFormats = []string{"text", "json", "junit", "markdown"}

func newCheckCommand() *cobra.Command {
	o := checkOptions{kube: newKubeFlags(false)}
	cmd := &cobra.Command{
		Use:   "check --new NEW [--old OLD | --live] [--pods PODS] [-n NS] [-o text|json|junit|markdown]",
		Short: "Decide the StatefulSet changes of a release offline or against the cluster, exactly as the webhooks would",
		Long: `check runs pdguard's mutating then validating decision on every StatefulSet of a release, as the
API server would. --new is the requested release: helm template output, a directory of manifests,
a multi-document file or - for standard input. --old is what the cluster holds (kubectl get -o yaml
output, same forms); a StatefulSet of --new with no namespace/name match in --old is a CREATE.
--live reads the old objects, their pods and verdicts from the cluster through the kubeconfig
instead, so that ` + "`helm template ... | webhook check --live --new -`" + ` answers what the webhooks would
answer now. --pods gives the pods offline (kubectl get pods -o yaml). Manifests without a namespace
get -n, else the kubeconfig's namespace. Objects of other kinds are ignored (-v lists them).

Exit code 0: every StatefulSet allowed; 1: one or more denied; 2: bad input.`,
		Example: `  helm template pd ping-devops -f values.yaml | webhook check --live --new -
  webhook check --old live.yaml --new rendered/ -o junit > pdguard.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := o.run(cmd)
			if err != nil {
				var coded *exitCodeError
				if errors.As(err, &coded) {
					return err
				}
				return badInput(err)
			}
			if err := printCheckReport(cmd.OutOrStdout(), o.output, rep, o.verbose); err != nil {
				return err
			}
			if !rep.Allowed {
				return &exitCodeError{Code: exitDenied}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	o.guard.register(fs)
	o.kube.AddFlags(fs)
	fs.StringArrayVar(&o.oldPaths, "old", nil, "what the cluster holds: a file, a directory or - (repeat for more); absent: every StatefulSet is a CREATE")
	fs.StringArrayVar(&o.newPaths, "new", nil, "the requested release: helm template output, a file, a directory or - (repeat for more)")
	fs.StringArrayVar(&o.podPaths, "pods", nil, "the StatefulSets' pods offline: a List or multi-document YAML (repeat for more)")
	fs.StringVar(&o.name, "name", "", "check only the StatefulSets with this name")
	fs.StringVar(&o.user, "user", "kubernetes-admin", "user the requests are made as")
	fs.StringSliceVar(&o.groups, "group", nil, "group of the user (repeat)")
	fs.StringVarP(&o.output, "output", "o", "text", strings.Join(checkFormats, ", "))
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "list the ignored objects of other kinds")
	fs.BoolVar(&o.live, "live", false, "read the old StatefulSets, their pods and verdicts from the cluster")
	fs.StringVar(&o.verdictKey, "verdict-key-secret", "pdguard/pdguard-verdict-key", "with --live: NAMESPACE/NAME of pdguard's verdict key Secret, to check the verdicts' signatures")
	return cmd
}

// checkReport is what check prints.
type checkReport struct {
	Allowed bool           `json:"allowed"`
	Objects []objectResult `json:"objects"`
	// Ignored are the objects of other kinds in --new.
	Ignored []ignoredObject `json:"ignored"`
	// Notes say what the check could not see.
	Notes []string `json:"notes,omitempty"`
}

type objectResult struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Source    string `json:"source"`
	Operation string `json:"operation"`
	// Guarded is false for a StatefulSet the webhooks are not called for (--selector).
	Guarded  bool                           `json:"guarded"`
	Allowed  bool                           `json:"allowed"`
	Patch    []jsonpatch.JsonPatchOperation `json:"patch"`
	Findings []webhook.CheckFinding         `json:"findings"`
}

func (r objectResult) key() string { return r.Namespace + "/" + r.Name }

type ignoredObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Source    string `json:"source"`
}

// oldState is what the cluster holds: the old StatefulSets and their pods.
type oldState struct {
	release *manifest.Release
	pods    []corev1.Pod
	// trust checks verdict signatures; nil trusts every verdict.
	trust rollout.VerdictTrust
	notes []string
	live  bool
}

func (o *checkOptions) run(cmd *cobra.Command) (*checkReport, error) {
	if !slices.Contains(checkFormats, o.output) {
		return nil, fmt.Errorf("-o must be one of %s, got %q", strings.Join(checkFormats, ", "), o.output)
	}
	if len(o.newPaths) == 0 {
		return nil, errors.New("--new is required: the requested release (helm template output, a file, a directory, or - for stdin)")
	}
	if o.live && len(o.oldPaths) > 0 {
		return nil, errors.New("--live reads the old objects from the cluster: leave out --old")
	}
	if o.live && len(o.podPaths) > 0 {
		return nil, errors.New("--live reads the pods from the cluster: leave out --pods")
	}
	if n := countStdin(o.oldPaths, o.newPaths, o.podPaths); n > 1 {
		return nil, fmt.Errorf("standard input (-) can be read once, it is given %d times", n)
	}
	cfg, sel, err := o.guard.options()
	if err != nil {
		return nil, err
	}
	ns, explicit, err := o.kube.namespace()
	if err != nil {
		if o.live || explicit {
			return nil, err
		}
		// Offline with no kubeconfig: manifests without a namespace land in default, as
		// kubectl apply would put them.
		ns, explicit = "default", false
	}
	stdin := cmd.InOrStdin()
	newDocs, err := manifest.Read(stdin, o.newPaths...)
	if err != nil {
		return nil, err
	}
	release, err := manifest.Collect(newDocs, ns)
	if err != nil {
		return nil, err
	}
	if len(release.StatefulSets) == 0 {
		return nil, fmt.Errorf("%s holds no StatefulSet (%d objects of other kinds)", strings.Join(o.newPaths, ", "), len(release.Ignored))
	}
	if o.name != "" {
		release.StatefulSets = slices.DeleteFunc(release.StatefulSets, func(s manifest.StatefulSet) bool { return s.Name != o.name })
		if len(release.StatefulSets) == 0 {
			return nil, fmt.Errorf("%s holds no StatefulSet named %q", strings.Join(o.newPaths, ", "), o.name)
		}
	}

	var old *oldState
	if o.live {
		old, err = o.readLive(cmd.Context(), release)
	} else {
		old, err = o.readOld(stdin, ns)
	}
	if err != nil {
		return nil, err
	}
	cfg.Trust = old.trust
	engine, err := o.guard.engine()
	if err != nil {
		return nil, err
	}
	guard := webhook.NewGuard(engine, cfg).WithClock(now)
	rep := &checkReport{Allowed: true, Objects: []objectResult{}, Ignored: []ignoredObject{}, Notes: old.notes}
	for _, d := range release.Ignored {
		rep.Ignored = append(rep.Ignored, ignoredObject{Kind: d.Kind, Namespace: d.Namespace, Name: d.Name, Source: d.Source})
	}
	for _, s := range release.StatefulSets {
		if !s.NamespaceGiven && !explicit && !old.live {
			// helm template leaves the namespace out; kubectl get prints it.
			if same := old.release.ByName(s.Name); len(same) == 1 {
				s.Namespace = same[0].Namespace
			}
		}
		res, err := o.decide(cmd.Context(), guard, sel, s, old)
		if err != nil {
			return nil, err
		}
		rep.Allowed = rep.Allowed && res.Allowed
		rep.Objects = append(rep.Objects, res)
	}
	return rep, nil
}

func countStdin(lists ...[]string) int {
	n := 0
	for _, l := range lists {
		for _, p := range l {
			if p == manifest.Stdin {
				n++
			}
		}
	}
	return n
}

func (o *checkOptions) readOld(stdin io.Reader, ns string) (*oldState, error) {
	old := &oldState{release: &manifest.Release{}}
	if len(o.oldPaths) > 0 {
		docs, err := manifest.Read(stdin, o.oldPaths...)
		if err != nil {
			return nil, err
		}
		if old.release, err = manifest.Collect(docs, ns); err != nil {
			return nil, err
		}
	}
	if len(o.podPaths) > 0 {
		docs, err := manifest.Read(stdin, o.podPaths...)
		if err != nil {
			return nil, err
		}
		if old.pods, err = manifest.Pods(docs); err != nil {
			return nil, err
		}
		old.notes = append(old.notes, "verdicts are trusted unchecked: offline, check cannot read pdguard's verdict key, so the signatures of the verdicts on --pods are not checked; the webhook checks them (use --live)")
	}
	return old, nil
}

func (o *checkOptions) decide(ctx context.Context, guard *webhook.Guard, sel labels.Selector, s manifest.StatefulSet, old *oldState) (objectResult, error) {
	res := objectResult{Kind: "StatefulSet", Namespace: s.Namespace, Name: s.Name, Source: s.Source, Operation: "CREATE",
		Allowed: true, Patch: []jsonpatch.JsonPatchOperation{}, Findings: []webhook.CheckFinding{}}
	req := &policy.Request{Operation: "CREATE", New: s.StatefulSet, User: authenticationv1.UserInfo{Username: o.user, Groups: o.groups}}
	if prev, ok := old.release.Find(s.Key()); ok {
		req.Operation, req.Old = "UPDATE", prev.StatefulSet
		res.Operation = "UPDATE"
	}
	if !sel.Matches(labels.Set(s.Labels)) {
		res.Findings = append(res.Findings, webhook.CheckFinding{Rule: "not-selected", Severity: webhook.SeverityInfo,
			Message: fmt.Sprintf("StatefulSet %s does not match --selector %q: the webhooks are not called for it", res.key(), o.guard.selector)})
		return res, nil
	}
	res.Guarded = true
	for _, p := range old.pods {
		if p.Namespace == s.Namespace || p.Namespace == "" {
			req.Pods = append(req.Pods, p)
		}
	}
	// helm template output carries no defaults and kubectl get output carries them all:
	// fill them on both so only real changes count.
	specdiff.Normalize(req.New)
	if req.Old != nil {
		specdiff.Normalize(req.Old)
	}
	out, err := guard.Check(ctx, req)
	if err != nil {
		return res, fmt.Errorf("%s: StatefulSet %s: %w", s.Source, res.key(), err)
	}
	res.Allowed, res.Patch, res.Findings = out.Allowed, out.Patch, out.Findings
	if req.Old != nil && !hasStatus(req.Old) {
		res.Findings = append(res.Findings, webhook.CheckFinding{Rule: noLiveStatusRule, Severity: webhook.SeverityWarning,
			Message: fmt.Sprintf("no live status: the promotion gate cannot be checked offline; use --live. The old StatefulSet %s carries no status (a manifest, not what kubectl get prints), so whether a canary is open and proven is unknown", res.key())})
	}
	return res, nil
}

// hasStatus reports whether the StatefulSet controller ever wrote the object's status.
func hasStatus(sts *appsv1.StatefulSet) bool {
	st := sts.Status
	return st.ObservedGeneration > 0 || st.CurrentRevision != "" || st.UpdateRevision != ""
}
