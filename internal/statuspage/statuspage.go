// Package statuspage serves the sidecar's live status page at / on the
// admin listener: the SRS.STATUS fields, drain rate and lag, breaker and
// Safe Mode history, request rates and latency quantiles per command, the
// cache hit ratio, seasons with card counts and jobs with progress, and
// charts of the last minutes. The page is static HTML, CSS and JavaScript
// embedded in the binary (no CDN); it polls /status.json once a second.
//
// A sampler (Start/Stop) looks at the sidecar every Interval and keeps a
// bounded history. While nobody has fetched the page's data for a minute,
// it samples only in-process state (no I/O against Redis or MariaDB).
package statuspage

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/srsproxy/srsproxy/commands"
	"github.com/srsproxy/srsproxy/internal/startstop"
)

// FormatVersion is the version of the /status.json document.
const FormatVersion = 1

//go:embed assets
var assets embed.FS

// Season is one row of the seasons table.
type Season struct {
	Name   string `json:"name"`
	State  string `json:"state"`  // active, inactive, archiving, archived, purged
	Cards  int64  `json:"cards"`  // live cards; -1 when not counted (archived) or the count failed
	Approx bool   `json:"approx"` // Cards is InnoDB's estimate (a large partition), not a count
}

// Job is one row of the jobs table.
type Job struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Season    string `json:"season"`
	State     string `json:"state"`
	Processed int64  `json:"processed"`
	Total     int64  `json:"total"`
	Owner     string `json:"owner"`
	Updated   int64  `json:"updated_ms"`
	Error     string `json:"error,omitempty"`
}

// Config wires a Page to a sidecar. Status is required; the rest may be nil.
type Config struct {
	// Status returns the SRS.STATUS fields; with io false it must not do
	// I/O (the fields it cannot know stay at their zero values).
	Status func(ctx context.Context, io bool) commands.Status
	// Seasons returns the seasons with card counts; Jobs the recent jobs.
	Seasons  func(ctx context.Context) ([]Season, error)
	Jobs     func(ctx context.Context) ([]Job, error)
	Gatherer prometheus.Gatherer // the sidecar's metrics (commands, cache reads)
	Logger   *slog.Logger
	Now      func() time.Time

	Interval  time.Duration // between samples (default 1s)
	Window    time.Duration // rates and quantiles are over this (default 10s)
	SlowEvery time.Duration // seasons and jobs are refreshed this often (default 10s)
	History   int           // samples kept for the charts (default 300)
	Watched   time.Duration // I/O sampling continues this long after the last view (default 1m)
}

func (c Config) withDefaults() Config {
	c.Interval = cmp.Or(c.Interval, time.Second)
	c.Window = cmp.Or(c.Window, 10*time.Second)
	c.SlowEvery = cmp.Or(c.SlowEvery, 10*time.Second)
	c.History = cmp.Or(c.History, 300)
	c.Watched = cmp.Or(c.Watched, time.Minute)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// counters is the cumulative state of one sample: what rates are computed from.
type counters struct {
	at       time.Time
	drained  uint64
	commands map[string]*commandCounters
	hits     float64
	misses   float64
}

type commandCounters struct {
	calls, errors float64
	bounds        []float64 // histogram upper bounds, +Inf excluded
	buckets       []uint64  // cumulative counts per bound, then +Inf
}

// Point is one sample of the charts.
type Point struct {
	T           int64   `json:"t"` // unix ms
	QueueDepth  int     `json:"queue_depth"`
	OldestMS    int64   `json:"queue_oldest_age_ms"`
	DrainRate   float64 `json:"drain_rate"` // reviews/s since the previous sample
	DrainLagMS  int64   `json:"drain_lag_ms"`
	RequestRate float64 `json:"request_rate"` // SRS commands/s since the previous sample
	P99MS       float64 `json:"p99_ms"`       // all SRS commands, over Window
	HitRatio    float64 `json:"hit_ratio"`    // over Window; -1 without reads
	Breaker     string  `json:"breaker_state"`
}

// CommandStats is one row of the per-command table.
type CommandStats struct {
	Command    string  `json:"command"`
	Rate       float64 `json:"rate"`        // calls/s over Window
	ErrorRate  float64 `json:"error_rate"`  // calls/s with a result other than ok
	P50MS      float64 `json:"p50_ms"`      // over Window; -1 without calls in it
	P99MS      float64 `json:"p99_ms"`      //
	Total      uint64  `json:"total"`       // calls since start
	TotalError uint64  `json:"total_error"` //
}

// Transition is a breaker state change or a Safe Mode period.
type Transition struct {
	At    int64  `json:"at_ms"`
	State string `json:"state"`
	Until int64  `json:"until_ms,omitempty"` // Safe Mode periods: when it was left; 0 while in it
}

// Document is /status.json.
type Document struct {
	Format       int               `json:"format"`
	Now          int64             `json:"now_ms"`
	Watched      bool              `json:"watched"` // the I/O parts of status are current
	Status       map[string]any    `json:"status"`  // SRS.STATUS fields, same names
	DrainRate    float64           `json:"drain_rate"`
	Commands     []CommandStats    `json:"commands"`
	CacheHits    uint64            `json:"cache_hits"`
	CacheMisses  uint64            `json:"cache_misses"`
	HitRatio     float64           `json:"hit_ratio"`       // over Window; -1 without reads
	HitRatioAll  float64           `json:"hit_ratio_total"` // since start; -1 without reads
	Seasons      []Season          `json:"seasons"`
	SeasonsAt    int64             `json:"seasons_at_ms"` // when seasons and jobs were read; 0 before
	Jobs         []Job             `json:"jobs"`
	SlowErrors   map[string]string `json:"slow_errors"`
	Breaker      []Transition      `json:"breaker_history"`
	SafeMode     []Transition      `json:"safe_mode_history"`
	History      []Point           `json:"history"`
	IntervalMS   int64             `json:"interval_ms"`
	WindowMS     int64             `json:"window_ms"`
	HistoryLimit int               `json:"history_limit"`
}

// maxTransitions bounds the breaker and Safe Mode histories.
const maxTransitions = 50

// Page is the status page and its sampler.
type Page struct {
	cfg      Config
	svc      startstop.Service
	lastView atomic.Int64 // unix ns of the last /status.json
	sampling sync.Mutex   // one Sample at a time: the sampler's and a first view's

	mu        sync.Mutex
	samples   []counters // oldest first, at most History
	points    []Point
	status    commands.Status
	drainRate float64
	cmds      []CommandStats
	hitWin    float64
	seasons   []Season
	jobs      []Job
	slowAt    time.Time
	slowErrs  map[string]string
	breaker   []Transition
	safe      []Transition
}

// New returns a page; Start begins sampling.
func New(cfg Config) *Page {
	cfg = cfg.withDefaults()
	return &Page{cfg: cfg, slowErrs: map[string]string{}}
}

// Start runs the sampler until Stop.
func (p *Page) Start(ctx context.Context) {
	p.svc.Start(ctx, "statuspage", p.cfg.Logger, func(ctx context.Context) {
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		for {
			p.Sample(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// Stop ends the sampler and waits for it; idempotent.
func (p *Page) Stop() { p.svc.Stop() }

// SafeModeChanged records a Safe Mode period (the engine's OnChange).
func (p *Page) SafeModeChanged(entered bool, since time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if entered {
		if n := len(p.safe); n > 0 && p.safe[n-1].Until == 0 {
			return // the same outage announced again (a failed half-open probe)
		}
		p.safe = appendBounded(p.safe, Transition{At: since.UnixMilli(), State: "entered"})
		return
	}
	now := p.cfg.Now().UnixMilli()
	if n := len(p.safe); n > 0 && p.safe[n-1].Until == 0 {
		p.safe[n-1].Until, p.safe[n-1].State = now, "left"
		return
	}
	p.safe = appendBounded(p.safe, Transition{At: since.UnixMilli(), State: "left", Until: now})
}

func appendBounded(ts []Transition, t Transition) []Transition {
	ts = append(ts, t)
	if len(ts) > maxTransitions {
		ts = slices.Delete(ts, 0, len(ts)-maxTransitions)
	}
	return ts
}

func (p *Page) watched(now time.Time) bool {
	return now.Sub(time.Unix(0, p.lastView.Load())) < p.cfg.Watched
}

// Sample takes one sample now (the sampler calls it every Interval).
func (p *Page) Sample(ctx context.Context) {
	p.sampling.Lock()
	defer p.sampling.Unlock()
	now := p.cfg.Now()
	io := p.watched(now)
	st := p.cfg.Status(ctx, io)
	c := p.gather(now, st.Drained)

	var seasons []Season
	var jobs []Job
	slowErrs := map[string]string{}
	p.mu.Lock()
	slowDue := io && now.Sub(p.slowAt) >= p.cfg.SlowEvery
	p.mu.Unlock()
	if slowDue {
		seasons, jobs = p.slow(ctx, slowErrs)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if slowDue {
		p.seasons, p.jobs, p.slowErrs, p.slowAt = seasons, jobs, slowErrs, now
	}
	var prev *counters
	if n := len(p.samples); n > 0 {
		prev = &p.samples[n-1]
	}
	p.samples = append(p.samples, c)
	if len(p.samples) > p.cfg.History {
		p.samples = slices.Delete(p.samples, 0, len(p.samples)-p.cfg.History)
	}
	base := p.samples[0]
	for i := len(p.samples) - 1; i >= 0; i-- {
		if now.Sub(p.samples[i].at) >= p.cfg.Window {
			base = p.samples[i]
			break
		}
	}
	p.status = st
	p.cmds = commandStats(base, c)
	p.hitWin = ratio(c.hits-base.hits, c.misses-base.misses)
	pt := Point{T: now.UnixMilli(), QueueDepth: st.QueueDepth, OldestMS: st.QueueOldest.Milliseconds(),
		DrainLagMS: st.DrainLag.Milliseconds(), HitRatio: p.hitWin, Breaker: st.BreakerState, P99MS: allP99(base, c)}
	if prev != nil {
		if secs := now.Sub(prev.at).Seconds(); secs > 0 {
			pt.DrainRate = float64(c.drained-min(c.drained, prev.drained)) / secs
			pt.RequestRate = math.Max(0, totalCalls(c)-totalCalls(*prev)) / secs
		}
	}
	if secs := now.Sub(base.at).Seconds(); secs > 0 {
		p.drainRate = float64(c.drained-min(c.drained, base.drained)) / secs
	}
	if n := len(p.breaker); st.BreakerState != "" && (n == 0 || p.breaker[n-1].State != st.BreakerState) {
		p.breaker = appendBounded(p.breaker, Transition{At: now.UnixMilli(), State: st.BreakerState})
	}
	p.points = append(p.points, pt)
	if len(p.points) > p.cfg.History {
		p.points = slices.Delete(p.points, 0, len(p.points)-p.cfg.History)
	}
}

// slowTimeout bounds the seasons and jobs reads of one refresh.
const slowTimeout = 5 * time.Second

func (p *Page) slow(ctx context.Context, errs map[string]string) ([]Season, []Job) {
	ctx, cancel := context.WithTimeout(ctx, slowTimeout)
	defer cancel()
	var seasons []Season
	var jobs []Job
	var err error
	if p.cfg.Seasons != nil {
		if seasons, err = p.cfg.Seasons(ctx); err != nil {
			errs["seasons"] = err.Error()
		}
	}
	if p.cfg.Jobs != nil {
		if jobs, err = p.cfg.Jobs(ctx); err != nil {
			errs["jobs"] = err.Error()
		}
	}
	return seasons, jobs
}

// gather reads the cumulative counters from the metrics registry.
func (p *Page) gather(now time.Time, drained uint64) counters {
	c := counters{at: now, drained: drained, commands: map[string]*commandCounters{}}
	if p.cfg.Gatherer == nil {
		return c
	}
	fams, err := p.cfg.Gatherer.Gather()
	if err != nil {
		p.cfg.Logger.Debug("status page: gather metrics", "err", err)
	}
	cmd := func(name string) *commandCounters {
		cc := c.commands[name]
		if cc == nil {
			cc = &commandCounters{}
			c.commands[name] = cc
		}
		return cc
	}
	for _, f := range fams {
		switch f.GetName() {
		case "srsproxy_commands_total":
			for _, m := range f.GetMetric() {
				cc := cmd(label(m, "command"))
				v := m.GetCounter().GetValue()
				cc.calls += v
				if label(m, "result") != "ok" {
					cc.errors += v
				}
			}
		case "srsproxy_command_duration_seconds":
			for _, m := range f.GetMetric() {
				addHistogram(cmd(label(m, "command")), m.GetHistogram())
			}
		case "srsproxy_cache_reads_total":
			for _, m := range f.GetMetric() {
				switch label(m, "result") {
				case "hit":
					c.hits += m.GetCounter().GetValue()
				case "miss":
					c.misses += m.GetCounter().GetValue()
				}
			}
		}
	}
	return c
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// addHistogram adds h's buckets to cc (a command's results are summed).
func addHistogram(cc *commandCounters, h *dto.Histogram) {
	bs := h.GetBucket()
	if cc.bounds == nil {
		for _, b := range bs {
			if !math.IsInf(b.GetUpperBound(), 1) {
				cc.bounds = append(cc.bounds, b.GetUpperBound())
			}
		}
		cc.buckets = make([]uint64, len(cc.bounds)+1)
	}
	for i, b := range bs {
		if i < len(cc.bounds) && b.GetUpperBound() == cc.bounds[i] {
			cc.buckets[i] += b.GetCumulativeCount()
		}
	}
	cc.buckets[len(cc.bounds)] += h.GetSampleCount()
}

// quantile estimates the q-quantile from cumulative bucket counts as
// Prometheus's histogram_quantile does (linear within a bucket); -1 when
// there are no observations, the highest finite bound for the +Inf bucket.
func quantile(q float64, bounds []float64, cum []uint64) float64 {
	if len(cum) == 0 || cum[len(cum)-1] == 0 {
		return -1
	}
	rank := q * float64(cum[len(cum)-1])
	for i, n := range cum {
		if float64(n) < rank {
			continue
		}
		if i == len(bounds) {
			return bounds[len(bounds)-1]
		}
		lo, below := 0.0, uint64(0)
		if i > 0 {
			lo, below = bounds[i-1], cum[i-1]
		}
		inBucket := n - below
		if inBucket == 0 {
			return bounds[i]
		}
		return lo + (bounds[i]-lo)*(rank-float64(below))/float64(inBucket)
	}
	return bounds[len(bounds)-1]
}

// diffBuckets is now − then, bucket by bucket (then may lack the command).
func diffBuckets(now, then *commandCounters) []uint64 {
	out := slices.Clone(now.buckets)
	if then != nil && len(then.buckets) == len(out) {
		for i := range out {
			out[i] -= min(out[i], then.buckets[i])
		}
	}
	return out
}

func commandStats(base, now counters) []CommandStats {
	secs := now.at.Sub(base.at).Seconds()
	out := make([]CommandStats, 0, len(now.commands))
	for name, cc := range now.commands {
		then := base.commands[name]
		cs := CommandStats{Command: name, Total: uint64(cc.calls), TotalError: uint64(cc.errors), P50MS: -1, P99MS: -1}
		if secs > 0 {
			var c0, e0 float64
			if then != nil {
				c0, e0 = then.calls, then.errors
			}
			cs.Rate, cs.ErrorRate = math.Max(0, cc.calls-c0)/secs, math.Max(0, cc.errors-e0)/secs
		}
		if len(cc.bounds) > 0 {
			win := diffBuckets(cc, then)
			if base.at.Equal(now.at) {
				win = cc.buckets // one sample: since start
			}
			cs.P50MS = ms(quantile(0.5, cc.bounds, win))
			cs.P99MS = ms(quantile(0.99, cc.bounds, win))
		}
		out = append(out, cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Command < out[j].Command })
	return out
}

// allP99 is the p99 of every SRS command together over the window.
func allP99(base, now counters) float64 {
	var bounds []float64
	var sum []uint64
	for name, cc := range now.commands {
		if len(cc.bounds) == 0 {
			continue
		}
		if bounds == nil {
			bounds, sum = cc.bounds, make([]uint64, len(cc.buckets))
		}
		if !slices.Equal(bounds, cc.bounds) {
			continue
		}
		for i, n := range diffBuckets(cc, base.commands[name]) {
			sum[i] += n
		}
	}
	return ms(quantile(0.99, bounds, sum))
}

func totalCalls(c counters) float64 {
	var n float64
	for _, cc := range c.commands {
		n += cc.calls
	}
	return n
}

func ms(seconds float64) float64 {
	if seconds < 0 {
		return -1
	}
	return math.Round(seconds*1e6) / 1e3
}

func ratio(hits, misses float64) float64 {
	if hits+misses <= 0 {
		return -1
	}
	return hits / (hits + misses)
}

// statusFields are the SRS.STATUS fields under the same names.
func statusFields(st commands.Status) map[string]any {
	var since int64
	if !st.SafeModeSince.IsZero() {
		since = st.SafeModeSince.UnixMilli()
	}
	return map[string]any{
		"redis_connected": st.RedisConnected, "breaker_state": st.BreakerState, "safe_mode_since": since,
		"degraded_redis": st.DegradedRedis, "degraded_mariadb": st.DegradedMariaDB,
		"queue_depth": st.QueueDepth, "queue_bytes": st.QueueBytes, "queue_oldest_age_ms": st.QueueOldest.Milliseconds(),
		"drain_oldest_age_ms": st.DrainOldest.Milliseconds(), "drain_stalled": st.DrainStalled,
		"drain_lag_ms": st.DrainLag.Milliseconds(), "drained": st.Drained, "dead_letters": st.DeadLetters,
		"cache_memory_bytes": st.CacheMemory, "cached_users_by_season": orEmpty(st.CachedUsers),
		"version": st.Version, "uptime_seconds": int64(st.Uptime.Seconds()), "sidecar": st.Sidecar,
		"errors": orEmpty(st.Errors),
	}
}

// orEmpty makes a nil map encode as {} rather than null.
func orEmpty[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

// Document returns the current /status.json.
func (p *Page) Document() Document {
	p.mu.Lock()
	defer p.mu.Unlock()
	var hits, misses float64
	if n := len(p.samples); n > 0 {
		hits, misses = p.samples[n-1].hits, p.samples[n-1].misses
	}
	return Document{
		Format: FormatVersion, Now: p.cfg.Now().UnixMilli(), Watched: p.watched(p.cfg.Now()),
		Status: statusFields(p.status), DrainRate: p.drainRate, Commands: slices.Clone(p.cmds),
		CacheHits: uint64(hits), CacheMisses: uint64(misses), HitRatio: p.hitWin, HitRatioAll: ratio(hits, misses),
		Seasons: slices.Clone(p.seasons), SeasonsAt: unixMilli(p.slowAt), Jobs: slices.Clone(p.jobs), SlowErrors: p.slowErrs,
		Breaker: slices.Clone(p.breaker), SafeMode: slices.Clone(p.safe), History: slices.Clone(p.points),
		IntervalMS: p.cfg.Interval.Milliseconds(), WindowMS: p.cfg.Window.Milliseconds(), HistoryLimit: p.cfg.History,
	}
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Register adds the page to mux: / (the page), /status.json and /assets/.
func (p *Page) Register(mux *http.ServeMux) {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(static)
	secure := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-store")
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /{$}", secure(files))
	mux.Handle("GET /assets/", secure(http.StripPrefix("/assets/", files)))
	mux.Handle("GET /status.json", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := p.cfg.Now()
		first := !p.watched(now)
		p.lastView.Store(now.UnixNano())
		if first { // the I/O parts were not sampled while nobody looked
			p.Sample(r.Context())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.Document())
	})))
}
