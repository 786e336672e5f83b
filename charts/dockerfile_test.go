package charts

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	appsv1 "k8s.io/api/apps/v1"
)

// The image is never built where these tests run (no container engine), so the Dockerfile
// is checked with BuildKit's own parser and linter: what they accept is what `docker build`
// reads.

type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile parser warning: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("Dockerfile:%d: %s: %s", line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return dockerfile{stages: stages, metaArgs: metaArgs, escape: res.EscapeToken}
}

func commandsOf[T instructions.Command](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// runWords splits a RUN into shell words the way BuildKit expands it, with the stage's ARG
// defaults and ENV values known at that point.
func (d dockerfile) runWords(t *testing.T, s instructions.Stage, run *instructions.RunCommand) []string {
	t.Helper()
	var env []string
	for _, a := range d.metaArgs {
		for _, kv := range a.Args {
			env = append(env, kv.Key+"="+kv.ValueString())
		}
	}
	for _, c := range s.Commands {
		if c == instructions.Command(run) {
			break
		}
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				env = append(env, kv.Key+"="+kv.ValueString())
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env = append(env, kv.Key+"="+kv.Value)
			}
		}
	}
	words, err := shell.NewLex(d.escape).ProcessWords(strings.Join(run.CmdLine, " "), shell.EnvsFromSlice(env))
	if err != nil {
		t.Fatalf("RUN %s: %v", run.CmdLine, err)
	}
	return words
}

// goCommand finds the RUN in s that runs `go <sub>` and returns its index among s.Commands
// and its words.
func (d dockerfile) goCommand(t *testing.T, s instructions.Stage, sub string) (int, []string) {
	t.Helper()
	for i, c := range s.Commands {
		run, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		words := d.runWords(t, s, run)
		for j := 0; j+1 < len(words); j++ {
			if words[j] == "go" && words[j+1] == sub {
				return i, words
			}
		}
	}
	return -1, nil
}

func goMinor(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.stages) < 2 {
		t.Fatalf("want a multi-stage build (builder + runtime), got %d stage(s)", len(d.stages))
	}
	builderIdx := slices.IndexFunc(d.stages, func(s instructions.Stage) bool { return strings.HasPrefix(s.BaseName, "golang:") })
	if builderIdx < 0 || builderIdx == len(d.stages)-1 {
		t.Fatalf("want a golang builder stage before the final one; stages start FROM %v", baseNames(d.stages))
	}
	builder, final := d.stages[builderIdx], d.stages[len(d.stages)-1]

	t.Run("builder image", func(t *testing.T) {
		// The minor is pinned to go.mod's so the image can build the module; a bare
		// golang:1 or golang:latest would move under it.
		minor := regexp.QuoteMeta(goMinor(t))
		re := regexp.MustCompile(`^golang:` + minor + `(\.\d+)?(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$`)
		if !re.MatchString(builder.BaseName) {
			t.Errorf("builder FROM %s, want golang:%s pinned to go.mod's minor", builder.BaseName, goMinor(t))
		}
		if builder.Name == "" {
			t.Error("the builder stage must be named, for COPY --from")
		}
	})

	var binary string
	t.Run("go build", func(t *testing.T) {
		i, words := d.goCommand(t, builder, "build")
		if i < 0 {
			t.Fatal("the builder stage has no RUN ... go build")
		}
		goAt := slices.Index(words, "go")
		cgoOff := slices.Contains(words[:goAt], "CGO_ENABLED=0")
		for _, env := range commandsOf[*instructions.EnvCommand](builder) {
			for _, kv := range env.Env {
				if kv.Key == "CGO_ENABLED" && kv.Value == "0" {
					cgoOff = true
				}
			}
		}
		if !cgoOff {
			t.Error("go build must run with CGO_ENABLED=0: distroless/static has no libc")
		}
		if !slices.Contains(words, "-trimpath") {
			t.Error("go build lacks -trimpath")
		}
		ld := slices.Index(words, "-ldflags")
		if ld < 0 || ld+1 >= len(words) {
			t.Fatal("go build lacks -ldflags")
		}
		ldflags := strings.Fields(words[ld+1])
		for _, f := range []string{"-s", "-w", "-X"} {
			if !slices.Contains(ldflags, f) {
				t.Errorf("-ldflags %q lacks %s", words[ld+1], f)
			}
		}
		if x := slices.Index(ldflags, "-X"); x >= 0 && (x+1 >= len(ldflags) || !strings.HasPrefix(ldflags[x+1], "main.version=")) {
			t.Errorf("-ldflags must stamp main.version, got %q", words[ld+1])
		}
		// `webhook version` prints these three.
		for _, v := range []string{"main.version=", "main.commit=", "main.buildDate="} {
			if !slices.ContainsFunc(ldflags, func(f string) bool { return strings.HasPrefix(f, v) }) {
				t.Errorf("-ldflags %q does not stamp %s", words[ld+1], strings.TrimSuffix(v, "="))
			}
		}
		if words[len(words)-1] != "./cmd/webhook" {
			t.Errorf("go build must build ./cmd/webhook, builds %q", words[len(words)-1])
		}
		o := slices.Index(words, "-o")
		if o < 0 || o+1 >= len(words) {
			t.Fatal("go build has no -o")
		}
		binary = words[o+1]

		// go.mod and go.sum first, then `go mod download`, then the sources: a source change
		// must not invalidate the module download layer.
		dl, _ := d.goCommand(t, builder, "mod")
		copyMods, copyAll := -1, -1
		for j, c := range builder.Commands {
			cp, ok := c.(*instructions.CopyCommand)
			if !ok {
				continue
			}
			srcs := slices.Sorted(slices.Values(cp.SourcePaths))
			if slices.Equal(srcs, []string{"go.mod", "go.sum"}) && copyMods < 0 {
				copyMods = j
			} else if copyAll < 0 {
				copyAll = j
			}
		}
		if copyMods < 0 || dl < 0 || copyAll < 0 || copyMods >= dl || dl >= copyAll || copyAll >= i {
			t.Errorf("want COPY go.mod go.sum (%d) < RUN go mod download (%d) < COPY of the sources (%d) < go build (%d)", copyMods, dl, copyAll, i)
		}
	})

	t.Run("runtime image", func(t *testing.T) {
		re := regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot(@sha256:[0-9a-f]{64})?$`)
		if !re.MatchString(final.BaseName) {
			t.Errorf("final FROM %s, want gcr.io/distroless/static-debian12:nonroot", final.BaseName)
		}
		if runs := commandsOf[*instructions.RunCommand](final); len(runs) > 0 {
			t.Errorf("the final stage runs %d commands; distroless has no shell", len(runs))
		}
		copies := commandsOf[*instructions.CopyCommand](final)
		if !slices.ContainsFunc(copies, func(c *instructions.CopyCommand) bool {
			return c.From == builder.Name && slices.Equal(c.SourcePaths, []string{binary}) && c.DestPath == "/webhook"
		}) {
			t.Errorf("the final stage must COPY --from=%s %s /webhook", builder.Name, binary)
		}
	})

	t.Run("user", func(t *testing.T) {
		users := commandsOf[*instructions.UserCommand](final)
		if len(users) == 0 {
			t.Fatal("the final stage sets no USER")
		}
		// Numeric, so that the kubelet can check runAsNonRoot without runAsUser set.
		user := users[len(users)-1].User
		uid, _, _ := strings.Cut(user, ":")
		n, err := strconv.Atoi(uid)
		if err != nil || n == 0 {
			t.Fatalf("USER %s, want a numeric non-root user such as 65532:65532", user)
		}
		r := template(t, "helm", release, pdguardChart)
		var dep appsv1.Deployment
		r.decode(t, "Deployment", &dep)
		if psc := dep.Spec.Template.Spec.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != int64(n) {
			t.Errorf("the chart runs the webhook as %v, the image as %d", psc, n)
		}
	})

	t.Run("entrypoint", func(t *testing.T) {
		eps := commandsOf[*instructions.EntrypointCommand](final)
		cmds := commandsOf[*instructions.CmdCommand](final)
		if len(eps) == 0 || len(cmds) == 0 {
			t.Fatalf("the final stage needs ENTRYPOINT and CMD, has %d and %d", len(eps), len(cmds))
		}
		// Exec form: there is no shell to run the shell form, and signals must reach the binary.
		ep, cmd := eps[len(eps)-1], cmds[len(cmds)-1]
		if ep.PrependShell || !slices.Equal(ep.CmdLine, []string{"/webhook"}) {
			t.Errorf(`%s, want ENTRYPOINT ["/webhook"]`, ep.String())
		}
		if cmd.PrependShell || !slices.Equal(cmd.CmdLine, []string{"serve"}) {
			t.Errorf(`%s, want CMD ["serve"]`, cmd.String())
		}
	})

	t.Run("no remote ADD", func(t *testing.T) {
		remote := regexp.MustCompile(`^([a-z][a-z0-9+.-]*://|git@)`)
		for _, s := range d.stages {
			for _, add := range commandsOf[*instructions.AddCommand](s) {
				for _, src := range add.SourcePaths {
					if remote.MatchString(src) {
						t.Errorf("ADD %s fetches from the network at build time, unpinned and unverified", src)
					}
				}
			}
		}
	})
}

func baseNames(stages []instructions.Stage) []string {
	var out []string
	for _, s := range stages {
		out = append(out, s.BaseName)
	}
	return out
}

func TestDockerignore(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	excluded := func(path string) bool {
		m, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatalf(".dockerignore on %s: %v", path, err)
		}
		return m
	}
	for _, p := range []string{"bin/tools/helm", "bin", ".git", ".git/HEAD", ".git/objects/pack/x.pack"} {
		if !excluded(p) {
			t.Errorf("%s reaches the build context", p)
		}
	}
	// Everything the build reads must stay in, embedded files included.
	inputs := buildInputs(t, root)
	for _, p := range inputs {
		if excluded(p) {
			t.Errorf("%s is needed by go build ./cmd/webhook but .dockerignore excludes it", p)
		}
	}
	if len(inputs) < 3 {
		t.Errorf("go list found only %v; expected the webhook's sources", inputs)
	}
}
