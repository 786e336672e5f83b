package scenario

import (
	"context"
	"encoding/json"
)

// Helm is one helm major version. The two differ in how an upgrade reaches the
// apiserver: helm 3 sends a client-side three-way strategic merge patch, helm 4 a
// server-side apply as field manager "helm".
type Helm struct {
	// Name is how scenarios are labelled: helm4 or helm3.
	Name   string
	Major  int
	binary string
}

// Helm4 and Helm3 are the pinned helm binaries from bin/tools.
func (e *Env) Helm4() Helm { return Helm{Name: "helm4", Major: 4, binary: e.tool("helm")} }
func (e *Env) Helm3() Helm { return Helm{Name: "helm3", Major: 3, binary: e.tool("helm3")} }

// Helms lists both, newest first.
func (e *Env) Helms() []Helm { return []Helm{e.Helm4(), e.Helm3()} }

// RunHelm runs helm as the admin.
func (e *Env) RunHelm(ctx context.Context, h Helm, args ...string) Result {
	return e.run(ctx, e.CP.KubeconfigPath(), h.binary, "helm", args...)
}

// Revision is one entry of `helm history`.
type Revision struct {
	Revision    int    `json:"revision"`
	Status      string `json:"status"`
	Chart       string `json:"chart"`
	AppVersion  string `json:"app_version"`
	Description string `json:"description"`
}

// History returns the release's revisions, oldest first.
func (r *Release) History(ctx context.Context) ([]Revision, error) {
	res := r.Env.RunHelm(ctx, r.Helm, "history", r.Name, "-n", r.Namespace, "-o", "json")
	if !res.OK() {
		return nil, errorf("helm history %s: %s", r.Name, res.Output())
	}
	var revs []Revision
	if err := json.Unmarshal([]byte(res.Stdout), &revs); err != nil {
		return nil, errorf("decoding helm history: %w\n%s", err, res.Stdout)
	}
	return revs, nil
}
