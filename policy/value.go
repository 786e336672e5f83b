package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// The input document is built straight into OPA's AST because a JSON round trip per
// admission request costs more than the policy evaluation itself. It must stay identical to
// what encoding/json makes of Input (TestInputValueMatchesJSON checks it field by field).

// Object keys are built once and shared: terms are read-only during evaluation.
var (
	keyPhase           = ast.StringTerm("phase")
	keyOperation       = ast.StringTerm("operation")
	keyNamespace       = ast.StringTerm("namespace")
	keyName            = ast.StringTerm("name")
	keyUser            = ast.StringTerm("user")
	keySettings        = ast.StringTerm("settings")
	keyOld             = ast.StringTerm("old")
	keyNew             = ast.StringTerm("new")
	keyChange          = ast.StringTerm("change")
	keyCanary          = ast.StringTerm("canary")
	keyPods            = ast.StringTerm("pods")
	keyUsername        = ast.StringTerm("username")
	keyGroups          = ast.StringTerm("groups")
	keyEnforcement     = ast.StringTerm("enforcement")
	keyCanaryReplicas  = ast.StringTerm("canary_replicas")
	keySingleReplica   = ast.StringTerm("single_replica")
	keyOverrideGroups  = ast.StringTerm("override_groups")
	keySoakSeconds     = ast.StringTerm("soak_seconds")
	keyReplicas        = ast.StringTerm("replicas")
	keyPartition       = ast.StringTerm("partition")
	keyHasPartition    = ast.StringTerm("has_partition")
	keyImage           = ast.StringTerm("image")
	keyAnnotations     = ast.StringTerm("annotations")
	keyCurrentRevision = ast.StringTerm("current_revision")
	keyUpdateRevision  = ast.StringTerm("update_revision")
	keyRef             = ast.StringTerm("ref")
	keyRepository      = ast.StringTerm("repository")
	keyTag             = ast.StringTerm("tag")
	keyDigest          = ast.StringTerm("digest")
	keyVersion         = ast.StringTerm("version")
	keyKnown           = ast.StringTerm("known")
	keyParts           = ast.StringTerm("parts")
	keyText            = ast.StringTerm("text")
	keyVersionChanged  = ast.StringTerm("version_changed")
	keyConfigPaths     = ast.StringTerm("config_paths")
	keyVersionOrder    = ast.StringTerm("version_order")
	keyRevertsCanary   = ast.StringTerm("reverts_canary")
	keyOpen            = ast.StringTerm("open")
	keyStableImage     = ast.StringTerm("stable_image")
	keyRecord          = ast.StringTerm("record")
	keyFromImage       = ast.StringTerm("from_image")
	keyToImage         = ast.StringTerm("to_image")
	keyFromVersion     = ast.StringTerm("from_version")
	keyToVersion       = ast.StringTerm("to_version")
	keyStarted         = ast.StringTerm("started")
	keyRequestedBy     = ast.StringTerm("requested_by")
	keyOrdinal         = ast.StringTerm("ordinal")
	keyRevision        = ast.StringTerm("revision")
	keyReady           = ast.StringTerm("ready")
	keyReadySeconds    = ast.StringTerm("ready_seconds")
	keyContainerID     = ast.StringTerm("container_id")
	keyRestarts        = ast.StringTerm("restarts")
	keyVerdict         = ast.StringTerm("verdict")
	keyVerdictError    = ast.StringTerm("verdict_error")
	keyReason          = ast.StringTerm("reason")
	keyObservedAt      = ast.StringTerm("observed_at")
	keyOnUpdateRev     = ast.StringTerm("on_update_revision")
	keySoaked          = ast.StringTerm("soaked")
	keyEvidence        = ast.StringTerm("evidence")
	keyProven          = ast.StringTerm("proven")
	keyContainer       = ast.StringTerm("container")
	keyKeys            = ast.StringTerm("keys")
	keyOverrideReason  = ast.StringTerm("override_reason")
	keyOverrideUsed    = ast.StringTerm("override_used")
	keyReplaceProfile  = ast.StringTerm("replace_profile")

	// Read back from results only.
	keyRecordCanary = ast.StringTerm("record_canary")
	keyCloseCanary  = ast.StringTerm("close_canary")
	keyFired        = ast.StringTerm("fired")
	keyWarnings     = ast.StringTerm("warnings")
	keyMode         = ast.StringTerm("mode")
	keyRule         = ast.StringTerm("rule")
	keyMessage      = ast.StringTerm("message")
	keyDetails      = ast.StringTerm("details")
	keyAllowed      = ast.StringTerm("allowed")
	keyDenials      = ast.StringTerm("denials")
	keyViolations   = ast.StringTerm("violations")
	keyOverridden   = ast.StringTerm("overridden")
	keyShown        = ast.StringTerm("shown")
	keyApply        = ast.StringTerm("apply")
)

func item(k, v *ast.Term) [2]*ast.Term { return [2]*ast.Term{k, v} }

// termBuilder hands out string terms from a slab, halving the allocations per string.
type termBuilder struct {
	slab []ast.Term
}

func (b *termBuilder) str(s string) *ast.Term {
	if s == "" {
		return ast.InternedEmptyString
	}
	if len(b.slab) == 0 {
		b.slab = make([]ast.Term, 16)
	}
	t := &b.slab[0]
	b.slab = b.slab[1:]
	t.Value = ast.String(s)
	return t
}

func num[T int | int32 | int64](n T) *ast.Term { return ast.InternedTerm(int64(n)) }

func boolean(b bool) *ast.Term { return ast.InternedTerm(b) }

func (b *termBuilder) stringList(ss []string) *ast.Term {
	if ss == nil {
		return ast.InternedNullTerm
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = b.str(s)
	}
	return ast.ArrayTerm(terms...)
}

func (b *termBuilder) stringMap(m map[string]string) *ast.Term {
	if m == nil {
		return ast.InternedNullTerm
	}
	obj := ast.NewObjectWithCapacity(len(m))
	for k, v := range m {
		obj.Insert(b.str(k), b.str(v))
	}
	return ast.NewTerm(obj)
}

func inputValue(in *Input) ast.Value {
	b := &termBuilder{slab: make([]ast.Term, stringCount(in))}
	old := ast.InternedNullTerm
	if in.Old != nil {
		old = b.summaryTerm(in.Old)
	}
	pods := ast.InternedNullTerm
	if in.Pods != nil {
		terms := make([]*ast.Term, len(in.Pods))
		for i := range in.Pods {
			terms[i] = b.podTerm(&in.Pods[i])
		}
		pods = ast.ArrayTerm(terms...)
	}
	return ast.NewObject(
		item(keyPhase, b.str(in.Phase)),
		item(keyOperation, b.str(in.Operation)),
		item(keyNamespace, b.str(in.Namespace)),
		item(keyName, b.str(in.Name)),
		item(keyUser, ast.ObjectTerm(
			item(keyUsername, b.str(in.User.Username)),
			item(keyGroups, b.stringList(in.User.Groups)),
		)),
		item(keySettings, ast.ObjectTerm(
			item(keyEnforcement, b.str(in.Settings.Enforcement)),
			item(keyCanaryReplicas, num(in.Settings.CanaryReplicas)),
			item(keySingleReplica, b.str(in.Settings.SingleReplica)),
			item(keyOverrideGroups, b.stringList(in.Settings.OverrideGroups)),
			item(keySoakSeconds, num(in.Settings.SoakSeconds)),
			item(keyContainer, b.str(in.Settings.Container)),
		)),
		item(keyOld, old),
		item(keyNew, b.summaryTerm(&in.New)),
		item(keyChange, b.changeTerm(&in.Change)),
		item(keyCanary, b.canaryTerm(&in.Canary)),
		item(keyPods, pods),
		item(keyKeys, b.keysTerm(&in.Keys)),
	)
}

// Every real input carries the same keys, so their object is built once.
var (
	annotationKeys     = AnnotationKeys()
	annotationKeysTerm = (&termBuilder{}).buildKeys(&annotationKeys)
)

func (b *termBuilder) keysTerm(k *Keys) *ast.Term {
	if *k == annotationKeys {
		return annotationKeysTerm
	}
	return b.buildKeys(k)
}

func (b *termBuilder) buildKeys(k *Keys) *ast.Term {
	return ast.ObjectTerm(
		item(keyEnforcement, b.str(k.Enforcement)),
		item(keyOverrideReason, b.str(k.OverrideReason)),
		item(keyOverrideUsed, b.str(k.OverrideUsed)),
		item(keyCanary, b.str(k.Canary)),
		item(keyReplaceProfile, b.str(k.ReplaceProfile)),
	)
}

func (b *termBuilder) summaryTerm(s *Summary) *ast.Term {
	return ast.ObjectTerm(
		item(keyReplicas, num(s.Replicas)),
		item(keyPartition, num(s.Partition)),
		item(keyHasPartition, boolean(s.HasPartition)),
		item(keyImage, b.imageTerm(&s.Image)),
		item(keyAnnotations, b.stringMap(s.Annotations)),
		item(keyCurrentRevision, b.str(s.CurrentRevision)),
		item(keyUpdateRevision, b.str(s.UpdateRevision)),
	)
}

func (b *termBuilder) imageTerm(img *Image) *ast.Term {
	parts := ast.InternedNullTerm
	if img.Version.Parts != nil {
		terms := make([]*ast.Term, len(img.Version.Parts))
		for i, p := range img.Version.Parts {
			terms[i] = num(p)
		}
		parts = ast.ArrayTerm(terms...)
	}
	return ast.ObjectTerm(
		item(keyRef, b.str(img.Ref)),
		item(keyRepository, b.str(img.Repository)),
		item(keyTag, b.str(img.Tag)),
		item(keyDigest, b.str(img.Digest)),
		item(keyVersion, ast.ObjectTerm(
			item(keyKnown, boolean(img.Version.Known)),
			item(keyParts, parts),
			item(keyText, b.str(img.Version.Text)),
		)),
	)
}

func (b *termBuilder) changeTerm(c *Change) *ast.Term {
	order := ast.InternedNullTerm
	if c.VersionOrder != nil {
		order = num(*c.VersionOrder)
	}
	return ast.ObjectTerm(
		item(keyVersionChanged, boolean(c.VersionChanged)),
		item(keyConfigPaths, b.stringList(c.ConfigPaths)),
		item(keyVersionOrder, order),
		item(keyRevertsCanary, boolean(c.RevertsCanary)),
	)
}

func (b *termBuilder) canaryTerm(c *Canary) *ast.Term {
	record := ast.InternedNullTerm
	if r := c.Record; r != nil {
		record = ast.ObjectTerm(
			item(keyFromImage, b.str(r.FromImage)),
			item(keyToImage, b.str(r.ToImage)),
			item(keyFromVersion, b.str(r.FromVersion)),
			item(keyToVersion, b.str(r.ToVersion)),
			item(keyStarted, b.str(r.Started)),
			item(keyRequestedBy, b.str(r.RequestedBy)),
		)
	}
	return ast.ObjectTerm(
		item(keyOpen, boolean(c.Open)),
		item(keyStableImage, b.imageTerm(&c.StableImage)),
		item(keyRecord, record),
	)
}

func (b *termBuilder) podTerm(p *Pod) *ast.Term {
	verdict := ast.InternedNullTerm
	if v := p.Verdict; v != nil {
		verdict = ast.ObjectTerm(
			item(keyVerdict, b.str(v.Verdict)),
			item(keyRevision, b.str(v.Revision)),
			item(keyContainerID, b.str(v.ContainerID)),
			item(keyReason, b.str(v.Reason)),
			item(keyObservedAt, b.str(v.ObservedAt)),
		)
	}
	return ast.ObjectTerm(
		item(keyName, b.str(p.Name)),
		item(keyOrdinal, num(p.Ordinal)),
		item(keyRevision, b.str(p.Revision)),
		item(keyReady, boolean(p.Ready)),
		item(keyReadySeconds, num(p.ReadySecs)),
		item(keyContainerID, b.str(p.ContainerID)),
		item(keyRestarts, num(p.Restarts)),
		item(keyVerdict, verdict),
		item(keyVerdictError, b.str(p.VerdictError)),
		item(keyOnUpdateRev, boolean(p.OnUpdateRevision)),
		item(keySoaked, boolean(p.Soaked)),
		item(keyEvidence, b.str(p.Evidence)),
		item(keyProven, boolean(p.Proven)),
	)
}

// stringCount is about how many string terms inputValue needs, so that one slab holds them.
// A short count only costs another slab.
func stringCount(in *Input) int {
	n := 13 + len(in.User.Groups) + len(in.Settings.OverrideGroups) + len(in.Change.ConfigPaths) +
		2*len(in.New.Annotations) + 7*len(in.Pods)
	if in.Old != nil {
		n += 8 + 2*len(in.Old.Annotations)
	}
	return n
}
