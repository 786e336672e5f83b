package scenario

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Result is one finished command: what a person would have seen in the terminal.
type Result struct {
	// Args is the command line, starting with the tool's name as a person types it.
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int
	// Err is set when the command could not be run at all (not for a non-zero exit).
	Err  error
	Took time.Duration
}

// OK reports a zero exit status.
func (r Result) OK() bool { return r.Err == nil && r.ExitCode == 0 }

// CommandLine is the command as typed, arguments with spaces or quotes quoted for a shell.
func (r Result) CommandLine() string {
	parts := make([]string, len(r.Args))
	for i, a := range r.Args {
		if a == "" || strings.ContainsAny(a, " '\"{}$*") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

// Warnings are the admission warnings the apiserver passed on, in order. kubectl prints
// them as `Warning: ...`; helm logs them through klog, quoted.
func (r Result) Warnings() []string {
	var out []string
	for line := range strings.Lines(r.Stderr) {
		if w, ok := parseWarning(strings.TrimRight(line, "\r\n")); ok {
			out = append(out, w)
		}
	}
	return out
}

func parseWarning(line string) (string, bool) {
	const marker = "Warning: "
	i := strings.Index(line, marker)
	if i < 0 {
		return "", false
	}
	if i > 0 && line[i-1] == '"' && strings.HasSuffix(line, `"`) {
		if s, err := strconv.Unquote(line[i-1:]); err == nil {
			return strings.TrimPrefix(s, marker), true
		}
	}
	return line[i+len(marker):], true
}

// ErrorLine is the error the tool reported last (helm's `Error: ...`, kubectl's
// `Error from server ...`), or "".
func (r Result) ErrorLine() string {
	last := ""
	for line := range strings.Lines(r.Stderr) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "Error") {
			last = line
		}
	}
	return last
}

// Denial is what pdguard's validating webhook said when it denied the request, or ""
// when the request was not denied by it.
func (r Result) Denial() string {
	const marker = `admission webhook "validate.pdguard.pdguard.io" denied the request: `
	line := r.ErrorLine()
	if i := strings.Index(line, marker); i >= 0 {
		return line[i+len(marker):]
	}
	return ""
}

// Output is stdout and stderr together, for failure messages.
func (r Result) Output() string {
	s := strings.TrimSpace(r.Stdout)
	if e := strings.TrimSpace(r.Stderr); e != "" {
		if s != "" {
			s += "\n"
		}
		s += e
	}
	if r.Err != nil {
		s += "\n(" + r.Err.Error() + ")"
	}
	return s
}

// run executes one of the control plane's tools against kubeconfig. display is the name
// shown in Args (helm for both helm binaries, as a person has it on PATH).
func (e *Env) run(ctx context.Context, kubeconfig, binary, display string, args ...string) Result {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = e.Root
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(e.helmDir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(e.helmDir, "config"),
		"HELM_DATA_HOME="+filepath.Join(e.helmDir, "data"),
		"NO_COLOR=1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	res := Result{Args: append([]string{display}, args...), Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(began)}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		res.Err, res.ExitCode = err, -1
	}
	return res
}

// Kubectl runs kubectl as the admin (a member of system:masters).
func (e *Env) Kubectl(ctx context.Context, args ...string) Result {
	return e.KubectlAs(ctx, e.CP.KubeconfigPath(), args...)
}

// KubectlAs runs kubectl with another kubeconfig (see ControlPlane.KubeconfigFor).
func (e *Env) KubectlAs(ctx context.Context, kubeconfig string, args ...string) Result {
	return e.run(ctx, kubeconfig, e.tool("kubectl"), "kubectl", args...)
}

// Report runs `webhook report`, pdguard's own account of guarded StatefulSets.
func (e *Env) Report(ctx context.Context, args ...string) Result {
	return e.run(ctx, e.CP.KubeconfigPath(), e.Binary, "webhook", append([]string{"report", "--kubeconfig", e.CP.KubeconfigPath()}, args...)...)
}
