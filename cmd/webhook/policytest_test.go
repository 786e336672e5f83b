package main

import (
	"bytes"
	"strings"
	"testing"
)

func runPolicyTest(t *testing.T, args ...string) (stdout, message string, code int) {
	t.Helper()
	root := newRootCommand()
	root.SetArgs(append([]string{"policy", "test"}, args...))
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	code, message = mainExit(root.Execute())
	return out.String(), message + errOut.String(), code
}

func TestPolicyTestCommand(t *testing.T) {
	tests := map[string]struct {
		args        []string
		wantCode    int
		wantOut     []string
		wantMessage string
	}{
		"site rule tests that pass against the built-in policy": {
			args:     []string{"-v", "testdata/policy/passing"},
			wantCode: 0,
			wantOut: []string{
				"data.site.freeze_test.test_a_frozen_statefulset_refuses_a_version_change: PASS",
				"data.site.freeze_test.test_warn_mode_only_warns: PASS",
				"PASS: 3/3",
			},
		},
		"a failing site rule test exits 1 and is named": {
			args:     []string{"testdata/policy/failing"},
			wantCode: 1,
			wantOut:  []string{"data.site.freeze_test.test_a_config_change_is_frozen_too: FAIL", "PASS: 1/2", "FAIL: 1/2"},
		},
		"a module that does not parse is bad input naming the file": {
			args:     []string{"testdata/policy/broken"},
			wantCode: 2, wantMessage: "broken.rego",
		},
		"a directory without tests is bad input": {
			args:     []string{"testdata/policy/broken/.."},
			wantCode: 2, wantMessage: "no tests found",
		},
		"a missing directory is bad input": {
			args:     []string{"testdata/policy/absent"},
			wantCode: 2, wantMessage: "absent",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			out, msg, code := runPolicyTest(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nmessage: %s", code, tt.wantCode, out, msg)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			if !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMessage)
			}
			if strings.Contains(out, "pdguard.validate_test") {
				t.Errorf("the built-in tests ran too:\n%s", out)
			}
		})
	}
}
