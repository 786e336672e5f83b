package audit

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	decisions *prometheus.CounterVec
	findings  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
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
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.findings, m.latency)
	}
	return m
}

func (m *metrics) observe(d Decision) {
	m.decisions.WithLabelValues(d.Webhook, d.Outcome, d.Mode).Inc()
	for _, r := range d.Rules {
		m.findings.WithLabelValues(d.Webhook, r, d.Outcome).Inc()
	}
	m.latency.WithLabelValues(d.Webhook).Observe(d.Latency.Seconds())
}
