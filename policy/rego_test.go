package policy

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestRegoPolicy runs the embedded policy's own Rego tests (rego/*_test.rego), one Go
// subtest per Rego test, so go test ./policy/ -run 'TestRegoPolicy/partition_gate' works.
func TestRegoPolicy(t *testing.T) {
	entries, err := fs.ReadDir(embedded, embeddedDir)
	if err != nil {
		t.Fatal(err)
	}
	var sources []source
	for _, entry := range entries {
		b, err := fs.ReadFile(embedded, embeddedDir+"/"+entry.Name())
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, source{name: entry.Name(), text: string(b)})
	}
	modules, err := parse(sources)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler()).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		EnableTracing(true).
		// The fast-path tests evaluate every scenario twice with tracing: the default 5s
		// is too short on a loaded machine.
		SetTimeout(time.Minute).
		Run(ctx, modules)
	if err != nil {
		t.Fatal(err)
	}

	count := 0
	for r := range ch {
		count++
		name := strings.TrimPrefix(r.Package, "data.") + "." + r.Name
		t.Run(name, func(t *testing.T) {
			switch {
			case r.Error != nil:
				t.Errorf("%s: %v", r.Location, r.Error)
			case r.Fail:
				t.Errorf("%s: failed%s", r.Location, failure(r.Trace, r.Location.File))
			}
		})
	}
	if count == 0 {
		t.Fatal("no Rego tests ran")
	}
	t.Logf("%d Rego tests", count)
}

// failure names the last expression of the test's own file that failed, which is the
// assertion that did not hold.
func failure(trace []*topdown.Event, file string) string {
	for i := len(trace) - 1; i >= 0; i-- {
		e := trace[i]
		if e.Op == topdown.FailOp && e.Location != nil && e.Location.File == file {
			if expr, ok := e.Node.(*ast.Expr); ok {
				if _, every := expr.Terms.(*ast.Every); every {
					continue
				}
			}
			return fmt.Sprintf(" at %s: %v", e.Location, e.Node)
		}
	}
	return ""
}

// TestRegoIsFormatted keeps the embedded modules as opa fmt writes them.
func TestRegoIsFormatted(t *testing.T) {
	entries, err := fs.ReadDir(embedded, embeddedDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range entries {
		b, err := fs.ReadFile(embedded, embeddedDir+"/"+entry.Name())
		if err != nil {
			t.Fatal(err)
		}
		want, err := format.SourceWithOpts(entry.Name(), b, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("rego/%s is not formatted: run opa fmt -w policy/rego", entry.Name())
		}
	}
}
