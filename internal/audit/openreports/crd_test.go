package openreports

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The chart installs the Report CRD from its own copy; it must be the manifest of the
// reports-api version pdguard is built with.
func TestChartShipsTheModulesReportCRD(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api").Output()
	if err != nil {
		t.Fatalf("locating the reports-api module: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "openreports.io_reports.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../charts/pdguard/files/openreports.io_reports.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("charts/pdguard/files/openreports.io_reports.yaml differs from the reports-api module's config/crd/openreports.io_reports.yaml: copy it again")
	}
}
