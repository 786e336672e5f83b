package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestPluginNameShowsKubectlPdguard(t *testing.T) {
	root := newRootCommand()
	asPlugin(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"status", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kubectl pdguard status") {
		t.Errorf("help as kubectl-pdguard does not say kubectl pdguard status:\n%s", out.String())
	}
	for _, flag := range []string{"--context", "--namespace", "--kubeconfig", "--all-namespaces", "--watch"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("status has no %s flag", flag)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	prev := commit
	commit = "0123abc"
	t.Cleanup(func() { commit = prev })
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var v versionInfo
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out.String())
	}
	if v.Version == "" || v.Commit != "0123abc" || !strings.HasPrefix(v.GoVersion, "go") || v.BuildDate == "" {
		t.Errorf("version = %+v", v)
	}
}
