package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdguard/pdguard/internal/testenv/fixture"
	"github.com/pdguard/pdguard/internal/testenv/unprivileged"
)

const fixtureDir = "../../internal/testenv/fixture/testdata"

// writeVariant writes a fixture file with each from->to replacement applied.
func writeVariant(t *testing.T, name string, replace ...string) string {
	t.Helper()
	return copyVariant(t, t.TempDir(), filepath.Join(fixtureDir, name), replace...)
}

func runCheck(t *testing.T, args ...string) (stdout, message string, code int) {
	t.Helper()
	root := newRootCommand()
	root.SetArgs(append([]string{"check"}, args...))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	code, message = mainExit(root.Execute())
	return out.String(), message + errOut.String(), code
}

func TestCheckCommand(t *testing.T) {
	offline(t)
	live := filepath.Join(fixtureDir, "statefulset-live.yaml")
	tests := map[string]struct {
		args        func(t *testing.T) []string
		wantCode    int
		wantRules   []string
		wantPatch   string
		wantMessage string
	}{
		"helm template output with a new tag against the live object pins the canary": {
			args: func(t *testing.T) []string {
				return []string{"--old", live, "--new", writeVariant(t, "statefulset-helm.yaml", "9.0.0.1-latest", "9.1.0.0-latest"), "-o", "json"}
			},
			wantCode: 0, wantRules: []string{"canary-partition"}, wantPatch: `"value": 1`,
		},
		"helm template output of the unchanged release is allowed with no patch": {
			args: func(t *testing.T) []string {
				return []string{"--old", live, "--new", filepath.Join(fixtureDir, "statefulset-helm.yaml"), "-o", "json"}
			},
			wantCode: 0,
		},
		"a new tag with a new config checksum is denied with exit code 1": {
			args: func(t *testing.T) []string {
				return []string{"--old", live, "--new", writeVariant(t, "statefulset-helm.yaml", "9.0.0.1-latest", "9.1.0.0-latest", "checksum/config: 9ca1", "checksum/config: 0000"), "-o", "json"}
			},
			// The mutating decision still pins the canary, as the API server would run it
			// before the validating webhook refuses the whole request.
			wantCode: 1, wantRules: []string{"bundled-config-and-version"}, wantPatch: `"value": 1`,
		},
		"a missing --new file is bad input naming the file": {
			args:     func(t *testing.T) []string { return []string{"--new", "/nonexistent/new.yaml"} },
			wantCode: 2, wantMessage: "/nonexistent/new.yaml",
		},
		"a file with no StatefulSet is bad input": {
			args: func(t *testing.T) []string {
				p := filepath.Join(t.TempDir(), "cm.yaml")
				_ = os.WriteFile(p, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"), 0o644)
				return []string{"--new", p}
			},
			wantCode: 2, wantMessage: "holds no StatefulSet",
		},
		"an unknown enforcement mode is bad input naming the flag": {
			args: func(t *testing.T) []string {
				return []string{"--new", live, "--enforcement", "loud"}
			},
			wantCode: 2, wantMessage: "--enforcement",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, msg, code := runCheck(t, tc.args(t)...)
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nmessage: %s", code, tc.wantCode, out, msg)
			}
			if tc.wantMessage != "" && !strings.Contains(msg, tc.wantMessage) {
				t.Errorf("message %q does not mention %q", msg, tc.wantMessage)
			}
			if code == 2 {
				return
			}
			var rep struct {
				Allowed bool `json:"allowed"`
				Objects []struct {
					Allowed  bool              `json:"allowed"`
					Patch    []json.RawMessage `json:"patch"`
					Findings []struct {
						Rule string `json:"rule"`
					} `json:"findings"`
				} `json:"objects"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Objects) != 1 {
				t.Fatalf("output is not the check JSON of one object: %v\n%s", err, out)
			}
			res := rep.Objects[0]
			if res.Allowed != (tc.wantCode == 0) || rep.Allowed != res.Allowed {
				t.Errorf("allowed = %v (report %v) with exit code %d", res.Allowed, rep.Allowed, code)
			}
			var rules []string
			for _, f := range res.Findings {
				rules = append(rules, f.Rule)
			}
			for _, r := range tc.wantRules {
				if !strings.Contains(strings.Join(rules, ","), r) {
					t.Errorf("rules %v lack %s", rules, r)
				}
			}
			if len(tc.wantRules) == 0 && len(rules) != 0 {
				t.Errorf("rules = %v, want none (helm template vs live must not differ by defaults)", rules)
			}
			if tc.wantPatch != "" && !strings.Contains(out, tc.wantPatch) {
				t.Errorf("patch lacks %s:\n%s", tc.wantPatch, out)
			}
			if tc.wantPatch == "" && len(res.Patch) != 0 {
				t.Errorf("patch = %s, want none", res.Patch)
			}
		})
	}
}

func TestCheckBadInput(t *testing.T) {
	offline(t)
	live := filepath.Join(fixtureDir, "statefulset-live.yaml")
	helm := filepath.Join(fixtureDir, "statefulset-helm.yaml")
	tests := map[string]struct {
		args        func(t *testing.T) []string
		wantMessage string
	}{
		"pods mixed with other kinds": {
			args:        func(t *testing.T) []string { return []string{"--new", helm, "--old", live, "--pods", live} },
			wantMessage: "is a StatefulSet (pd-upgrade-example-pingdirectory), want only Pods",
		},
		"two StatefulSets with the same namespace and name": {
			args: func(t *testing.T) []string {
				return []string{"--new", helm, "--new", writeVariant(t, "statefulset-helm.yaml")}
			},
			wantMessage: "two StatefulSets named ping/pd-upgrade-example-pingdirectory",
		},
		"an unknown format": {
			args:        func(t *testing.T) []string { return []string{"--new", helm, "-o", "sarif"} },
			wantMessage: `-o must be one of text, json, junit, markdown, got "sarif"`,
		},
		"a directory that cannot be read": {
			args:        func(t *testing.T) []string { return []string{"--new", "/nonexistent/manifests"} },
			wantMessage: "reading /nonexistent/manifests",
		},
		"a directory with a manifest that cannot be read": {
			args: func(t *testing.T) []string {
				dir := t.TempDir()
				if err := os.Symlink(filepath.Join(dir, "gone.yaml"), filepath.Join(dir, "statefulset.yaml")); err != nil {
					t.Fatal(err)
				}
				return []string{"--new", dir}
			},
			wantMessage: "statefulset.yaml",
		},
		"a directory without manifests": {
			args:        func(t *testing.T) []string { return []string{"--new", t.TempDir()} },
			wantMessage: "holds no .yaml, .yml or .json file",
		},
		"a document that is not a Kubernetes object": {
			args: func(t *testing.T) []string {
				p := filepath.Join(t.TempDir(), "values.yaml")
				_ = os.WriteFile(p, []byte("image:\n  tag: 9.1.0.0-latest\n"), 0o644)
				return []string{"--new", p}
			},
			wantMessage: "values.yaml: document 1 is not a Kubernetes object: it has no kind or apiVersion",
		},
		"--live with --old": {
			args:        func(t *testing.T) []string { return []string{"--new", helm, "--old", live, "--live"} },
			wantMessage: "leave out --old",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, msg, code := runCheck(t, tc.args(t)...)
			if code != exitBadInput {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nmessage: %s", code, exitBadInput, out, msg)
			}
			if !strings.Contains(msg, tc.wantMessage) {
				t.Errorf("message %q does not say %q", msg, tc.wantMessage)
			}
		})
	}
}

// A release directory with a subdirectory check may not read is bad input naming it: part
// of a release must never be checked as the whole.
func TestCheckUnreadableDirectory(t *testing.T) {
	if unprivileged.Rerun(t) {
		return
	}
	offline(t)
	dir := t.TempDir()
	writeYAML(t, dir, "statefulset.yaml", fixture.HelmTemplate())
	locked := filepath.Join(dir, "templates")
	if err := os.Mkdir(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	out, msg, code := runCheck(t, "--new", dir)
	if code != exitBadInput {
		t.Fatalf("exit code = %d, want %d\nstdout: %s\nmessage: %s", code, exitBadInput, out, msg)
	}
	if want := "reading directory " + locked + ": open " + locked + ": permission denied"; !strings.Contains(msg, want) {
		t.Errorf("message %q does not say %q", msg, want)
	}
}

// The objects of other kinds in a release are counted always and listed only with -v.
func TestCheckListsIgnoredKindsWithVerbose(t *testing.T) {
	offline(t)
	args := []string{"--old", filepath.Join(chartTestdata, "old.yaml"), "--new", filepath.Join(chartTestdata, "tag.yaml")}
	quiet, msg, code := runCheck(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	verbose, msg, code := runCheck(t, append(args, "-v")...)
	if code != 0 {
		t.Fatalf("-v: exit %d: %s", code, msg)
	}
	const summary = "2 other object(s) ignored (1 ConfigMap, 1 Service)"
	listed := []string{"ignored: ConfigMap pd-upgrade-example-pingdirectory-env-vars", "ignored: Service pd-upgrade-example-pingdirectory-cluster"}
	for _, l := range listed {
		if strings.Contains(quiet, l) {
			t.Errorf("without -v the output lists %q:\n%s", l, quiet)
		}
		if !strings.Contains(verbose, l) {
			t.Errorf("with -v the output does not list %q:\n%s", l, verbose)
		}
	}
	if !strings.Contains(quiet, summary) || !strings.Contains(verbose, summary) {
		t.Errorf("the outputs do not count the ignored objects as %q:\n%s\n%s", summary, quiet, verbose)
	}
}

// Manifests without a namespace get -n, else the kubeconfig context's namespace, else
// default; the cluster is not contacted offline.
func TestCheckNamespaceDefault(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: team
  context: {cluster: c, user: u, namespace: team-a}
current-context: team
`), 0o600); err != nil {
		t.Fatal(err)
	}
	release := filepath.Join(chartTestdata, "tag.yaml")
	for _, tc := range []struct {
		env, want string
		args      []string
	}{
		{env: kubeconfig, want: "team-a"},
		{env: kubeconfig, args: []string{"-n", "ping"}, want: "ping"},
		{env: filepath.Join(t.TempDir(), "none"), want: "default"},
	} {
		t.Setenv("KUBECONFIG", tc.env)
		out, msg, code := runCheck(t, append([]string{"--new", release, "-o", "json"}, tc.args...)...)
		var rep checkReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || len(rep.Objects) != 1 {
			t.Fatalf("%v: exit %d, %v: %s%s", tc.args, code, err, out, msg)
		}
		if o := rep.Objects[0]; o.Namespace != tc.want || o.Operation != "CREATE" {
			t.Errorf("KUBECONFIG %s, args %v: %s %s/%s, want CREATE in %s", tc.env, tc.args, o.Operation, o.Namespace, o.Name, tc.want)
		}
	}
}
