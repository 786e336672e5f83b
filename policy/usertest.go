package policy

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// fixturesModule holds the inputs the embedded tests use (data.pdguard.fixtures); site
// tests may use them too. It defines no tests.
const fixturesModule = "fixtures_test.rego"

// TestDir runs the Rego tests of a policy directory against the embedded policy: every
// .rego file directly in dir, tests included, is compiled together with the embedded
// modules and data.pdguard.fixtures, with the capabilities the engine allows, and OPA's
// test runner runs the test_ rules of dir's files. An error means dir cannot be read or
// its modules do not parse or compile; a failing test is a result, not an error.
func TestDir(ctx context.Context, dir string) ([]*tester.Result, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("policy directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("policy directory: %s is not a directory", dir)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	sources, err := embeddedSources()
	if err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(embedded, embeddedDir+"/"+fixturesModule)
	if err != nil {
		return nil, err
	}
	sources = append(sources, source{name: "pdguard/" + fixturesModule, text: string(b)})
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read policy module: %w", err)
		}
		sources = append(sources, source{name: p, text: string(b)})
	}
	modules, err := parse(sources)
	if err != nil {
		return nil, err
	}
	if err := checkUserPackages(modules); err != nil {
		return nil, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler()).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetTimeout(time.Minute).
		Filter(""). // every test
		Run(ctx, modules)
	if err != nil {
		return nil, err
	}
	var out []*tester.Result
	for r := range ch {
		if r.Location != nil && strings.HasPrefix(r.Location.File, "pdguard/") {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
