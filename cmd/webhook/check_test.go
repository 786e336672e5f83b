package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtureDir = "../../internal/testenv/fixture/testdata"

// writeVariant writes a fixture file with each from->to replacement applied.
func writeVariant(t *testing.T, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(s, replace[i]) {
			t.Fatalf("%s does not contain %q", name, replace[i])
		}
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
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
			var res struct {
				Allowed  bool              `json:"allowed"`
				Patch    []json.RawMessage `json:"patch"`
				Rules    []string          `json:"rules"`
				Reasons  []string          `json:"reasons"`
				Warnings []string          `json:"warnings"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("output is not the check JSON: %v\n%s", err, out)
			}
			if res.Allowed != (tc.wantCode == 0) {
				t.Errorf("allowed = %v with exit code %d", res.Allowed, code)
			}
			for _, r := range tc.wantRules {
				if !strings.Contains(strings.Join(res.Rules, ","), r) {
					t.Errorf("rules %v lack %s", res.Rules, r)
				}
			}
			if len(tc.wantRules) == 0 && len(res.Rules) != 0 {
				t.Errorf("rules = %v, want none (helm template vs live must not differ by defaults)", res.Rules)
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
