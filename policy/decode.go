package policy

import (
	"fmt"
	"math"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Results are read straight from the AST for the same reason the input is built in it.
// Anything unexpected is an error: the webhooks fail closed on it, which beats acting on a
// half-read decision.

const (
	mutateQuery   = "data.pdguard.framework.mutate_result"
	validateQuery = "data.pdguard.framework.validate_result"
)

func decodeMutation(v ast.Value) (Mutation, error) {
	var m Mutation
	obj, err := asObject(v, mutateQuery)
	if err != nil {
		return m, err
	}
	if t := obj.Get(keyPartition); t != nil {
		if _, null := t.Value.(ast.Null); !null {
			p, err := asInt32(t.Value, mutateQuery+".partition")
			if err != nil {
				return m, err
			}
			m.Partition = &p
		}
	}
	if m.RecordCanary, err = boolField(obj, keyRecordCanary, mutateQuery); err != nil {
		return m, err
	}
	if m.CloseCanary, err = boolField(obj, keyCloseCanary, mutateQuery); err != nil {
		return m, err
	}
	if m.Fired, err = findingsField(obj, keyFired, mutateQuery); err != nil {
		return m, err
	}
	if m.Warnings, err = findingsField(obj, keyWarnings, mutateQuery); err != nil {
		return m, err
	}
	if m.Shown, err = findingsField(obj, keyShown, mutateQuery); err != nil {
		return m, err
	}
	if m.Apply, err = boolField(obj, keyApply, mutateQuery); err != nil {
		return m, err
	}
	if m.Mode, err = modeField(obj, mutateQuery); err != nil {
		return m, err
	}
	return m, nil
}

func decodeValidation(v ast.Value) (Validation, error) {
	var r Validation
	obj, err := asObject(v, validateQuery)
	if err != nil {
		return r, err
	}
	if r.Allowed, err = boolField(obj, keyAllowed, validateQuery); err != nil {
		return r, err
	}
	if r.Denials, err = findingsField(obj, keyDenials, validateQuery); err != nil {
		return r, err
	}
	if r.Warnings, err = findingsField(obj, keyWarnings, validateQuery); err != nil {
		return r, err
	}
	if r.Violations, err = findingsField(obj, keyViolations, validateQuery); err != nil {
		return r, err
	}
	if r.Mode, err = modeField(obj, validateQuery); err != nil {
		return r, err
	}
	if r.Overridden, err = boolField(obj, keyOverridden, validateQuery); err != nil {
		return r, err
	}
	if !r.Allowed && len(r.Denials) == 0 {
		return r, fmt.Errorf("%s denies without saying why (no denials)", validateQuery)
	}
	return r, nil
}

func asObject(v ast.Value, path string) (ast.Object, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s is %s, not an object", path, ast.ValueName(v))
	}
	return obj, nil
}

func field(obj ast.Object, key *ast.Term, path string) (ast.Value, error) {
	t := obj.Get(key)
	if t == nil {
		return nil, fmt.Errorf("%s has no %s", path, string(key.Value.(ast.String)))
	}
	return t.Value, nil
}

func boolField(obj ast.Object, key *ast.Term, path string) (bool, error) {
	v, err := field(obj, key, path)
	if err != nil {
		return false, err
	}
	b, ok := v.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%s.%s is %s, not a boolean", path, string(key.Value.(ast.String)), ast.ValueName(v))
	}
	return bool(b), nil
}

func modeField(obj ast.Object, path string) (string, error) {
	v, err := field(obj, keyMode, path)
	if err != nil {
		return "", err
	}
	s, ok := v.(ast.String)
	switch {
	case !ok:
		return "", fmt.Errorf("%s.mode is %s, not a string", path, ast.ValueName(v))
	case s != "enforce" && s != "warn" && s != "dryrun":
		return "", fmt.Errorf("%s.mode is %q, not enforce, warn or dryrun", path, string(s))
	}
	return string(s), nil
}

func asInt32(v ast.Value, path string) (int32, error) {
	n, ok := v.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("%s is %s, not a number", path, ast.ValueName(v))
	}
	i, ok := n.Int64()
	if !ok || i < 0 || i > math.MaxInt32 {
		return 0, fmt.Errorf("%s is %s, not a partition", path, n)
	}
	return int32(i), nil
}

// findingsField reads a list of {rule, message}. Policy-directory modules add to these
// lists, so the errors say which element is wrong.
func findingsField(obj ast.Object, key *ast.Term, path string) ([]Finding, error) {
	v, err := field(obj, key, path)
	if err != nil {
		return nil, err
	}
	path = path + "." + string(key.Value.(ast.String))
	arr, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("%s is %s, not an array", path, ast.ValueName(v))
	}
	if arr.Len() == 0 {
		return nil, nil
	}
	out := make([]Finding, arr.Len())
	for i := range arr.Len() {
		elem := arr.Elem(i)
		obj, ok := elem.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("%s[%d]%s is %v, not an object with rule and message", path, i, from(elem), elem)
		}
		rule, ok1 := stringAt(obj, keyRule)
		msg, ok2 := stringAt(obj, keyMessage)
		if !ok1 || !ok2 || rule == "" {
			return nil, fmt.Errorf("%s[%d]%s is %v, not an object with string rule and message", path, i, from(elem), elem)
		}
		out[i] = Finding{Rule: rule, Message: msg}
		if d := obj.Get(keyDetails); d != nil {
			if out[i].Details, err = stringList(d.Value); err != nil {
				return nil, fmt.Errorf("%s[%d]%s: details %w", path, i, from(elem), err)
			}
		}
	}
	return out, nil
}

func stringAt(obj ast.Object, key *ast.Term) (string, bool) {
	t := obj.Get(key)
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

// from says which module produced a term, when evaluation kept its location.
func from(t *ast.Term) string {
	if t.Location == nil || t.Location.File == "" {
		return ""
	}
	return fmt.Sprintf(" (from %s:%d)", t.Location.File, t.Location.Row)
}

// stringList reads a finding's details: an array of strings.
func stringList(v ast.Value) ([]string, error) {
	arr, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("is %s, not an array of strings", ast.ValueName(v))
	}
	out := make([]string, 0, arr.Len())
	for j := range arr.Len() {
		str, ok := arr.Elem(j).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("[%d] is %v, not a string", j, arr.Elem(j))
		}
		out = append(out, string(str))
	}
	return out, nil
}
