package charts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// check's golden tests run on test-chart releases rendered once and committed, so that unit
// tests need no helm. This renders them again with the pinned helm and fails when the chart
// has moved on from them.
func TestCheckTestdataMatchesChart(t *testing.T) {
	const committed = "../cmd/webhook/testdata/check/chart"
	out, home := t.TempDir(), t.TempDir()
	cmd := exec.Command("bash", "../hack/render-check-testdata.sh")
	cmd.Env = append(os.Environ(),
		"HELM="+helmPath(t, "helm"), "OUT="+out,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
	)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/render-check-testdata.sh: %v\n%s", err, b)
	}
	rendered, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Glob(filepath.Join(committed, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rendered) != len(want) || len(rendered) == 0 {
		t.Fatalf("the script renders %d releases, %s holds %d", len(rendered), committed, len(want))
	}
	for _, e := range rendered {
		got, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(filepath.Join(committed, e.Name()))
		if err != nil {
			t.Fatalf("%v: run hack/render-check-testdata.sh", err)
		}
		if !bytes.Equal(got, have) {
			t.Errorf("%s/%s differs from what the chart renders now: run hack/render-check-testdata.sh and go test ./cmd/webhook -run TestCheckGolden -update\n%s",
				committed, e.Name(), unifiedDiff(t, "committed", "rendered", have, got))
		}
	}
}
