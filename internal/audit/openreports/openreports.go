// Package openreports keeps audit records as OpenReports (openreports.io/v1alpha1)
// Reports, the API Kyverno and Policy Reporter read: one Report per guarded StatefulSet,
// owned by it, one result per record, the newest results kept.
package openreports

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
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
	// Now is the clock of the written-keys memo; nil is time.Now.
	Now func() time.Time

	mu sync.Mutex
	// written holds, per StatefulSet, the keys its Report held after the sink's last
	// write or read of it. A rollout retried in a loop (a CD tool re-applying the same
	// bundled change, a promotion refused until the canary is proven) gives the same
	// record again and again, and each batch of them cost a read of the StatefulSet and
	// of its Report only to find every result already there.
	written    map[types.NamespacedName]writtenKeys
	lastPruned time.Time
}

// writtenKeys are a Report's result keys as the sink last saw them.
type writtenKeys struct {
	keys map[string]bool
	seen time.Time
	// unowned: the StatefulSet did not exist, and keys are the records that found it so.
	unowned bool
}

// writtenFor is how long the sink trusts what it last saw of a Report. Within it, a
// record whose key was in the Report is not written again, even if the Report was
// deleted, or another replica's writes pushed the result out, since: the record is then
// still in the log, the metrics and the Event. After it, the next such record reads the
// Report again.
const writtenFor = 10 * time.Second

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
		records := s.unwritten(nn, groups[nn])
		if len(records) == 0 {
			continue
		}
		keys, err := s.write(ctx, nn, records)
		switch {
		case errors.Is(err, errNoStatefulSet):
			s.rememberUnowned(nn, records)
		case err != nil:
			errs = append(errs, err)
		default:
			s.remember(nn, keys, false)
		}
	}
	return errors.Join(errs...)
}

func (s *Sink) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// unwritten drops the records whose results the StatefulSet's Report held when the sink
// last saw it, within writtenFor.
func (s *Sink) unwritten(nn types.NamespacedName, records []audit.Record) []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.written[nn]
	if !ok || s.now().Sub(w.seen) >= writtenFor {
		return records
	}
	return slices.DeleteFunc(records, func(r audit.Record) bool { return w.keys[r.Key()] })
}

// remember keeps a Report's keys after a write, and forgets the Reports not seen within
// writtenFor, so the memo holds only StatefulSets with recent records.
func (s *Sink) remember(nn types.NamespacedName, keys map[string]bool, unowned bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.written == nil {
		s.written = map[types.NamespacedName]writtenKeys{}
	}
	if now.Sub(s.lastPruned) >= writtenFor {
		for k, w := range s.written {
			if now.Sub(w.seen) >= writtenFor {
				delete(s.written, k)
			}
		}
		s.lastPruned = now
	}
	s.written[nn] = writtenKeys{keys: keys, seen: now, unowned: unowned}
}

// rememberUnowned adds the records' keys to what the sink remembers of a StatefulSet it
// found absent: a record with another key (the set created since) reads it again.
func (s *Sink) rememberUnowned(nn types.NamespacedName, records []audit.Record) {
	keys := map[string]bool{}
	s.mu.Lock()
	if w, ok := s.written[nn]; ok && w.unowned && s.now().Sub(w.seen) < writtenFor {
		maps.Copy(keys, w.keys)
	}
	s.mu.Unlock()
	for i := range records {
		keys[records[i].Key()] = true
	}
	s.remember(nn, keys, true)
}

// errNoStatefulSet: the records' StatefulSet does not exist, so no Report can hold them.
var errNoStatefulSet = errors.New("no StatefulSet to own the Report")

// resultKeys are the keys of a Report's results.
func resultKeys(rep *reportsv1alpha1.Report) map[string]bool {
	keys := make(map[string]bool, len(rep.Results))
	for _, res := range rep.Results {
		keys[res.Properties[KeyProperty]] = true
	}
	return keys
}

// write puts the records into the StatefulSet's Report and returns the keys it then
// holds, or errNoStatefulSet.
func (s *Sink) write(ctx context.Context, nn types.NamespacedName, records []audit.Record) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var sts appsv1.StatefulSet
	if err := s.Client.Get(ctx, nn, &sts); err != nil {
		if apierrors.IsNotFound(err) {
			// A refused create, or a set deleted since: no StatefulSet to own a Report.
			// The records' keys are remembered as dealt with, so a create refused in a
			// loop does not read the StatefulSet again for each batch.
			s.Log.V(1).Info("no StatefulSet to hold the audit Report; the records are in the log only", "namespace", nn.Namespace, "name", nn.Name, "records", len(records))
			return nil, errNoStatefulSet
		}
		return nil, fmt.Errorf("reading StatefulSet %s for its audit Report: %w", nn, err)
	}
	var keys map[string]bool
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, retriable, func() error {
		var rep reportsv1alpha1.Report
		err := s.Client.Get(ctx, types.NamespacedName{Namespace: nn.Namespace, Name: ReportName(nn.Name)}, &rep)
		switch {
		case apierrors.IsNotFound(err):
			rep = NewReport(&sts)
			Apply(&rep, records, s.MaxResults)
			keys = resultKeys(&rep)
			return s.Client.Create(ctx, &rep)
		case err != nil:
			return err
		}
		changed := Apply(&rep, records, s.MaxResults)
		keys = resultKeys(&rep)
		if !changed {
			return nil
		}
		return s.Client.Update(ctx, &rep)
	})
	if err != nil {
		return nil, fmt.Errorf("writing audit Report %s/%s: %w", nn.Namespace, ReportName(nn.Name), err)
	}
	return keys, nil
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
