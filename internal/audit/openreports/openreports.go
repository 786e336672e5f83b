// Package openreports keeps audit records as OpenReports (openreports.io/v1alpha1)
// Reports, the API Kyverno and Policy Reporter read: one Report per guarded StatefulSet,
// owned by it, one result per record, the newest results kept.
package openreports

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pdguard/pdguard/internal/audit"
)

const (
	// Source names pdguard as the engine behind the Report and its results.
	Source = "pdguard"
	// Policy is the policy every result is filed under; the rule is the rule id.
	Policy = "pdguard"
	// KeyProperty holds the record's stable key, which makes writes idempotent.
	KeyProperty = "key"
	// StatefulSetLabel names the StatefulSet a Report is about.
	StatefulSetLabel = "pdguard.io/statefulset"
)

// ReportName is the name of a StatefulSet's Report.
func ReportName(statefulSet string) string { return "pdguard-" + statefulSet }

// Available says whether the API server serves Reports. A missing CRD is not an error:
// pdguard then keeps its records in logs, metrics and Events only.
func Available(mapper meta.RESTMapper) (bool, error) {
	_, err := mapper.RESTMapping(reportsv1alpha1.SchemeGroupVersion.WithKind("Report").GroupKind(), reportsv1alpha1.SchemeGroupVersion.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("looking up openreports.io Reports: %w", err)
}

// Sink writes records into Reports. Its client must reach the API server directly
// (not a cache): it also writes while pdguard shuts down.
type Sink struct {
	Client client.Client
	Log    logr.Logger
	// MaxResults is how many results a Report keeps, newest first.
	MaxResults int
}

func (*Sink) Name() string { return "openreports" }

// Write adds the records' results, one Report update per StatefulSet.
func (s *Sink) Write(ctx context.Context, records []audit.Record) error {
	groups := map[types.NamespacedName][]audit.Record{}
	var order []types.NamespacedName
	for i := range records {
		r := records[i]
		if !r.Reported() {
			continue
		}
		nn := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
		if _, ok := groups[nn]; !ok {
			order = append(order, nn)
		}
		groups[nn] = append(groups[nn], r)
	}
	var errs []error
	for _, nn := range order {
		if err := s.write(ctx, nn, groups[nn]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Sink) write(ctx context.Context, nn types.NamespacedName, records []audit.Record) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var sts appsv1.StatefulSet
	if err := s.Client.Get(ctx, nn, &sts); err != nil {
		if apierrors.IsNotFound(err) {
			// A refused create, or a set deleted since: no StatefulSet to own a Report.
			s.Log.V(1).Info("no StatefulSet to hold the audit Report; the records are in the log only", "namespace", nn.Namespace, "name", nn.Name, "records", len(records))
			return nil
		}
		return fmt.Errorf("reading StatefulSet %s for its audit Report: %w", nn, err)
	}
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, retriable, func() error {
		var rep reportsv1alpha1.Report
		err := s.Client.Get(ctx, types.NamespacedName{Namespace: nn.Namespace, Name: ReportName(nn.Name)}, &rep)
		switch {
		case apierrors.IsNotFound(err):
			rep = NewReport(&sts)
			Apply(&rep, records, s.MaxResults)
			return s.Client.Create(ctx, &rep)
		case err != nil:
			return err
		}
		if !Apply(&rep, records, s.MaxResults) {
			return nil
		}
		return s.Client.Update(ctx, &rep)
	})
	if err != nil {
		return fmt.Errorf("writing audit Report %s/%s: %w", nn.Namespace, ReportName(nn.Name), err)
	}
	return nil
}

// NewReport is the empty Report of a StatefulSet, owned by it so it goes with it.
func NewReport(sts *appsv1.StatefulSet) reportsv1alpha1.Report {
	return reportsv1alpha1.Report{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: sts.Namespace,
			Name:      ReportName(sts.Name),
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "pdguard", StatefulSetLabel: sts.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID,
			}},
		},
		Source: Source,
		Scope:  &corev1.ObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: sts.Namespace, Name: sts.Name, UID: sts.UID},
	}
}

// Apply adds the records' results that the Report does not hold yet, keeps the newest
// max, and recounts the summary. It reports whether anything changed.
func Apply(rep *reportsv1alpha1.Report, records []audit.Record, max int) bool {
	have := map[string]bool{}
	for _, res := range rep.Results {
		have[res.Properties[KeyProperty]] = true
	}
	changed := false
	for i := range records {
		res := Result(&records[i])
		if have[res.Properties[KeyProperty]] {
			continue
		}
		have[res.Properties[KeyProperty]] = true
		rep.Results = append(rep.Results, res)
		changed = true
	}
	if !changed {
		return false
	}
	slices.SortStableFunc(rep.Results, func(a, b reportsv1alpha1.ReportResult) int {
		if c := compareTimestamps(a.Timestamp, b.Timestamp); c != 0 {
			return c
		}
		return strings.Compare(a.Properties[KeyProperty], b.Properties[KeyProperty])
	})
	if max > 0 && len(rep.Results) > max {
		rep.Results = slices.Clone(rep.Results[len(rep.Results)-max:])
	}
	rep.Source = Source
	rep.Configuration = &reportsv1alpha1.ReportConfiguration{Limits: reportsv1alpha1.Limits{MaxResults: max}}
	rep.Summary = Summarize(rep.Results)
	return true
}

func compareTimestamps(a, b metav1.Timestamp) int {
	if a.Seconds != b.Seconds {
		if a.Seconds < b.Seconds {
			return -1
		}
		return 1
	}
	return int(a.Nanos) - int(b.Nanos)
}

// Summarize counts results by outcome.
func Summarize(results []reportsv1alpha1.ReportResult) reportsv1alpha1.ReportSummary {
	var s reportsv1alpha1.ReportSummary
	for _, r := range results {
		switch r.Result {
		case audit.ResultPass:
			s.Pass++
		case audit.ResultFail:
			s.Fail++
		case audit.ResultWarn:
			s.Warn++
		case "error":
			s.Error++
		case "skip":
			s.Skip++
		}
	}
	return s
}

// Result is one record as a Report result; the details go into its properties.
func Result(r *audit.Record) reportsv1alpha1.ReportResult {
	props := map[string]string{KeyProperty: r.Key(), "kind": r.Kind, "time": r.Time.UTC().Format(time.RFC3339Nano)}
	set := func(k, v string) {
		if v != "" {
			props[k] = v
		}
	}
	set("webhook", r.Webhook)
	set("operation", r.Operation)
	set("user", r.User)
	set("groups", strings.Join(r.Groups, ","))
	set("rules", strings.Join(r.Rules, ","))
	set("fromImage", r.FromImage)
	set("toImage", r.ToImage)
	set("fromVersion", r.FromVersion)
	set("toVersion", r.ToVersion)
	set("updateRevision", r.UpdateRevision)
	set("mode", r.Mode)
	set("outcome", r.Outcome)
	set("uid", string(r.UID))
	set("pod", r.Pod)
	set("verdict", r.Verdict)
	set("details", strings.Join(r.Details, "\n"))
	if r.Overridden() {
		props["override"] = "true"
	}
	subjects := []corev1.ObjectReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: r.Namespace, Name: r.Name, UID: r.UID}}
	if r.RelatedPod != nil {
		subjects = append(subjects, corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: r.RelatedPod.Namespace, Name: r.RelatedPod.Name, UID: r.RelatedPod.UID})
	}
	return reportsv1alpha1.ReportResult{
		Source:      Source,
		Policy:      Policy,
		Rule:        r.Rule(),
		Category:    r.Kind,
		Result:      reportsv1alpha1.Result(r.Result()),
		Timestamp:   metav1.Timestamp{Seconds: r.Time.Unix(), Nanos: int32(r.Time.Nanosecond())},
		Subjects:    subjects,
		Description: r.Text(),
		Properties:  props,
	}
}
