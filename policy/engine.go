package policy

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

//go:embed rego/*.rego
var embedded embed.FS

const (
	embeddedDir = "rego"
	testSuffix  = "_test.rego"
)

// Options configure an Engine.
type Options struct {
	// PolicyDir, when set, holds extra .rego modules (Rego v1) compiled together with the
	// embedded policy, for example a package pdguard.validate module adding violations.
	// Files ending in _test.rego are skipped.
	PolicyDir string
	// CrossCheck evaluates the Rego policy behind every answer of the Go fast path
	// (fastpath.go) and fails the decision when the two differ. Tests set it, so that
	// every request of the test corpora proves the fast path gives the policy's answer.
	CrossCheck bool
}

// Engine evaluates the pdguard policy. It is safe for concurrent use; Reload swaps the
// compiled policy atomically, so a decision never sees half of a module set.
type Engine struct {
	opts     Options
	debounce time.Duration

	reloadMu sync.Mutex
	current  atomic.Pointer[compiled]
}

// compiled is one module set, prepared for both entry points.
type compiled struct {
	mutate   rego.PreparedEvalQuery
	validate rego.PreparedEvalQuery
	// digest identifies the policy-directory modules, so a reload that changes nothing is free.
	digest [sha256.Size]byte
	files  []string
}

type source struct {
	name string
	text string
}

// New compiles the embedded policy and the modules in opts.PolicyDir.
func New(opts Options) (*Engine, error) {
	e := &Engine{opts: opts, debounce: 500 * time.Millisecond}
	if err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Mutate evaluates data.pdguard.framework.mutate_result.
func (e *Engine) Mutate(ctx context.Context, in *Input) (Mutation, error) {
	return decide(ctx, e, in, mutateQuery, fastMutate, (*compiled).evalMutate)
}

// decide answers query through the fast path when only the embedded rules are loaded and
// it is sure, with the policy behind it under Options.CrossCheck, and through the policy
// otherwise.
func decide[T Mutation | Validation](ctx context.Context, e *Engine, in *Input, query string,
	fast func(*Input) (T, bool), eval func(*compiled, context.Context, *Input) (T, error)) (T, error) {
	c := e.current.Load()
	if len(c.files) == 0 {
		if answer, ok := fast(in); ok {
			if e.opts.CrossCheck {
				want, err := eval(c, ctx, in)
				return answer, crossCheck(query, answer, want, err)
			}
			return answer, nil
		}
	}
	return eval(c, ctx, in)
}

func (c *compiled) evalMutate(ctx context.Context, in *Input) (Mutation, error) {
	v, err := eval(ctx, c.mutate, in, mutateQuery)
	if err != nil {
		return Mutation{}, err
	}
	return decodeMutation(v)
}

// Validate evaluates data.pdguard.framework.validate_result.
func (e *Engine) Validate(ctx context.Context, in *Input) (Validation, error) {
	return decide(ctx, e, in, validateQuery, fastValidate, (*compiled).evalValidate)
}

func (c *compiled) evalValidate(ctx context.Context, in *Input) (Validation, error) {
	v, err := eval(ctx, c.validate, in, validateQuery)
	if err != nil {
		return Validation{}, err
	}
	return decodeValidation(v)
}

// crossCheck holds a fast-path answer to the policy's (want, or the policy's err). Callers
// evaluate the policy only when Options.CrossCheck is set, so the fast path allocates
// nothing for it.
func crossCheck[T Mutation | Validation](query string, fast, want T, err error) error {
	if err != nil {
		return fmt.Errorf("the fast path answered %s where the policy fails: %w", query, err)
	}
	if !reflect.DeepEqual(fast, want) {
		return fmt.Errorf("the fast path's %s differs from the policy's:\nfast:   %#v\npolicy: %#v", query, fast, want)
	}
	return nil
}

// Reload reads opts.PolicyDir again and swaps in the new module set. A set that does not
// parse, compile or evaluate is rejected with an error naming the file, and the last good
// set stays in force.
func (e *Engine) Reload() error {
	_, err := e.reload(context.Background())
	return err
}

func (e *Engine) reload(ctx context.Context) (changed bool, err error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()

	user, err := readDir(e.opts.PolicyDir)
	if err != nil {
		return false, err
	}
	digest := digestOf(user)
	if cur := e.current.Load(); cur != nil && cur.digest == digest {
		return false, nil
	}
	base, err := embeddedSources()
	if err != nil {
		return false, err
	}
	var files []string
	for _, s := range user {
		files = append(files, s.name)
	}
	c, err := compile(ctx, append(base, user...))
	if err != nil {
		// Compile errors carry file:line; a conflict found by evaluation may only name the
		// embedded rule it broke, so the user's files are listed for the reader.
		named := slices.ContainsFunc(files, func(f string) bool { return strings.Contains(err.Error(), f) })
		if len(files) > 0 && !named {
			return false, fmt.Errorf("policy modules rejected (policy directory files: %s): %w", strings.Join(files, ", "), err)
		}
		return false, fmt.Errorf("policy modules rejected: %w", err)
	}
	c.digest = digest
	c.files = files
	e.current.Store(c)
	return true, nil
}

// Watch reloads the policy whenever opts.PolicyDir changes, until ctx is done. Events are
// debounced because editors and ConfigMap updates touch several files at once. A rejected
// module set is logged and the last good one stays in force. Watch returns an error only
// when the directory cannot be watched; with no PolicyDir it just waits for ctx.
func (e *Engine) Watch(ctx context.Context, logger logr.Logger) error {
	if e.opts.PolicyDir == "" {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy directory %s: %w", e.opts.PolicyDir, err)
	}
	defer w.Close()
	if err := w.Add(e.opts.PolicyDir); err != nil {
		return fmt.Errorf("watch policy directory %s: %w", e.opts.PolicyDir, err)
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.Events:
			if !ok {
				return nil
			}
			timer.Reset(e.debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			logger.Error(err, "policy directory watch error", "dir", e.opts.PolicyDir)
		case <-timer.C:
			changed, err := e.reload(ctx)
			switch {
			case err != nil:
				logger.Error(err, "policy reload rejected; the last good policy stays in force", "dir", e.opts.PolicyDir)
			case changed:
				logger.Info("policy reloaded", "dir", e.opts.PolicyDir, "files", e.current.Load().files)
			}
		}
	}
}

func embeddedSources() ([]source, error) {
	entries, err := fs.ReadDir(embedded, embeddedDir)
	if err != nil {
		return nil, err
	}
	var out []source
	for _, entry := range entries {
		name := entry.Name()
		if strings.HasSuffix(name, testSuffix) {
			continue
		}
		b, err := fs.ReadFile(embedded, embeddedDir+"/"+name)
		if err != nil {
			return nil, err
		}
		out = append(out, source{name: "pdguard/" + name, text: string(b)})
	}
	return out, nil
}

// readDir reads the .rego files directly in dir, following symlinks as a mounted
// ConfigMap needs.
func readDir(dir string) ([]source, error) {
	if dir == "" {
		return nil, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("policy directory: %w", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	var out []source
	for _, p := range paths {
		if strings.HasSuffix(p, testSuffix) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read policy module: %w", err)
		}
		out = append(out, source{name: p, text: string(b)})
	}
	return out, nil
}

func digestOf(sources []source) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range sources {
		fmt.Fprintf(h, "%d:%s%d:%s", len(s.name), s.name, len(s.text), s.text)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

func parse(sources []source) (map[string]*ast.Module, error) {
	modules := make(map[string]*ast.Module, len(sources))
	for _, s := range sources {
		m, err := ast.ParseModuleWithOpts(s.name, s.text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, err
		}
		if m == nil {
			return nil, fmt.Errorf("%s: no package declaration", s.name)
		}
		modules[s.name] = m
	}
	return modules, nil
}

// frameworkPackage turns the rules' findings into results (rego/framework.rego).
var frameworkPackage = ast.MustParseRef("data.pdguard.framework")

// checkUserPackages keeps modules that are not pdguard's own out of the framework package:
// a site rule adds findings, it does not change what a finding does in each mode.
func checkUserPackages(modules map[string]*ast.Module) error {
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasPrefix(name, "pdguard/") {
			continue
		}
		if modules[name].Package.Path.HasPrefix(frameworkPackage) {
			return fmt.Errorf("%s: package %s is pdguard's own framework, which makes the results from the findings: add violations and advisories in package pdguard.validate, advisories in package pdguard.mutate", name, modules[name].Package.Path)
		}
	}
	return nil
}

// capabilities are OPA's builtins minus the network ones: a policy module must not make
// admission wait on, or depend on, another service.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(slices.Clone(caps.Builtins), func(b *ast.Builtin) bool {
		return b.Name == "http.send" || strings.HasPrefix(b.Name, "net.")
	})
	return caps
}

func newCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithCapabilities(capabilities()).
		WithDefaultRegoVersion(ast.RegoV1)
}

func compile(ctx context.Context, sources []source) (*compiled, error) {
	modules, err := parse(sources)
	if err != nil {
		return nil, err
	}
	if err := checkUserPackages(modules); err != nil {
		return nil, err
	}
	compiler := newCompiler()
	if compiler.Compile(modules); compiler.Failed() {
		return nil, compiler.Errors
	}
	store := inmem.New()
	prepare := func(query string) (rego.PreparedEvalQuery, error) {
		return rego.New(
			rego.Query(query),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.GenerateJSON(keepTerm),
		).PrepareForEval(ctx)
	}
	c := &compiled{}
	if c.mutate, err = prepare(mutateQuery); err != nil {
		return nil, err
	}
	if c.validate, err = prepare(validateQuery); err != nil {
		return nil, err
	}
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// check evaluates both entry points on typical requests, so that a module which compiles
// but breaks every decision (conflicting values, a result of the wrong shape) is rejected
// at load time instead of failing admission.
func (c *compiled) check(ctx context.Context) error {
	for _, s := range samples() {
		v, err := eval(ctx, c.mutate, s.input, mutateQuery)
		if err == nil {
			_, err = decodeMutation(v)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		v, err = eval(ctx, c.validate, s.input, validateQuery)
		if err == nil {
			_, err = decodeValidation(v)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// Per-evaluation metrics would cost a map per decision that nobody reads.
var noMetrics = metrics.NoOp()

// keepTerm hands results back as AST; decode.go reads them without a JSON detour.
func keepTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

func eval(ctx context.Context, pq rego.PreparedEvalQuery, in *Input, query string) (ast.Value, error) {
	if in == nil {
		return nil, errors.New("policy: nil input")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", query, err)
	}
	// OPA would start a goroutine per evaluation to watch ctx; a callback registered on
	// ctx does the same job without one.
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()

	rs, err := pq.Eval(ctx,
		rego.EvalParsedInput(inputValue(in)),
		rego.EvalExternalCancel(cancel),
		rego.EvalMetrics(noMetrics),
	)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%s is undefined", query)
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected result %T", query, rs[0].Expressions[0].Value)
	}
	return t.Value, nil
}
