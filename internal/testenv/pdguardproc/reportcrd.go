package pdguardproc

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/testenv/controlplane"
)

// reportCRDTemplate is the chart's Report CRD, rendered when openreports.installCRD is set.
const reportCRDTemplate = "templates/openreports-crd.yaml"

// InstallReportCRD installs the openreports.io Report CRD as the chart does with
// openreports.installCRD=true, and waits until the API server serves it, so a pdguard
// started after it keeps its audit records as Reports.
func InstallReportCRD(ctx context.Context, cp *controlplane.ControlPlane, chart Chart) error {
	objs, err := chart.Render(ctx, []string{"openreports.installCRD=true"}, reportCRDTemplate)
	if err != nil {
		return err
	}
	if len(objs) != 1 || objs[0].GetKind() != "CustomResourceDefinition" {
		return fmt.Errorf("%s rendered %d objects, want the Report CustomResourceDefinition alone", reportCRDTemplate, len(objs))
	}
	c, err := client.New(cp.RESTConfig(), client.Options{})
	if err != nil {
		return err
	}
	if err := Apply(ctx, c, objs, false); err != nil {
		return fmt.Errorf("installing the Report CRD: %w", err)
	}
	for {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(objs[0].GroupVersionKind())
		err := c.Get(ctx, client.ObjectKeyFromObject(objs[0]), got)
		if err == nil && established(got) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Report CRD was not established: %w (last error %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
