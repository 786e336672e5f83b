package audit

import (
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// Metrics are pdguard's Prometheus metrics: admission decisions, the audit queue, and
// the evidence controller's verdicts, promotions and open canaries.
type Metrics struct {
	decisions      *prometheus.CounterVec
	findings       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	dropped        *prometheus.CounterVec
	written        prometheus.Counter
	sinkErrors     *prometheus.CounterVec
	verdicts       *prometheus.CounterVec
	promotions     *prometheus.CounterVec
	policyFailures prometheus.Counter

	mu       sync.Mutex
	canaries map[types.NamespacedName]time.Time
	now      func() time.Time
}

func newMetrics(reg prometheus.Registerer, queueLength func() float64) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdguard_admission_decisions_total",
			Help: "Admission decisions on guarded StatefulSets, by webhook, outcome and enforcement mode.",
		}, []string{"webhook", "decision", "mode"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdguard_rule_findings_total",
			Help: "Rules that fired on guarded StatefulSets, by webhook, rule id and outcome.",
		}, []string{"webhook", "rule", "decision"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pdguard_admission_duration_seconds",
			Help:    "Time to decide one admission request, without network time.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25},
		}, []string{"webhook"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdguard_audit_records_dropped_total",
			Help: "Audit records that reached only the log, not the Event and Report sinks, by why (queue full, shutting down, drain timeout).",
		}, []string{"reason"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdguard_audit_records_written_total",
			Help: "Audit records handed to the Event and Report sinks (a sink's failures are counted in pdguard_audit_sink_errors_total); with pdguard_audit_records_dropped_total it accounts for every record queued or dropped.",
		}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdguard_audit_sink_errors_total",
			Help: "Batches of audit records a sink failed to write, by sink.",
		}, []string{"sink"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdguard_verdicts_total",
			Help: "Replace-profile verdicts the evidence controller wrote, by verdict.",
		}, []string{"verdict"}),
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdguard_promotions_total",
			Help: "Canary promotions (partition lowered on proven verdicts), by who lowered it: admission (a user's change admitted) or controller (auto-promotion).",
		}, []string{"by"}),
		policyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdguard_policy_reload_failures_total",
			Help: "Policy directory reloads rejected (the last good policy stayed in force) or watch errors.",
		}),
		canaries: map[types.NamespacedName]time.Time{},
		now:      time.Now,
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.findings, m.latency, m.dropped, m.written, m.sinkErrors, m.verdicts, m.promotions, m.policyFailures,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pdguard_audit_queue_length",
				Help: "Audit records waiting for the Event and Report sinks.",
			}, queueLength),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pdguard_oldest_open_canary_age_seconds",
				Help: "Age of the oldest canary the evidence controller sees open (0: none).",
			}, m.oldestCanaryAge))
	}
	return m
}

func (m *Metrics) observe(r *Record) {
	switch r.Kind {
	case KindAdmission:
		m.decisions.WithLabelValues(r.Webhook, r.Outcome, r.Mode).Inc()
		for _, rule := range r.Rules {
			m.findings.WithLabelValues(r.Webhook, rule, r.Outcome).Inc()
		}
		m.latency.WithLabelValues(r.Webhook).Observe(r.Latency.Seconds())
		if r.Webhook == "validate" && len(r.Proof) > 0 && !r.DryRun {
			m.promotions.WithLabelValues("admission").Inc()
		}
	case KindVerdict:
		m.verdicts.WithLabelValues(r.Verdict).Inc()
	case KindPromotion:
		m.promotions.WithLabelValues("controller").Inc()
	}
}

// Canary tells the open-canary gauge whether a StatefulSet has a canary open, and
// since when.
func (m *Metrics) Canary(sts types.NamespacedName, open bool, since time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if open && !since.IsZero() {
		m.canaries[sts] = since
	} else {
		delete(m.canaries, sts)
	}
}

func (m *Metrics) oldestCanaryAge() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var oldest time.Time
	for _, t := range m.canaries {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return m.now().Sub(oldest).Seconds()
}

// CountErrors returns log that also counts each error it logs as a policy reload
// failure: the policy watcher reports a rejected reload only by logging it.
func (m *Metrics) CountErrors(log logr.Logger) logr.Logger {
	if log.GetSink() == nil {
		return log
	}
	return logr.New(errorCounter{LogSink: log.GetSink(), errors: m.policyFailures})
}

type errorCounter struct {
	logr.LogSink
	errors prometheus.Counter
}

func (c errorCounter) Error(err error, msg string, kv ...any) {
	c.errors.Inc()
	c.LogSink.Error(err, msg, kv...)
}

func (c errorCounter) WithValues(kv ...any) logr.LogSink {
	return errorCounter{LogSink: c.LogSink.WithValues(kv...), errors: c.errors}
}

func (c errorCounter) WithName(name string) logr.LogSink {
	return errorCounter{LogSink: c.LogSink.WithName(name), errors: c.errors}
}
