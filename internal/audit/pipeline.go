package audit

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Sink receives audit records. Write gets records in arrival order; a sink that writes
// to the API server batches them as it likes.
type Sink interface {
	Name() string
	Write(ctx context.Context, records []Record) error
}

// Options configure a Pipeline.
type Options struct {
	Log logr.Logger
	// Registerer takes pdguard's metrics (controller-runtime's registry when serving);
	// nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Sinks are the slow sinks (Events, Reports), fed from the queue.
	Sinks []Sink
	// QueueSize bounds the records waiting for the slow sinks; a record that finds the
	// queue full is dropped from them (the log line and metrics still have it).
	QueueSize int
	// BatchSize is the most records handed to a sink in one Write.
	BatchSize int
}

// Pipeline is where every audit record goes. The log line and the metrics are written
// before Record returns: the log is the record of last resort. (serve's logger hands the
// line to a logbuffer.Writer, which writes it within 20 ms and never drops one, so a
// stalled stderr does not hold up the answer.) The slow sinks are fed from one bounded
// queue by one goroutine, so an admission answer never waits on them and a full queue
// drops and counts instead of blocking.
type Pipeline struct {
	log     logr.Logger
	metrics *Metrics
	sync    []Sink
	sinks   []Sink
	batch   int

	mu     sync.RWMutex // guards closed against the queue being closed under a send
	closed bool
	// queue holds pointers: a full buffer of records would be about a megabyte of heap
	// held from the start, most of it never used.
	queue chan *Record
	done  chan struct{}
	// closing is closed with the queue, so the worker drains it without waiting a tick.
	closing chan struct{}
	cancel  context.CancelFunc
	// abandoned counts records the worker skipped once the drain timed out.
	abandoned atomic.Int64
}

// New builds a pipeline; Start runs its queue.
func New(opts Options) *Pipeline {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1024
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	p := &Pipeline{
		log:     opts.Log,
		sinks:   opts.Sinks,
		batch:   opts.BatchSize,
		queue:   make(chan *Record, opts.QueueSize),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
	p.metrics = newMetrics(opts.Registerer, func() float64 { return float64(len(p.queue)) })
	p.sync = []Sink{newLogSink(opts.Log), MetricsSink{m: p.metrics}}
	return p
}

// Metrics are the pipeline's Prometheus metrics, shared with the evidence controller.
func (p *Pipeline) Metrics() *Metrics { return p.metrics }

// Record reports one record: log line and metrics now, the slow sinks later.
func (p *Pipeline) Record(r Record) {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	one := [1]Record{r}
	for _, s := range p.sync {
		_ = s.Write(context.Background(), one[:])
	}
	if len(p.sinks) == 0 || !queued(&r) {
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.drop(&r, "shutting down")
		return
	}
	queuedCopy := new(Record)
	*queuedCopy = r
	select {
	case p.queue <- queuedCopy:
	default:
		p.drop(&r, "queue full")
	}
}

// queued: only records some slow sink writes take queue space.
func queued(r *Record) bool {
	if r.DryRun {
		return false
	}
	return r.Kind != KindAdmission || r.Reported()
}

func (p *Pipeline) drop(r *Record, why string) {
	p.metrics.dropped.WithLabelValues(why).Inc()
	p.log.Info("audit record dropped from the Event and Report sinks; the log line above is its only copy",
		"namespace", r.Namespace, "name", r.Name, "kind", r.Kind, "decision", r.Outcome, "key", r.Key(), "reason", why)
}

// Start feeds the slow sinks until Shutdown. It does not follow a manager's context:
// the records admitted while the webhook server drains its requests still get written.
//
// The worker takes what has queued every flushInterval instead of waking on each record:
// a wake-up per admission (a futex call, and the sink's work landing on the core that
// is answering the next request) cost an admission answer about 8% with the Event sink
// on (BenchmarkAdmissionAudit), where polling costs it nothing measurable.
func (p *Pipeline) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		tick := time.NewTicker(flushInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
			case <-p.closing:
			}
			if !p.flush(ctx) {
				return
			}
		}
	}()
}

// flushInterval is how long a record may wait in the queue for the slow sinks.
const flushInterval = 20 * time.Millisecond

// flush writes what is queued in batches; false once the queue is closed and empty.
func (p *Pipeline) flush(ctx context.Context) bool {
	var batch []Record
	for {
		select {
		case r, ok := <-p.queue:
			if !ok {
				if len(batch) > 0 {
					p.write(ctx, batch)
				}
				return false
			}
			batch = append(batch, *r)
			if len(batch) >= p.batch {
				p.write(ctx, batch)
				batch = nil
			}
		default:
			if len(batch) > 0 {
				p.write(ctx, batch)
			}
			return true
		}
	}
}

func (p *Pipeline) write(ctx context.Context, batch []Record) {
	if ctx.Err() != nil {
		p.abandoned.Add(int64(len(batch)))
		return
	}
	for _, s := range p.sinks {
		if err := s.Write(ctx, batch); err != nil {
			p.metrics.sinkErrors.WithLabelValues(s.Name()).Inc()
			p.log.Error(err, "audit sink failed", "sink", s.Name(), "records", len(batch))
		}
	}
	p.metrics.written.Add(float64(len(batch)))
}

// Shutdown stops taking records and writes the queued ones, for at most timeout. It
// returns how many were left unwritten.
func (p *Pipeline) Shutdown(timeout time.Duration) int {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0
	}
	p.closed = true
	close(p.queue)
	close(p.closing)
	p.mu.Unlock()
	if p.cancel == nil {
		return len(p.queue)
	}
	queued := len(p.queue)
	select {
	case <-p.done:
		p.log.Info("audit queue drained", "records", queued)
		return 0
	case <-time.After(timeout):
	}
	p.cancel()
	<-p.done
	// The batch in the sinks' hands when the time ran out counts as not written.
	left := int(p.abandoned.Load()) + 1
	p.metrics.dropped.WithLabelValues("drain timeout").Add(float64(left))
	p.log.Info("audit queue not drained in time; the rest is only in the log", "timeout", timeout.String(), "records", left)
	return left
}

// LogSink writes the record's structured log line.
type LogSink struct {
	Log logr.Logger
	// zap is Log's zap logger when Log is zapr's (serve's): the admission line, written
	// on every decision, is then built from typed fields, without logr's
	// boxing of each value and zapr's conversion back. The line is the same.
	zap *zap.Logger
}

func newLogSink(log logr.Logger) LogSink {
	s := LogSink{Log: log}
	if u, ok := log.GetSink().(zapr.Underlier); ok {
		// zapr skips its own frame when it finds the caller; this sink calls zap itself.
		s.zap = u.GetUnderlying().WithOptions(zap.AddCallerSkip(-1))
	}
	return s
}

func (LogSink) Name() string { return "log" }

func (s LogSink) Write(_ context.Context, records []Record) error {
	for i := range records {
		r := &records[i]
		if r.Kind != KindAdmission {
			kv := []any{"namespace", r.Namespace, "name", r.Name, "decision", r.Kind, "reason", r.Text()}
			if r.Pod != "" {
				kv = append(kv, "pod", r.Pod)
			}
			if r.Verdict != "" {
				kv = append(kv, "verdict", r.Verdict)
			}
			if r.Proof != nil {
				kv = append(kv, "verdicts", r.Proof)
			}
			s.Log.Info("evidence controller", kv...)
			continue
		}
		if s.zap != nil && r.Err == nil {
			s.admissionLine(r)
			continue
		}
		kv := []any{
			"webhook", r.Webhook, "namespace", r.Namespace, "name", r.Name, "operation", r.Operation,
			"user", r.User, "decision", r.Outcome, "mode", r.Mode, "rules", r.Rules,
			"latency", r.Latency.String(),
		}
		if len(r.Reasons) > 0 {
			kv = append(kv, "reason", strings.Join(r.Reasons, " | "))
		}
		if len(r.Details) > 0 {
			kv = append(kv, "details", r.Details)
		}
		if len(r.Warnings) > 0 {
			kv = append(kv, "warnings", r.Warnings)
		}
		if r.DryRun {
			kv = append(kv, "dryRun", true)
		}
		if r.Proof != nil {
			kv = append(kv, "proof", r.Proof)
		}
		if r.Err != nil {
			s.Log.Error(r.Err, "admission decision failed", kv...)
		} else {
			s.Log.Info("admission decision", kv...)
		}
	}
	return nil
}

// admissionLine is the "admission decision" line of Write, field for field.
func (s LogSink) admissionLine(r *Record) {
	ce := s.zap.Check(zap.InfoLevel, "admission decision")
	if ce == nil {
		return
	}
	var buf [14]zap.Field
	fields := append(buf[:0],
		zap.String("webhook", r.Webhook), zap.String("namespace", r.Namespace), zap.String("name", r.Name),
		zap.String("operation", r.Operation), zap.String("user", r.User), zap.String("decision", r.Outcome),
		zap.String("mode", r.Mode), zap.Strings("rules", r.Rules), zap.String("latency", r.Latency.String()),
	)
	if len(r.Reasons) > 0 {
		fields = append(fields, zap.String("reason", strings.Join(r.Reasons, " | ")))
	}
	if len(r.Details) > 0 {
		fields = append(fields, zap.Strings("details", r.Details))
	}
	if len(r.Warnings) > 0 {
		fields = append(fields, zap.Strings("warnings", r.Warnings))
	}
	if r.DryRun {
		fields = append(fields, zap.Bool("dryRun", true))
	}
	if r.Proof != nil {
		fields = append(fields, zap.Any("proof", r.Proof))
	}
	ce.Write(fields...)
}

// MetricsSink counts records.
type MetricsSink struct{ m *Metrics }

func (MetricsSink) Name() string { return "metrics" }

func (s MetricsSink) Write(_ context.Context, records []Record) error {
	for i := range records {
		s.m.observe(&records[i])
	}
	return nil
}
