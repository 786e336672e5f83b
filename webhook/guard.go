package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	evanjsonpatch "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/policy"
)

// Guard makes admission decisions for guarded StatefulSets.
type Guard struct {
	engine *policy.Engine
	cfg    policy.Config
	now    func() time.Time
}

// NewGuard returns a guard that decides with the engine's policy and the server's settings.
func NewGuard(engine *policy.Engine, cfg policy.Config) *Guard {
	return &Guard{engine: engine, cfg: cfg, now: time.Now}
}

// WithClock returns a copy of the guard that reads time from now (tests, replays).
func (g *Guard) WithClock(now func() time.Time) *Guard {
	c := *g
	c.now = now
	return &c
}

// MutateResult is the mutating webhook's answer.
type MutateResult struct {
	// Patch is empty in dryrun mode and when no rule changed the object.
	Patch    []jsonpatch.JsonPatchOperation
	Rules    []string
	Warnings []string
	Mode     string
	Decision policy.Mutation
}

// Outcome classifies the answer for the audit record.
func (r *MutateResult) Outcome() string {
	switch {
	case len(r.Patch) > 0:
		return audit.Patched
	case len(r.Warnings) > 0:
		return audit.Warned
	}
	return audit.Allowed
}

// ValidateResult is the validating webhook's answer.
type ValidateResult struct {
	Allowed  bool
	Rules    []string
	Reasons  []string
	Warnings []string
	Mode     string
	Decision policy.Validation
	// Proof is set when an admitted request lowers an open canary's partition: the
	// verdicts the promotion rests on.
	Proof []rollout.Proof
	// Canary is the canary this admitted request opens (the record the mutating webhook
	// added), nil when it opens none.
	Canary *rollout.CanaryRecord
}

// Outcome classifies the answer for the audit record.
func (r *ValidateResult) Outcome() string {
	switch {
	case !r.Allowed:
		return audit.Denied
	case len(r.Warnings) > 0 || len(r.Rules) > 0:
		return audit.Warned
	}
	return audit.Allowed
}

// Mutate decides what the mutating webhook changes.
func (g *Guard) Mutate(ctx context.Context, req *policy.Request) (*MutateResult, error) {
	in, err := policy.BuildInput("mutate", req, g.cfg, g.now())
	if err != nil {
		var ng *policy.NotGuardedError
		if errors.As(err, &ng) {
			return &MutateResult{Warnings: []string{notGuardedWarning(ng)}}, nil
		}
		return nil, err
	}
	d, err := g.engine.Mutate(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	res := &MutateResult{Mode: d.Mode, Decision: d, Rules: ruleIDs(d.Fired, d.Warnings), Warnings: policy.Messages(d.Shown)}
	if d.Apply {
		res.Patch, err = g.patchFor(req, in, d)
		if err != nil {
			return nil, err
		}
		if err := g.consumeOverride(ctx, req, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// Validate decides whether the (already mutated) object is admitted.
func (g *Guard) Validate(ctx context.Context, req *policy.Request) (*ValidateResult, error) {
	in, err := policy.BuildInput("validate", req, g.cfg, g.now())
	if err != nil {
		var ng *policy.NotGuardedError
		if errors.As(err, &ng) {
			return &ValidateResult{Allowed: true, Rules: []string{}, Warnings: []string{notGuardedWarning(ng)}}, nil
		}
		return nil, err
	}
	d, err := g.engine.Validate(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	res := &ValidateResult{
		Allowed: d.Allowed, Mode: d.Mode, Decision: d,
		Rules:    ruleIDs(d.Violations, d.Warnings),
		Reasons:  policy.Messages(d.Denials),
		Warnings: policy.Messages(d.Warnings),
	}
	if d.Allowed && in.Proof != nil {
		res.Proof = in.Proof
	}
	if d.Allowed {
		res.Canary = openedCanary(req)
	}
	return res, nil
}

// ruleIDs lists the rules behind the findings, each once, in order.
func ruleIDs(lists ...[]policy.Finding) []string {
	var ids []string
	for _, l := range lists {
		for _, f := range l {
			ids = append(ids, f.Rule)
		}
	}
	return dedupe(ids)
}

// consumeOverride spends an override that this request needs: when the validating
// decision on the mutated object is allowed only because of the override, the reason
// moves from pdguard.io/override-reason to pdguard.io/override-used. The validating
// policy honours a changed override-used once, so the override lifts the rules for this
// change and not for the next one, however long the reason had waited on the object.
func (g *Guard) consumeOverride(ctx context.Context, req *policy.Request, res *MutateResult) error {
	reason := strings.TrimSpace(req.New.Annotations[rollout.OverrideReasonAnnotation])
	if reason == "" {
		return nil
	}
	mutated, err := ApplyPatch(req.New, res.Patch)
	if err != nil {
		return err
	}
	trial := *req
	trial.New = mutated
	v, err := g.Validate(ctx, &trial)
	if err != nil {
		return err
	}
	if !v.Decision.Overridden || len(v.Decision.Violations) == 0 {
		return nil
	}
	rules := make([]string, 0, len(v.Decision.Violations))
	for _, f := range v.Decision.Violations {
		rules = append(rules, f.Rule)
	}
	raw, err := json.Marshal(rollout.OverrideUse{Reason: reason, User: req.User.Username, At: g.now().UTC().Truncate(time.Second), Rules: dedupe(rules)})
	if err != nil {
		return err
	}
	res.Patch = append(res.Patch,
		jsonpatch.NewOperation("remove", "/metadata/annotations/pdguard.io~1override-reason", nil),
		jsonpatch.NewOperation("add", "/metadata/annotations/pdguard.io~1override-used", string(raw)),
	)
	res.Rules = dedupe(append(res.Rules, "override"))
	return nil
}

// openedCanary is the canary record the mutating webhook put on this request, when the
// request brings a new one: the validating webhook sees the mutated object.
func openedCanary(req *policy.Request) *rollout.CanaryRecord {
	if req.Old == nil || req.New.Annotations[rollout.CanaryAnnotation] == req.Old.Annotations[rollout.CanaryAnnotation] {
		return nil
	}
	rec, err := rollout.ReadCanaryRecord(req.New)
	if err != nil {
		return nil
	}
	return rec
}

func notGuardedWarning(ng *policy.NotGuardedError) string {
	return "pdguard cannot guard this StatefulSet: " + ng.Reason + "; upgrades of it are not protected. Name the product container with the webhook's --container flag, or remove the selector label."
}

// patchFor turns the policy's mutation into RFC 6902 operations on the request object.
// Operations address only what exists in a defaulted StatefulSet, adding parents that
// may be missing in objects sent without defaults.
func (g *Guard) patchFor(req *policy.Request, in *policy.Input, d policy.Mutation) ([]jsonpatch.JsonPatchOperation, error) {
	var ops []jsonpatch.JsonPatchOperation
	sts := req.New
	if d.Partition != nil {
		current, has := rollout.Partition(sts)
		if !has || current != *d.Partition {
			if sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
				return nil, &RefusedError{Reason: fmt.Sprintf("the image change of StatefulSet %s/%s cannot get a canary because its updateStrategy is OnDelete, which has no partition. Set updateStrategy.type to RollingUpdate (the ping-devops chart's default) and retry, so pdguard can hold every pod but the canary on the stable version", sts.Namespace, sts.Name)}
			}
			switch {
			case sts.Spec.UpdateStrategy.RollingUpdate != nil:
				ops = append(ops, jsonpatch.NewOperation("add", "/spec/updateStrategy/rollingUpdate/partition", *d.Partition))
			case sts.Spec.UpdateStrategy.Type != "":
				ops = append(ops, jsonpatch.NewOperation("add", "/spec/updateStrategy/rollingUpdate", map[string]any{"partition": *d.Partition}))
			default:
				ops = append(ops, jsonpatch.NewOperation("add", "/spec/updateStrategy", map[string]any{
					"type": string(appsv1.RollingUpdateStatefulSetStrategyType), "rollingUpdate": map[string]any{"partition": *d.Partition},
				}))
			}
		}
	}
	const canaryPath = "/metadata/annotations/pdguard.io~1canary"
	switch {
	case d.RecordCanary:
		partition := int32(0)
		if d.Partition != nil {
			partition = *d.Partition
		}
		rec := rollout.CanaryRecord{
			FromImage: in.Canary.StableImage.Ref, ToImage: in.New.Image.Ref,
			FromVersion: versionText(in.Canary.StableImage), ToVersion: versionText(in.New.Image),
			Partition: partition, Started: g.now().UTC().Truncate(time.Second), RequestedBy: req.User.Username,
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if sts.Annotations == nil {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", map[string]any{rollout.CanaryAnnotation: string(raw)}))
		} else {
			ops = append(ops, jsonpatch.NewOperation("add", canaryPath, string(raw)))
		}
	case d.CloseCanary:
		if _, ok := sts.Annotations[rollout.CanaryAnnotation]; ok {
			ops = append(ops, jsonpatch.NewOperation("remove", canaryPath, nil))
		}
	}
	return ops, nil
}

func versionText(img policy.Image) string {
	if img.Version.Known {
		return img.Version.Text
	}
	return ""
}

// ApplyPatch applies JSON patch operations to an object, as the API server does with a
// mutating webhook's answer.
func ApplyPatch(sts *appsv1.StatefulSet, ops []jsonpatch.JsonPatchOperation) (*appsv1.StatefulSet, error) {
	if len(ops) == 0 {
		return sts, nil
	}
	doc, err := json.Marshal(sts)
	if err != nil {
		return nil, err
	}
	rawOps, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	patch, err := evanjsonpatch.DecodePatch(rawOps)
	if err != nil {
		return nil, fmt.Errorf("decoding patch: %w", err)
	}
	patched, err := patch.Apply(doc)
	if err != nil {
		return nil, fmt.Errorf("applying patch %s: %w", rawOps, err)
	}
	out := &appsv1.StatefulSet{}
	if err := json.Unmarshal(patched, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckResult is what `webhook check` prints: mutation then validation, as the API
// server would run them.
type CheckResult struct {
	Allowed  bool                           `json:"allowed"`
	Patch    []jsonpatch.JsonPatchOperation `json:"patch"`
	Rules    []string                       `json:"rules"`
	Reasons  []string                       `json:"reasons"`
	Warnings []string                       `json:"warnings"`
	// Findings are the reasons, warnings and applied mutations with their rule, each once.
	Findings []CheckFinding `json:"findings"`
}

// Severities of a CheckFinding.
const (
	SeverityDeny    = "deny"
	SeverityWarning = "warning"
	// SeverityInfo is a mutation the webhook applies (the patch says what it changes).
	SeverityInfo = "info"
)

// CheckFinding is one rule's finding on a checked request.
type CheckFinding struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// NotGuardedRule names the finding of a StatefulSet pdguard cannot guard.
const NotGuardedRule = "not-guarded"

// Check runs the mutating then the validating decision on one request.
func (g *Guard) Check(ctx context.Context, req *policy.Request) (*CheckResult, error) {
	m, err := g.Mutate(ctx, req)
	var refused *RefusedError
	if errors.As(err, &refused) {
		return &CheckResult{Allowed: false, Patch: []jsonpatch.JsonPatchOperation{}, Rules: []string{}, Reasons: []string{refused.Reason}, Warnings: []string{},
			Findings: []CheckFinding{{Rule: "canary-partition", Severity: SeverityDeny, Message: refused.Reason}}}, nil
	}
	if err != nil {
		return nil, err
	}
	mutated, err := ApplyPatch(req.New, m.Patch)
	if err != nil {
		return nil, err
	}
	vreq := *req
	vreq.New = mutated
	v, err := g.Validate(ctx, &vreq)
	if err != nil {
		return nil, err
	}
	res := &CheckResult{
		Allowed: v.Allowed, Patch: m.Patch,
		Rules:    dedupe(append(append([]string{}, m.Rules...), v.Rules...)),
		Reasons:  nonNil(v.Reasons),
		Warnings: dedupe(append(append([]string{}, m.Warnings...), v.Warnings...)),
	}
	if res.Patch == nil {
		res.Patch = []jsonpatch.JsonPatchOperation{}
	}
	res.Findings = checkFindings(m, v)
	return res, nil
}

func checkFindings(m *MutateResult, v *ValidateResult) []CheckFinding {
	out := []CheckFinding{}
	seen := map[CheckFinding]bool{}
	add := func(severity string, fs []policy.Finding) {
		for _, f := range fs {
			c := CheckFinding{Rule: f.Rule, Severity: severity, Message: f.Message}
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	if m.Mode == "" {
		// Not guarded: the decision never ran, the warning says why.
		for _, w := range m.Warnings {
			out = append(out, CheckFinding{Rule: NotGuardedRule, Severity: SeverityWarning, Message: w})
		}
		return out
	}
	if m.Decision.Apply {
		add(SeverityInfo, m.Decision.Fired)
	}
	add(SeverityWarning, m.Decision.Warnings)
	add(SeverityDeny, v.Decision.Denials)
	add(SeverityWarning, v.Decision.Warnings)
	return out
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// RefusedError is a deterministic refusal found while applying a decision: the request
// can never be admitted as it is, so it is denied with the reason rather than answered as
// an error to retry.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }
