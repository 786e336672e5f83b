//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdguard/pdguard/internal/report"
)

// `webhook audit -o html` rendered by a real browser (Debian's headless chromium, which
// `make test-integration` installs): the page must read right as a person sees it.
func TestAuditHTMLInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (%v): run hack/install-chromium.sh, as make test-integration does", err)
	}
	raw, err := os.ReadFile(filepath.Join(env.root, "internal/report/testdata/audit/state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var in report.AuditInput
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "audit.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.BuildAudit(time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC), in).Write(f, "html"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--dump-dom", "file://"+page)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	text := string(dom)
	for _, want := range []string{
		"<title>pdguard audit</title>",
		"Timeline of pd-prod/pingdirectory", "Timeline of pd-stage/pingdirectory", "Timeline of pd-dev/pingdirectory",
		`<td>pd-prod/pingdirectory</td><td>pingidentity/pingdirectory:9.0.0.1-latest -&gt; pingidentity/pingdirectory:9.1.0.0-latest from ordinal 1`,
		"<td>Failed (pingdirectory-1)</td><td>3</td><td>1</td><td>2026-11-25T11:30:00Z by bob",
		`<span class="result fail">blocked</span> <strong>partition-gate</strong>`,
		"has replace-profile InProgress; wait for its verdict", "has replace-profile Failed; set pingdirectory.image.tag back",
		`<span class="result warn">overridden</span>`, "promotion admitted on pdguard's verdicts",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if strings.Contains(text, "older than --since") {
		t.Error("the page shows a record older than --since")
	}
	for _, external := range []string{"http://", "https://", "<script", "<link"} {
		if strings.Contains(strings.ToLower(text), external) {
			t.Errorf("the page is not self-contained: it has %q", external)
		}
	}
}
