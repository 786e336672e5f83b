// Package scenario holds the steps the end-to-end tests and the demo share: a control
// plane with pdguard in front of it, helm 3 and 4 run the way a person runs them, and
// reads and waits on what the guard and the StatefulSet controller did in response.
// Every step returns what it saw, so the tests assert on it and the demo prints it.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
	"github.com/pdguard/pdguard/internal/testenv/pdguardproc"
)

// Chart is the ping-devops-shaped test chart, relative to the repository root.
const Chart = "test/charts/pingdirectory"

// Images the scenarios move between. The tags name real PingDirectory versions so the
// guard can order them and the evidence controller can match them against the logs.
const (
	Repository = "pingidentity/pingdirectory"
	OldTag     = "9.0.0.1-latest"
	NewTag     = "9.1.0.0-latest"
	NextTag    = "9.2.0.0-latest"
)

// Options configures Start.
type Options struct {
	// WorkDir keeps the control plane's files (logs included) where the caller can find
	// them after a failure; empty means a temporary directory removed by Stop.
	WorkDir string
	// PdguardArgs are extra `webhook serve` flags.
	PdguardArgs []string
	// Logf receives progress; nil discards it.
	Logf func(format string, args ...any)
}

// Env is one control plane with one pdguard registered as its admission webhooks.
type Env struct {
	CP     *controlplane.ControlPlane
	Guard  *pdguardproc.Server
	Client kubernetes.Interface
	// Root is the repository root; Binary the pdguard command built from it.
	Root   string
	Binary string
	// StartedIn is how long the control plane and pdguard took to come up.
	StartedIn time.Duration

	logf    func(format string, args ...any)
	helmDir string
}

// Start brings up the control plane, builds pdguard and starts it. On error everything
// started so far is stopped again.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	began := time.Now()
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{
		WorkDir:     opts.WorkDir,
		Controllers: true,
		KWOK:        true,
		Logf:        logf,
	})
	if err != nil {
		return nil, err
	}
	env = &Env{CP: cp, Root: root, logf: logf}
	defer func() {
		if err != nil {
			env.Stop()
			env = nil
		}
	}()
	built := time.Now()
	if env.Binary, err = pdguardproc.Build(ctx, root); err != nil {
		return env, err
	}
	logf("scenario: built %s in %s", env.Binary, time.Since(built).Round(time.Millisecond))
	if env.Guard, err = pdguardproc.Start(ctx, cp, pdguardproc.Options{Binary: env.Binary, Args: opts.PdguardArgs}); err != nil {
		return env, err
	}
	if env.Client, err = kubernetes.NewForConfig(cp.RESTConfig()); err != nil {
		return env, err
	}
	// helm keeps caches and repository lists under the user's home; a directory of our
	// own keeps a developer's helm configuration out of the scenarios.
	env.helmDir = filepath.Join(cp.WorkDir(), "helm-home")
	if err := os.MkdirAll(env.helmDir, 0o755); err != nil {
		return env, err
	}
	if err := env.waitWebhooksInForce(ctx); err != nil {
		return env, err
	}
	env.StartedIn = time.Since(began)
	logf("scenario: control plane and pdguard ready in %s", env.StartedIn.Round(time.Millisecond))
	return env, nil
}

// Stop ends pdguard and the control plane.
func (e *Env) Stop() error {
	if e.Guard != nil {
		e.Guard.Stop()
	}
	if e.CP != nil {
		return e.CP.Stop()
	}
	return nil
}

// Logf reports progress through the function given to Start.
func (e *Env) Logf(format string, args ...any) { e.logf(format, args...) }

// RepoRoot walks up from the working directory to pdguard's go.mod, so the tests (run
// from their package directory) and the demo (run from anywhere in the tree) agree.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for line := range strings.Lines(string(data)) {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == "github.com/pdguard/pdguard" {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scenario: no pdguard go.mod above the working directory")
		}
		dir = parent
	}
}

// Image is the full image reference of a tag of the chart's repository.
func Image(tag string) string { return Repository + ":" + tag }

// Tag is the tag part of an image reference ("" when there is none).
func Tag(image string) string {
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		return image[i+1:]
	}
	return ""
}

func (e *Env) tool(name string) string { return filepath.Join(e.CP.BinDir(), name) }

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(100 * time.Millisecond).String()
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf("scenario: "+format, args...) }
