//go:build e2e

package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// make demo is the README's first command: it runs its own control plane and pdguard and
// checks every step it narrates, so a change to a denial's words or to a flow shows here
// rather than on a newcomer's machine.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/demo")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "UNEXPECTED") || !strings.Contains(string(out), "Every step behaved as described.") {
		t.Fatalf("go run ./hack/demo: %v\n%s", err, out)
	}
}
