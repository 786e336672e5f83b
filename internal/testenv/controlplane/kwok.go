package controlplane

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// CrashLoopLabel makes KWOK crash-loop every container of a pod labelled with it: each
// container runs for about a second, exits with the label's value as exit code, waits
// in CrashLoopBackOff for about a second with restartCount raised and
// lastState.terminated recording the exit, and starts again. The pod stays Running and
// never becomes Ready. Set it on a pod template to make new pods crash from the start,
// or on a running pod to make it start crashing; removing it lets the pod recover.
const CrashLoopLabel = "pdguard.test/exit-code"

// DefaultContainer is the container ServePodLogs serves logs for.
const DefaultContainer = "pingdirectory"

// kwokManifests is where hack/build-tools.sh copies KWOK's kustomize tree, so CRDs and
// stages always match the kwok binary next to them.
const kwokManifests = "kwok-kustomize"

//go:embed stages.yaml
var podStages []byte

var (
	crdGVR         = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	stageGVR       = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"}
	logsGVR        = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}
	clusterLogsGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "clusterlogs"}
)

func (cp *ControlPlane) startKWOK(ctx context.Context) error {
	manifests := filepath.Join(cp.opts.BinDir, kwokManifests)
	if _, err := os.Stat(manifests); err != nil {
		return fmt.Errorf("KWOK manifests not found in %s; run `make tools`", manifests)
	}
	dyn, err := dynamic.NewForConfig(cp.admin)
	if err != nil {
		return err
	}

	var crds []*unstructured.Unstructured
	for _, name := range []string{"stages", "logs", "clusterlogs"} {
		objs, err := readManifests(filepath.Join(manifests, "crd", "bases", "kwok.x-k8s.io_"+name+".yaml"))
		if err != nil {
			return err
		}
		crds = append(crds, objs...)
	}
	apiserver := cp.proc("kube-apiserver")
	for _, crd := range crds {
		if err := apply(ctx, dyn.Resource(crdGVR), crd); err != nil {
			return err
		}
	}
	for _, crd := range crds {
		if err := cp.waitFor(ctx, apiserver, "CRD "+crd.GetName()+" to be established", func(ctx context.Context) error {
			return established(ctx, dyn, crd.GetName())
		}); err != nil {
			return err
		}
	}
	// Established can come before the resources are served; a KWOK whose first list
	// fails backs off for seconds before it sees any Logs.
	for _, gvr := range []schema.GroupVersionResource{stageGVR, logsGVR, clusterLogsGVR} {
		if err := cp.waitFor(ctx, apiserver, "the apiserver to serve "+gvr.Resource+"."+gvr.Group, func(ctx context.Context) error {
			_, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}); err != nil {
			return err
		}
	}

	var stages []*unstructured.Unstructured
	for _, file := range []string{
		"stage/node/fast/node-initialize.yaml",
		"stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"stage/pod/fast/pod-delete.yaml",
		"stage/pod/fast/pod-complete.yaml",
	} {
		objs, err := readManifests(filepath.Join(manifests, file))
		if err != nil {
			return err
		}
		stages = append(stages, objs...)
	}
	ours, err := decodeManifests(bytes.NewReader(podStages), "stages.yaml")
	if err != nil {
		return err
	}
	stages = append(stages, ours...)
	for _, stage := range stages {
		if err := apply(ctx, dyn.Resource(stageGVR), stage); err != nil {
			return err
		}
	}

	kwokCert, err := cp.ca.client("system:kwok-controller", "system:masters")
	if err != nil {
		return err
	}
	kubeconfig, err := cp.writeKubeconfig("kwok", kwokCert)
	if err != nil {
		return err
	}
	home := filepath.Join(cp.workDir, "kwok-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", home, err)
	}
	port := strconv.Itoa(cp.kwokPort)
	kwok, err := cp.start("kwok", []string{
		"--kubeconfig=" + kubeconfig,
		"--manage-all-nodes=true",
		"--node-ip=127.0.0.1",
		"--node-name=" + NodeName,
		"--node-port=" + port,
		"--server-address=127.0.0.1:" + port,
		"--cidr=" + podCIDR,
		"--node-lease-duration-seconds=40",
		"--enable-crds=Stage,Logs,ClusterLogs",
	}, []string{
		// KWOK always reads ~/.kwok/kwok.yaml when it exists; a home of its own keeps a
		// developer's configuration out of the tests.
		"HOME=" + home,
	})
	if err != nil {
		return err
	}

	cs, err := kubernetes.NewForConfig(cp.admin)
	if err != nil {
		return err
	}
	version, err := cs.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("reading the apiserver version: %w", err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: NodeName,
		Labels: map[string]string{
			"kubernetes.io/hostname": NodeName,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
			"type":                   "kwok",
		},
		Annotations: map[string]string{
			"kwok.x-k8s.io/node":           "fake",
			"node.alpha.kubernetes.io/ttl": "0",
		},
	}}
	// KWOK's node stage keeps a kubelet version it finds, and anything reading node
	// versions should see the cluster's rather than KWOK's.
	node.Status.NodeInfo.KubeletVersion = version.GitVersion
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating node %s: %w", NodeName, err)
	}
	what := "node " + NodeName + " to become Ready"
	if cp.opts.Controllers {
		what = "node " + NodeName + " to become Ready and lose its not-ready taints"
	}
	return cp.waitFor(ctx, kwok, what, func(ctx context.Context) error {
		n, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return errors.New("node not Ready")
		}
		// The not-ready taints keep the scheduler away until node-lifecycle lifts them.
		if cp.opts.Controllers && len(n.Spec.Taints) > 0 {
			return fmt.Errorf("node still tainted: %v", n.Spec.Taints)
		}
		return nil
	})
}

// ServePodLogs makes `kubectl logs` (the pods/log API) return current for the
// pingdirectory container of the pod, and previous for `--previous`; nil previous
// means there is no previous container. See ServeContainerLogs.
func (cp *ControlPlane) ServePodLogs(ctx context.Context, namespace, pod string, current, previous []string) error {
	return cp.ServeContainerLogs(ctx, namespace, pod, DefaultContainer, current, previous)
}

// ServeContainerLogs makes the pods/log API return current (and previous, for
// previous=true) as the log lines of one container. Each string is one line of output
// on stdout, stamped with the time of the call. The logs are keyed by pod name, so they
// survive the pod being replaced by its StatefulSet; call again to change them. It
// returns once KWOK serves them.
func (cp *ControlPlane) ServeContainerLogs(ctx context.Context, namespace, pod, container string, current, previous []string) error {
	if !cp.opts.KWOK {
		return errors.New("controlplane: pod logs need Options.KWOK")
	}
	dir := filepath.Join(cp.workDir, "pod-logs", namespace, pod)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	entry := map[string]any{"containers": []any{container}}
	currentPath := cp.podLogPath(namespace, pod, container)
	if err := writeCRILog(currentPath, current); err != nil {
		return err
	}
	entry["logsFile"] = currentPath
	if previous != nil {
		previousPath := filepath.Join(dir, container+".previous.log")
		if err := writeCRILog(previousPath, previous); err != nil {
			return err
		}
		entry["previousLogsFile"] = previousPath
	}

	dyn, err := dynamic.NewForConfig(cp.admin)
	if err != nil {
		return err
	}
	logs := dyn.Resource(logsGVR).Namespace(namespace)
	cp.logsMu.Lock()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, err := logs.Get(ctx, pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			obj = &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "kwok.x-k8s.io/v1alpha1",
				"kind":       "Logs",
				"metadata":   map[string]any{"name": pod, "namespace": namespace},
				"spec":       map[string]any{"logs": []any{entry}},
			}}
			// Apply rather than create: the apiserver holds every create of a custom
			// resource for 2s while its CRD is less than 2s established, which right
			// after Start is the case.
			return apply(ctx, logs, obj)
		}
		if err != nil {
			return err
		}
		existing, _, _ := unstructured.NestedSlice(obj.Object, "spec", "logs")
		merged := []any{entry}
		for _, e := range existing {
			if m, ok := e.(map[string]any); ok && !servesContainer(m, container) {
				merged = append(merged, m)
			}
		}
		if err := unstructured.SetNestedSlice(obj.Object, merged, "spec", "logs"); err != nil {
			return err
		}
		_, err = logs.Update(ctx, obj, metav1.UpdateOptions{})
		return err
	})
	cp.logsMu.Unlock()
	if err != nil {
		return fmt.Errorf("controlplane: writing Logs %s/%s: %w", namespace, pod, err)
	}

	// KWOK learns about Logs through a watch; asking it directly shows when it has.
	kwok := cp.proc("kwok")
	base := fmt.Sprintf("http://127.0.0.1:%d/containerLogs/%s/%s/%s", cp.kwokPort,
		url.PathEscape(namespace), url.PathEscape(pod), url.PathEscape(container))
	want := []string{base + "?limitBytes=1"}
	if previous != nil {
		want = append(want, base+"?previous=true&limitBytes=1")
	}
	for _, u := range want {
		if err := cp.waitFor(ctx, kwok, "KWOK to serve logs of "+namespace+"/"+pod+"/"+container, func(ctx context.Context) error {
			return httpOK(ctx, http.DefaultClient, u)
		}); err != nil {
			return fmt.Errorf("controlplane: %w", err)
		}
	}
	return nil
}

// ReplacePodLog replaces the current log ServePodLogs serves for the pod with lines,
// in the file alone: KWOK reads it on every request, so this works while the apiserver
// is down. ServePodLogs must have been called for the pod before.
func (cp *ControlPlane) ReplacePodLog(namespace, pod string, lines []string) error {
	path := cp.podLogPath(namespace, pod, DefaultContainer)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("controlplane: no log served for %s/%s yet (ServePodLogs): %w", namespace, pod, err)
	}
	return writeCRILog(path, lines)
}

// FailPodLogs makes the pods/log API answer with an error for the pingdirectory
// container of the pod, as a kubelet does whose log file is gone: its Logs entry points
// to a file that does not exist. It returns once KWOK answers so; ServePodLogs serves
// logs again.
func (cp *ControlPlane) FailPodLogs(ctx context.Context, namespace, pod string) error {
	if err := cp.ServePodLogs(ctx, namespace, pod, []string{"this log is about to go"}, nil); err != nil {
		return err
	}
	if err := os.Remove(cp.podLogPath(namespace, pod, DefaultContainer)); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	u := fmt.Sprintf("http://127.0.0.1:%d/containerLogs/%s/%s/%s?limitBytes=1", cp.kwokPort,
		url.PathEscape(namespace), url.PathEscape(pod), url.PathEscape(DefaultContainer))
	return cp.waitFor(ctx, cp.proc("kwok"), "KWOK to fail the logs of "+namespace+"/"+pod, func(ctx context.Context) error {
		if err := httpOK(ctx, http.DefaultClient, u); err == nil {
			return errors.New("KWOK still serves the log")
		}
		return nil
	})
}

func (cp *ControlPlane) podLogPath(namespace, pod, container string) string {
	return filepath.Join(cp.workDir, "pod-logs", namespace, pod, container+".log")
}

func servesContainer(entry map[string]any, container string) bool {
	names, _, _ := unstructured.NestedStringSlice(entry, "containers")
	for _, n := range names {
		if n == container {
			return true
		}
	}
	return false
}

// writeCRILog writes lines in the CRI log format kubelets read
// (`<RFC3339Nano> stdout F <line>`), replacing the file atomically so a concurrent
// reader sees the old or the new log, never half of one.
func writeCRILog(path string, lines []string) error {
	var b strings.Builder
	now := time.Now().UTC()
	for i, line := range lines {
		// Distinct, increasing timestamps keep --since-time and --timestamps meaningful.
		ts := now.Add(time.Duration(i-len(lines)) * time.Millisecond)
		for _, part := range strings.Split(strings.TrimSuffix(line, "\n"), "\n") {
			fmt.Fprintf(&b, "%s stdout F %s\n", ts.Format(time.RFC3339Nano), part)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("controlplane: writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("controlplane: writing %s: %w", path, err)
	}
	return nil
}

func readManifests(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading KWOK manifest: %w", err)
	}
	defer f.Close()
	return decodeManifests(f, path)
}

func decodeManifests(r io.Reader, source string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decoding %s: %w", source, err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// apply creates or updates obj by server-side apply, so restarting against the same
// etcd data or re-applying is harmless.
func apply(ctx context.Context, client dynamic.ResourceInterface, obj *unstructured.Unstructured) error {
	data, err := obj.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	force := true
	if _, err := client.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		FieldManager: "pdguard-controlplane",
		Force:        &force,
	}); err != nil {
		return fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return nil
}

func established(ctx context.Context, dyn dynamic.Interface, name string) error {
	crd, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return nil
		}
	}
	return errors.New("not established yet")
}
