package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type results struct {
	Rate               float64      `json:"rate"`
	Concurrency        int          `json:"concurrency"`
	BundledEvery       int          `json:"bundled_every"`
	WarmupErrors       int          `json:"warmup_errors"`
	WarmupErrorSamples []string     `json:"warmup_error_samples,omitempty"`
	Open               *phaseResult `json:"open_loop"`
	Burst              *phaseResult `json:"burst"`
}

type phaseResult struct {
	Seconds           float64 `json:"seconds"`
	Requests          int     `json:"requests"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	// ConnectionsOpened should stay 0 after the warmup: keep-alive is what the API
	// server does, and a handshake per request would be measured instead of pdguard.
	ConnectionsOpened int64        `json:"connections_opened"`
	StartLag          *quantile    `json:"start_lag_ms,omitempty"`
	Paths             []pathResult `json:"paths"`
	ErrorSamples      []string     `json:"error_samples,omitempty"`
}

type pathResult struct {
	Path   string    `json:"path"`
	Count  int       `json:"count"`
	Errors int       `json:"errors"`
	Client *quantile `json:"client_ms"`
	Server *server   `json:"server,omitempty"`
}

type quantile struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// server is pdguard's own view from its histogram: decision time without network, TLS or
// HTTP handling.
type server struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	// P99 is interpolated inside the histogram's buckets, as histogram_quantile does; above
	// the last finite bucket it is that bucket's bound and P99Beyond is set.
	P99       float64 `json:"p99_bucket_estimate_ms"`
	P99Beyond bool    `json:"p99_beyond_last_bucket,omitempty"`
}

func summarize(rec *recorder, elapsed time.Duration, dials int64, hist histograms) *phaseResult {
	p := &phaseResult{
		Seconds:           elapsed.Seconds(),
		ConnectionsOpened: dials,
		StartLag:          quantiles(rec.lags),
		ErrorSamples:      rec.firstErrs,
	}
	for _, name := range rows {
		row := pathResult{Path: name, Errors: rec.errors[name], Client: quantiles(rec.latencies[name])}
		row.Count = len(rec.latencies[name]) + row.Errors
		if h := hist[name]; h != nil {
			s := &server{Count: int(h.count)}
			if h.count > 0 {
				s.Mean = h.sum / h.count * 1000
				q, beyond := h.quantile(0.99)
				s.P99, s.P99Beyond = q*1000, beyond
			}
			row.Server = s
		}
		if name == rowMutate || name == rowValidate {
			p.Requests += row.Count
		}
		p.Paths = append(p.Paths, row)
	}
	p.RequestsPerSecond = float64(p.Requests) / elapsed.Seconds()
	return p
}

// quantiles uses nearest rank: every figure is a latency that was really measured.
func quantiles(ds []time.Duration) *quantile {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := max(int(math.Ceil(q*float64(len(s))))-1, 0)
		return float64(s[i]) / float64(time.Millisecond)
	}
	return &quantile{P50: at(0.5), P90: at(0.9), P99: at(0.99), P999: at(0.999), Max: at(1)}
}

func (r *results) errors() int {
	n := r.WarmupErrors
	for _, p := range []*phaseResult{r.Open, r.Burst} {
		for _, row := range p.Paths {
			if row.Path == rowMutate || row.Path == rowValidate {
				n += row.Errors
			}
		}
	}
	return n
}

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nEach change is a mutate then a validate of the patched object; 1 in %d bundles a config change and must be denied.\n", r.BundledEvery)
	fmt.Fprintf(w, "Client latency is the HTTPS round trip (HTTP/1.1 keep-alive); the server columns come from pdguard_admission_duration_seconds.\n")
	fmt.Fprintf(w, "pair is both round trips of a change, what the webhooks add to a helm request; pair-denied is the bundled changes among them.\n")
	fmt.Fprintf(w, "\nOpen loop: %v requests/s asked, %.1f sent, %d at most in flight, %.1fs\n", r.Rate, r.Open.RequestsPerSecond, r.Concurrency, r.Open.Seconds)
	r.Open.print(w)
	fmt.Fprintf(w, "\nClosed-loop burst: %d workers back to back, %.1fs: %.0f requests/s (%.0f changes/s)\n",
		burstConcurrency, r.Burst.Seconds, r.Burst.RequestsPerSecond, r.Burst.RequestsPerSecond/2)
	r.Burst.print(w)
	if r.WarmupErrors > 0 {
		fmt.Fprintf(w, "\nWarmup: %d requests failed or got the wrong answer\n", r.WarmupErrors)
		for _, e := range r.WarmupErrorSamples {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
}

func (p *phaseResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tcount\terrors\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t\tserver count\tserver mean ms\tserver p99~ ms\t")
	for _, row := range p.Paths {
		fmt.Fprintf(tw, "%s\t%d\t%d\t", row.Path, row.Count, row.Errors)
		if q := row.Client; q != nil {
			fmt.Fprintf(tw, "%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t", q.P50, q.P90, q.P99, q.P999, q.Max)
		} else {
			fmt.Fprint(tw, "-\t-\t-\t-\t-\t")
		}
		if s := row.Server; s != nil {
			beyond := ""
			if s.P99Beyond {
				beyond = ">"
			}
			fmt.Fprintf(tw, "\t%d\t%.3f\t%s%.3f\t\n", s.Count, s.Mean, beyond, s.P99)
		} else {
			fmt.Fprint(tw, "\t-\t-\t-\t\n")
		}
	}
	tw.Flush()
	if q := p.StartLag; q != nil {
		fmt.Fprintf(w, "  start lag behind schedule: p99 %.3f ms, max %.3f ms\n", q.P99, q.Max)
	}
	fmt.Fprintf(w, "  new TLS connections: %d\n", p.ConnectionsOpened)
	for _, e := range p.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

const latencyMetric = "pdguard_admission_duration_seconds"

// histogram is one webhook's latency histogram; buckets are cumulative, as exposed.
type histogram struct {
	bounds     []float64
	cumulative []float64
	count, sum float64
}

// histograms maps the webhook label (mutate, validate) to its histogram.
type histograms map[string]*histogram

func scrape(ctx context.Context, url string) (histograms, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping metrics: %s", resp.Status)
	}
	hs := histograms{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, latencyMetric) {
			continue
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("scraping metrics: %q: %w", line, err)
		}
		h := hs[labels["webhook"]]
		if h == nil {
			h = &histogram{}
			hs[labels["webhook"]] = h
		}
		switch name {
		case latencyMetric + "_bucket":
			le, err := strconv.ParseFloat(labels["le"], 64)
			if err != nil {
				return nil, fmt.Errorf("scraping metrics: %q: %w", line, err)
			}
			h.bounds = append(h.bounds, le)
			h.cumulative = append(h.cumulative, value)
		case latencyMetric + "_count":
			h.count = value
		case latencyMetric + "_sum":
			h.sum = value
		}
	}
	return hs, sc.Err()
}

// parseSample reads one line of the Prometheus text format whose label values hold no
// commas or escaped quotes, which is true of pdguard's own metrics.
func parseSample(line string) (string, map[string]string, float64, error) {
	open, end := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
	if open < 0 || end < open {
		return "", nil, 0, fmt.Errorf("no labels")
	}
	labels := map[string]string{}
	for pair := range strings.SplitSeq(line[open+1:end], ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			continue
		}
		labels[strings.TrimSpace(k)] = strings.Trim(v, `"`)
	}
	value, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
	return line[:open], labels, value, err
}

// minus is the traffic between two scrapes of the same server.
func (hs histograms) minus(before histograms) histograms {
	out := histograms{}
	for name, h := range hs {
		d := &histogram{bounds: h.bounds, cumulative: slices.Clone(h.cumulative), count: h.count, sum: h.sum}
		if b := before[name]; b != nil && len(b.cumulative) == len(h.cumulative) {
			for i := range d.cumulative {
				d.cumulative[i] -= b.cumulative[i]
			}
			d.count -= b.count
			d.sum -= b.sum
		}
		out[name] = d
	}
	return out
}

// quantile interpolates linearly inside the bucket holding rank q, as PromQL's
// histogram_quantile does.
func (h *histogram) quantile(q float64) (float64, bool) {
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, bound := range h.bounds {
		c := h.cumulative[i]
		if c >= rank {
			if math.IsInf(bound, 1) {
				return lower, true
			}
			if c == below {
				return bound, false
			}
			return lower + (bound-lower)*(rank-below)/(c-below), false
		}
		lower, below = bound, c
	}
	return lower, true
}
