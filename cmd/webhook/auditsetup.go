package main

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	reportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pdguard/pdguard/internal/audit"
	"github.com/pdguard/pdguard/internal/audit/openreports"
)

type auditFlags struct {
	queueSize    int
	results      int
	drainTimeout time.Duration
	reports      bool
}

func (f *auditFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.queueSize, "audit-queue-size", 1024, "audit records waiting for the Event and Report sinks; when full, a record is dropped from them (counted in pdguard_audit_records_dropped_total), never holding up admission")
	fs.IntVar(&f.results, "audit-report-results", 100, "results kept in each StatefulSet's OpenReports Report, newest first")
	fs.DurationVar(&f.drainTimeout, "audit-drain-timeout", 10*time.Second, "on shutdown, how long queued audit records may take to reach Events and Reports")
	fs.BoolVar(&f.reports, "audit-reports", true, "keep audit records as openreports.io Reports when the API server serves them")
}

func (f *auditFlags) validate() error {
	if f.queueSize < 1 {
		return fmt.Errorf("--audit-queue-size must be at least 1, got %d", f.queueSize)
	}
	if f.results < 1 {
		return fmt.Errorf("--audit-report-results must be at least 1, got %d", f.results)
	}
	if f.drainTimeout < 0 {
		return fmt.Errorf("--audit-drain-timeout must not be negative, got %s", f.drainTimeout)
	}
	return nil
}

// auditPipeline is the running audit pipeline and what must be stopped after it.
type auditPipeline struct {
	*audit.Pipeline
	broadcaster events.EventBroadcaster
	timeout     time.Duration
}

// setupAudit builds the pipeline: Events from its own broadcaster and Reports from a
// direct client, so both still write while the manager shuts down and the queue drains.
func setupAudit(mgr ctrl.Manager, f *auditFlags, scheme *runtime.Scheme, log logr.Logger) (*auditPipeline, error) {
	if err := reportsv1alpha1.Install(scheme); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(make(chan struct{}))
	sinks := []audit.Sink{audit.EventSink{Admission: b.NewRecorder(scheme, "pdguard"), Controller: b.NewRecorder(scheme, "pdguard-evidence")}}

	if f.reports {
		ok, err := openreports.Available(mgr.GetRESTMapper())
		switch {
		case err != nil:
			return nil, err
		case !ok:
			log.Info("the openreports.io Report CRD is not installed: audit records go to the log, metrics and Events only (Events expire after the API server's --event-ttl); install the CRD (chart value openreports.installCRD=true) and restart pdguard to keep them as Reports")
		default:
			c, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper()})
			if err != nil {
				return nil, err
			}
			sinks = append(sinks, &openreports.Sink{Client: c, Log: log.WithName("openreports"), MaxResults: f.results})
			log.Info("audit records are kept as openreports.io Reports", "resultsKept", f.results)
		}
	}
	p := audit.New(audit.Options{Log: log, Registerer: crmetrics.Registry, Sinks: sinks, QueueSize: f.queueSize})
	p.Start()
	return &auditPipeline{Pipeline: p, broadcaster: b, timeout: f.drainTimeout}, nil
}

// runAndDrain runs the manager and, once it has stopped (the webhook server has answered
// its last request), writes the queued records before the process exits.
func (a *auditPipeline) runAndDrain(ctx context.Context, mgr ctrl.Manager) error {
	err := mgr.Start(ctx)
	a.Shutdown(a.timeout)
	a.broadcaster.Shutdown()
	return err
}
