package policy

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pdguard/pdguard/internal/rollout"
	"github.com/pdguard/pdguard/internal/testenv/fixture"
)

var (
	fuzzLive = fixture.Live()
	fuzzKey  = rollout.VerdictKey("0123456789abcdef0123456789abcdef")
)

// overlay decodes fuzz JSON over a copy of base, as a partial object someone sent;
// whatever does not decode leaves the rest of base in place.
func overlay[T any](base *T, data []byte) *T {
	_ = json.Unmarshal(data, base)
	return base
}

// FuzzBuildInput builds the policy input from a live object, a requested object and
// three pods, each the chart's objects overlaid with arbitrary JSON. The input is
// deterministic, never changes the request, only carries pods the live StatefulSet owns,
// and never counts a pod as proven on a verdict pdguard did not sign (the fuzzer cannot
// sign one).
func FuzzBuildInput(f *testing.F) {
	canary := `{"spec":{"replicas":3,"updateStrategy":{"rollingUpdate":{"partition":2}}},"status":{"currentRevision":"r1","updateRevision":"r2","observedGeneration":9},"metadata":{"generation":9}}`
	f.Add(byte(1), []byte(`{}`), []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"pingdirectory","image":"pingidentity/pingdirectory:9.1.0.0-latest"}]}}}}`), byte(0), []byte(`{}`))
	f.Add(byte(1), []byte(canary), []byte(`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`), byte(2),
		[]byte(`{"metadata":{"labels":{"controller-revision-hash":"r2"},"annotations":{"pdguard.io/replace-profile":"{\"verdict\":\"Succeeded\",\"revision\":\"r2\",\"signature\":\"AAAA\"}"}}}`))
	f.Add(byte(1), []byte(canary), []byte(`{"spec":{"replicas":-1,"template":{"spec":{"containers":[]}}}}`), byte(1), []byte(`{"metadata":{"name":"other-2","ownerReferences":[]}}`))
	f.Add(byte(0), []byte(`{}`), []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"pingdirectory","image":"pingidentity/pingdirectory@sha256:bad"}]}}}}`), byte(0), []byte(`{}`))
	f.Add(byte(1), []byte(`{"metadata":{"annotations":{"pdguard.io/canary":"{\"toImage\":1}"}},"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}`), []byte(`{"spec":{"replicas":null}}`), byte(0), []byte(`{"status":{"conditions":[{"type":"Ready","status":"True"}]}}`))
	f.Fuzz(func(t *testing.T, op byte, oldJSON, newJSON []byte, which byte, podJSON []byte) {
		req := &Request{Operation: "CREATE", New: overlay(fuzzLive.DeepCopy(), newJSON)}
		if op%2 == 1 {
			req.Operation = "UPDATE"
			req.Old = overlay(fuzzLive.DeepCopy(), oldJSON)
			for i := range int32(3) {
				rev := req.Old.Status.CurrentRevision
				if i == 2 {
					rev = req.Old.Status.UpdateRevision
				}
				req.Pods = append(req.Pods, *fixture.Pod(req.Old, i, rev))
			}
			overlay(&req.Pods[int(which)%len(req.Pods)], podJSON)
		}
		cfg := DefaultConfig()
		cfg.Trust = fuzzKey.Trust
		before := copyRequest(req)
		now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

		in, err := BuildInput("validate", req, cfg, now)
		if !reflect.DeepEqual(copyRequest(req), before) {
			t.Fatal("BuildInput changed the request")
		}
		again, againErr := BuildInput("validate", req, cfg, now)
		if !reflect.DeepEqual(in, again) || (err == nil) != (againErr == nil) {
			t.Fatal("BuildInput is not deterministic")
		}
		if err != nil {
			var ng *NotGuardedError
			if !errors.As(err, &ng) && !strings.HasPrefix(err.Error(), "statefulset ") {
				t.Fatalf("error %q does not name the StatefulSet", err)
			}
			return
		}
		checkInput(t, req, in)
		_ = inputValue(in)
		for _, phase := range []string{"mutate", "validate"} {
			in.Phase = phase
			if _, err := fuzzEngine.Mutate(context.Background(), in); err != nil && strings.Contains(err.Error(), "fast path") {
				t.Fatal(err)
			}
			if _, err := fuzzEngine.Validate(context.Background(), in); err != nil && strings.Contains(err.Error(), "fast path") {
				t.Fatal(err)
			}
		}
	})
}

// fuzzEngine cross-checks the fast path on every input the fuzzer builds.
var fuzzEngine = func() *Engine {
	e, err := New(Options{CrossCheck: true})
	if err != nil {
		panic(err)
	}
	return e
}()

func copyRequest(req *Request) *Request {
	c := *req
	c.New = req.New.DeepCopy()
	c.Old = req.Old.DeepCopy()
	c.Pods = nil
	for i := range req.Pods {
		c.Pods = append(c.Pods, *req.Pods[i].DeepCopy())
	}
	return &c
}

func checkInput(t *testing.T, req *Request, in *Input) {
	t.Helper()
	if in.New.Replicas != rollout.Replicas(req.New) {
		t.Fatalf("new replicas %d, object has %d", in.New.Replicas, rollout.Replicas(req.New))
	}
	if p, has := rollout.Partition(req.New); in.New.Partition != p || in.New.HasPartition != has {
		t.Fatalf("new partition %d/%v, object has %d/%v", in.New.Partition, in.New.HasPartition, p, has)
	}
	if in.Change.ConfigPaths == nil || in.Pods == nil || in.New.Annotations == nil {
		t.Fatal("a list or map of the input is nil; Rego would read it as undefined")
	}
	if req.Old == nil {
		if in.Old != nil || len(in.Pods) != 0 || in.Canary.Open {
			t.Fatal("a CREATE carries live-object facts")
		}
		return
	}
	if in.Canary.Open != rollout.CanaryOpen(req.Old) {
		t.Fatal("canary.open differs from the rollout model")
	}
	seen := map[string]bool{}
	for _, p := range in.Pods {
		if seen[p.Name] {
			t.Fatalf("pod %s appears twice", p.Name)
		}
		seen[p.Name] = true
		if p.Proven {
			t.Fatalf("pod %s is proven, but no verdict the fuzzer can write carries pdguard's signature", p.Name)
		}
		var src *corev1.Pod
		for i := range req.Pods {
			if req.Pods[i].Name == p.Name {
				src = &req.Pods[i]
			}
		}
		if src == nil || !rollout.OwnedBy(req.Old, src) {
			t.Fatalf("pod %s is not one of the live StatefulSet's", p.Name)
		}
		if o, ok := rollout.PodOrdinal(req.Old.Name, src); !ok || o != p.Ordinal {
			t.Fatalf("pod %s has ordinal %d", p.Name, p.Ordinal)
		}
	}
	if len(in.Proof) > 0 {
		t.Fatalf("proof %+v without a signed verdict", in.Proof)
	}
	if !in.Change.VersionChanged && !in.Canary.Open && len(in.Change.ConfigPaths) > 0 {
		t.Fatal("config paths computed when no rule reads them")
	}
}
