// Package unprivileged runs a test as an ordinary user. Root reads a directory whatever
// its mode, so a test of what happens with an unreadable directory proves nothing as
// root; CI runs as root.
package unprivileged

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// The user the test runs as when it was started by root: nobody.
const uid, gid = 65534, 65534

const envKey = "PDGUARD_TEST_UNPRIVILEGED"

// Rerun runs the calling test again in a child process as nobody when the test binary runs
// as root, and returns true: the child did the test's work and its failure fails t. It
// returns false where the test should go on itself: not root, or already the child. The
// child runs in a directory of its own, since nobody may not enter the package's: a test
// that reruns reads no file by a relative path.
func Rerun(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 || os.Getenv(envKey) == t.Name() {
		return false
	}
	// The go test work directory and root's TMPDIR may be root's alone: nobody needs a
	// copy of the binary it can execute, in a directory it can enter.
	dir, err := os.MkdirTemp("/tmp", "unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(bin, "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envKey+"="+t.Name(), "TMPDIR=/tmp", "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as uid %d: %v\n%s", t.Name(), uid, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s as uid %d ran no test:\n%s", t.Name(), uid, out)
	}
	t.Logf("ran as uid %d:\n%s", uid, out)
	return true
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
