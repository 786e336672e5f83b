package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// process is one component binary running in its own process group, with stdout and
// stderr going to a log file that outlives it.
type process struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	err     error // set before done is closed
	// stopping is set by stop so the exit it causes is not reported as a crash.
	stopping atomic.Bool
}

func startProcess(name, bin string, args []string, env []string, logDir string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: opening log %s: %w", name, logPath, err)
	}
	fmt.Fprintf(logFile, "### %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own lets stop reach anything the component forks.
		Setpgid: true,
		// If the test binary dies (a -timeout panic, a kill), the components die with it
		// instead of holding ports and etcd data behind.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: starting %s: %w (log: %s)", name, bin, err, logPath)
	}
	p := &process{name: name, bin: bin, args: args, env: env, logPath: logPath, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes an unexpected exit, with the end of the log so the cause is
// usually visible without opening the file.
func (p *process) exitError() error {
	status := ""
	if p.err != nil {
		status = " (" + p.err.Error() + ")"
	}
	return fmt.Errorf("%s exited unexpectedly%s; log: %s%s", p.name, status, p.logPath, logTail(p.logPath, 8))
}

// stop sends SIGTERM to the process group, then SIGKILL if it has not gone after grace.
func (p *process) stop(grace time.Duration) error {
	p.stopping.Store(true)
	defer p.logFile.Close()
	if p.exited() {
		return nil
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: SIGTERM to process group %d: %w", p.name, pgid, err)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM would otherwise keep the group alive.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// logTail returns the last n lines of a log, indented, for inclusion in an error.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	b.WriteString("\n  last lines:")
	for _, l := range lines {
		b.WriteString("\n    ")
		b.Write(l)
	}
	return b.String()
}
