package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const repoRoot = "../.."

func testOptions(t *testing.T) options {
	t.Helper()
	license := filepath.Join(t.TempDir(), "LICENSE")
	if err := os.WriteFile(license, []byte("test license\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return options{
		root: repoRoot, dist: t.TempDir(), version: "v0.3.1-rc.1", commit: "0123abc",
		date:    time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		license: license, readme: filepath.Join(repoRoot, "README.md"), template: filepath.Join(repoRoot, "plugins", "pdguard.yaml.tmpl"),
		// The host's platform, so the archived binary can be run.
		platforms: []platform{{runtime.GOOS, runtime.GOARCH}},
		// Without -trimpath the build reuses the packages go test compiled already and
		// only links; the release builds with it.
		trimpath: false,
	}
}

type krewManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

// The release of one platform: the manifest's sha256 is the archive's, the archive holds
// the binary krew installs with the license and README, and the binary is the release's.
func TestReleaseOnePlatform(t *testing.T) {
	o := testOptions(t)
	var log strings.Builder
	path, archives, err := release(context.Background(), o, &log)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m krewManifest
	if err := yaml.UnmarshalStrict(raw, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, raw)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "pdguard" || m.Spec.Version != o.version || len(m.Spec.Platforms) != 1 || len(archives) != 1 {
		t.Fatalf("manifest = %+v, want plugin pdguard %s with one platform\n%s", m, o.version, raw)
	}
	p, a := m.Spec.Platforms[0], archives[0]
	data, err := os.ReadFile(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if p.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest sha256 %s, archive's %x", p.SHA256, sum)
	}
	wantFile := "kubectl-pdguard_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	if filepath.Base(a.Path) != wantFile || p.URI != "https://github.com/pdguard/pdguard/releases/download/"+o.version+"/"+wantFile {
		t.Errorf("archive %s, uri %s, want %s under the %s release", a.Path, p.URI, wantFile, o.version)
	}
	if p.Selector.MatchLabels["os"] != runtime.GOOS || p.Selector.MatchLabels["arch"] != runtime.GOARCH || p.Bin != pluginBinary {
		t.Errorf("platform = %+v", p)
	}
	if strings.Contains(string(raw), "{{") || !strings.Contains(log.String(), p.SHA256) {
		t.Errorf("manifest keeps template actions or the log does not print the sha256:\n%s\n%s", raw, log.String())
	}

	entries := readArchive(t, a.Path)
	for _, f := range p.Files {
		if _, ok := entries[f.From]; !ok || f.To != "." {
			t.Errorf("manifest extracts %s to %s, which the archive does not hold", f.From, f.To)
		}
	}
	for name, mode := range map[string]int64{pluginBinary: 0o755, "LICENSE": 0o644, "README.md": 0o644} {
		e, ok := entries[name]
		if !ok || e.hdr.Mode != mode || !e.hdr.ModTime.Equal(o.date) {
			t.Errorf("archive entry %s = %+v, want mode %o dated %s", name, e.hdr, mode, o.date)
		}
	}
	if len(entries) != 3 {
		t.Errorf("archive holds %d entries, want the binary, LICENSE and README.md", len(entries))
	}
	if string(entries["LICENSE"].data) != "test license\n" {
		t.Errorf("archive LICENSE = %q", entries["LICENSE"].data)
	}

	bin := filepath.Join(t.TempDir(), pluginBinary)
	if err := os.WriteFile(bin, entries[pluginBinary].data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	var v struct{ Version, Commit, BuildDate string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version != o.version || v.Commit != o.commit || v.BuildDate != "2026-03-04T05:06:07Z" {
		t.Errorf("archived binary's version = %s (%v), want %s, commit %s, built 2026-03-04T05:06:07Z", out, err, o.version, o.commit)
	}

	// The same inputs give the same archive: the release can be rebuilt and checked.
	again := filepath.Join(t.TempDir(), "again.tar.gz")
	sum2, err := writeArchive(again, o.date, []archiveFile{
		{name: pluginBinary, path: filepath.Join(o.dist, "build", runtime.GOOS+"_"+runtime.GOARCH, pluginBinary), mode: 0o755},
		{name: "LICENSE", path: o.license, mode: 0o644},
		{name: "README.md", path: o.readme, mode: 0o644},
	})
	if err != nil || sum2 != p.SHA256 {
		t.Errorf("archiving the same files again gave %s (%v), want %s", sum2, err, p.SHA256)
	}
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func readArchive(t *testing.T, path string) map[string]entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out := map[string]entry{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = entry{hdr, data}
	}
}

// Bad input is refused before anything is built.
func TestReleaseBadInput(t *testing.T) {
	tests := map[string]struct {
		edit    func(*options)
		wantErr string
	}{
		"a version without the leading v": {
			edit:    func(o *options) { o.version = "0.1.0" },
			wantErr: `--version must be a semantic version with a leading v, as krew requires (v0.1.0), got "0.1.0"`,
		},
		"no license file": {
			edit:    func(o *options) { o.license = "/nonexistent/LICENSE" },
			wantErr: "--license /nonexistent/LICENSE: stat /nonexistent/LICENSE: no such file or directory (krew requires the archive to hold the plugin's license",
		},
		"no template": {
			edit:    func(o *options) { o.template = "/nonexistent/pdguard.yaml.tmpl" },
			wantErr: "--template /nonexistent/pdguard.yaml.tmpl",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t)
			tc.edit(&o)
			_, _, err := release(context.Background(), o, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if entries, _ := os.ReadDir(o.dist); len(entries) != 0 {
				t.Errorf("%s holds %d entries after refused input", o.dist, len(entries))
			}
		})
	}
}

func TestParsePlatforms(t *testing.T) {
	ps, err := parsePlatforms(defaultPlatforms)
	if err != nil || len(ps) != 4 || ps[0] != (platform{"linux", "amd64"}) || ps[3] != (platform{"darwin", "arm64"}) {
		t.Errorf("default platforms = %v, %v", ps, err)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "linux/amd64/v2", "linux/amd64,"} {
		if _, err := parsePlatforms(bad); err == nil || !strings.Contains(err.Error(), "is not OS/ARCH") {
			t.Errorf("parsePlatforms(%q) error = %v, want one saying it is not OS/ARCH", bad, err)
		}
	}
}
