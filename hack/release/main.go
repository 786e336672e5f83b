// Command release builds the kubectl-pdguard archives that krew installs, one per platform,
// and writes the krew manifest for them from plugins/pdguard.yaml.tmpl with each archive's
// sha256. make release runs it through hack/release.sh.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"
)

// pluginBinary is the name kubectl looks for on PATH, and the name the binary takes to
// call itself kubectl pdguard.
const pluginBinary = "kubectl-pdguard"

// defaultPlatforms are the platforms krew users run kubectl on that pdguard is built for.
var defaultPlatforms = "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64"

// krew wants a semantic version with a leading v.
var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

type options struct {
	root      string // the module to build
	dist      string
	version   string
	commit    string
	date      time.Time
	license   string
	readme    string
	template  string
	platforms []platform
	// trimpath drops the build machine's paths from the binary, as the Dockerfile does.
	trimpath bool
}

type platform struct{ OS, Arch string }

func (p platform) String() string { return p.OS + "/" + p.Arch }

// Archive is one platform's release archive.
type Archive struct {
	OS, Arch string
	// File is the archive's name, as in the release's download URL.
	File   string
	Path   string
	SHA256 string
}

// manifestData is what the template sees.
type manifestData struct {
	Version   string
	Platforms []Archive
}

func parsePlatforms(s string) ([]platform, error) {
	var out []platform
	for _, p := range strings.Split(s, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || osName == "" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("--platforms: %q is not OS/ARCH (e.g. linux/amd64)", p)
		}
		out = append(out, platform{osName, arch})
	}
	return out, nil
}

func (o *options) validate() error {
	if !semver.MatchString(o.version) {
		return fmt.Errorf("--version must be a semantic version with a leading v, as krew requires (v0.1.0), got %q", o.version)
	}
	if len(o.platforms) == 0 {
		return errors.New("--platforms names no platform")
	}
	for _, f := range []struct{ flag, path, why string }{
		{"--license", o.license, "krew requires the archive to hold the plugin's license; add the project's LICENSE file"},
		{"--readme", o.readme, "the archive carries the README"},
		{"--template", o.template, "the krew manifest is written from it"},
	} {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s %s: %w (%s)", f.flag, f.path, err, f.why)
		}
	}
	return nil
}

// release builds and archives every platform, then writes DIST/pdguard.yaml.
func release(ctx context.Context, o options, log io.Writer) (string, []Archive, error) {
	if err := o.validate(); err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(o.dist, 0o755); err != nil {
		return "", nil, err
	}
	var archives []Archive
	for _, p := range o.platforms {
		bin := filepath.Join(o.dist, "build", p.OS+"_"+p.Arch, pluginBinary)
		if err := build(ctx, o, p, bin); err != nil {
			return "", nil, err
		}
		a := Archive{OS: p.OS, Arch: p.Arch, File: fmt.Sprintf("%s_%s_%s.tar.gz", pluginBinary, p.OS, p.Arch)}
		a.Path = filepath.Join(o.dist, a.File)
		sum, err := writeArchive(a.Path, o.date, []archiveFile{
			{name: pluginBinary, path: bin, mode: 0o755},
			{name: "LICENSE", path: o.license, mode: 0o644},
			{name: "README.md", path: o.readme, mode: 0o644},
		})
		if err != nil {
			return "", nil, fmt.Errorf("archiving %s: %w", p, err)
		}
		a.SHA256 = sum
		archives = append(archives, a)
		fmt.Fprintf(log, "%s  %s\n", sum, a.Path)
	}
	manifest := filepath.Join(o.dist, "pdguard.yaml")
	if err := writeManifest(o.template, manifest, manifestData{Version: o.version, Platforms: archives}); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(log, "wrote %s\n", manifest)
	return manifest, archives, nil
}

// build cross-compiles the binary as the Dockerfile does: static, trimmed, and stamped with
// the version, commit and date that version prints.
func build(ctx context.Context, o options, p platform, out string) error {
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s -X main.buildDate=%s", o.version, o.commit, o.date.UTC().Format(time.RFC3339))
	args := []string{"build", "-ldflags", ldflags, "-o", out}
	if o.trimpath {
		args = append(args, "-trimpath")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/webhook")...)
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for %s: %w\n%s", pluginBinary, p, err, b)
	}
	return nil
}

type archiveFile struct {
	name, path string
	mode       int64
}

// writeArchive writes a .tar.gz of files, every entry dated date so that the same commit
// gives the same archive, and returns its sha256.
func writeArchive(path string, date time.Time, files []archiveFile) (string, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return "", err
		}
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(data)), ModTime: date, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

func writeManifest(templatePath, out string, data manifestData) error {
	raw, err := os.ReadFile(templatePath)
	if err != nil {
		return err
	}
	tmpl, err := template.New(filepath.Base(templatePath)).Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return fmt.Errorf("%s: %w", templatePath, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return fmt.Errorf("%s: %w", templatePath, err)
	}
	// What krew will read must be YAML with one platform per archive.
	var m struct {
		Spec struct {
			Version   string `json:"version"`
			Platforms []struct {
				SHA256 string `json:"sha256"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b.Bytes(), &m); err != nil {
		return fmt.Errorf("%s renders invalid YAML: %w\n%s", templatePath, err, b.String())
	}
	if m.Spec.Version != data.Version || len(m.Spec.Platforms) != len(data.Platforms) {
		return fmt.Errorf("%s renders version %q with %d platforms, want %s with %d", templatePath, m.Spec.Version, len(m.Spec.Platforms), data.Version, len(data.Platforms))
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

func main() {
	o := options{trimpath: true}
	var platforms, date string
	flag.StringVar(&o.root, "root", ".", "the repository to build")
	flag.StringVar(&o.dist, "dist", "dist", "where the archives and pdguard.yaml go")
	flag.StringVar(&o.version, "version", "", "the release version, e.g. v0.1.0")
	flag.StringVar(&o.commit, "commit", "unknown", "the commit the release is built from")
	flag.StringVar(&date, "date", "", "build date, RFC 3339 (default: now); also the archives' file times")
	flag.StringVar(&o.license, "license", "LICENSE", "the license file the archives carry")
	flag.StringVar(&o.readme, "readme", "README.md", "the README the archives carry")
	flag.StringVar(&o.template, "template", "plugins/pdguard.yaml.tmpl", "the krew manifest template")
	flag.StringVar(&platforms, "platforms", defaultPlatforms, "comma-separated OS/ARCH list")
	flag.Parse()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(2)
	}
	var err error
	if o.platforms, err = parsePlatforms(platforms); err != nil {
		fail(err)
	}
	o.date = time.Now().UTC().Truncate(time.Second)
	if date != "" {
		if o.date, err = time.Parse(time.RFC3339, date); err != nil {
			fail(fmt.Errorf("--date: %w", err))
		}
	}
	if _, _, err := release(context.Background(), o, os.Stdout); err != nil {
		fail(err)
	}
}
