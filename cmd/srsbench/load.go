package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// A worker owns one connection (or one logical client of a pool) and sends
// one request per do call. kind indexes the driver's kinds (the histogram the
// request's latency goes to). A worker is used by one goroutine.
type worker interface {
	do(ctx context.Context) (kind int, err error)
	Close() error
}

// A driver makes the workers of one target and scenario.
type driver interface {
	kinds() []string
	newWorker(ctx context.Context, i int) (worker, error)
}

// loadSpec is one measurement.
type loadSpec struct {
	Mode     string  // closed or open
	Conns    int     // workers, one connection each (a pool for MariaDB)
	Rate     float64 // open loop: requests per second over all workers
	Warmup   time.Duration
	Duration time.Duration
	// Mark, when set, is called at the start (0) and the end (1) of the
	// measured window, for the CPU accounting.
	Mark func(phase int)
}

// histograms of latencies in microseconds, sharded to keep lock contention
// off the measurement.
const (
	histShards  = 16
	histMaxUS   = 120_000_000 // two minutes
	histSigFigs = 3
)

type histSet struct {
	mu     [histShards]sync.Mutex
	shards [histShards]*hdrhistogram.Histogram
	n      [histShards]int64
}

func newHistSet() *histSet {
	h := &histSet{}
	for i := range h.shards {
		h.shards[i] = hdrhistogram.New(1, histMaxUS, histSigFigs)
	}
	return h
}

func (h *histSet) record(shard int, d time.Duration) {
	us := max(d.Microseconds(), 1)
	us = min(us, histMaxUS)
	s := shard % histShards
	h.mu[s].Lock()
	_ = h.shards[s].RecordValue(us)
	h.n[s]++
	h.mu[s].Unlock()
}

func (h *histSet) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(1, histMaxUS, histSigFigs)
	for _, s := range h.shards {
		out.Merge(s)
	}
	return out
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return math.Round(float64(us)) / 1000 }
	return Latency{
		Count: h.TotalCount(), Mean: math.Round(h.Mean()) / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// loadResult is what one measurement produced.
type loadResult struct {
	Seconds    float64            // measured window
	Throughput float64            // requests completed per second in the window
	Latency    Latency            // every kind together
	Kinds      map[string]Latency // per kind when the driver has several
	Errors     int64
	ErrorKinds map[string]int64
	Workers    int // workers that connected
}

// errTally counts errors by their first words, keeping a handful of kinds.
type errTally struct {
	mu sync.Mutex
	n  int64
	by map[string]int64
}

func (t *errTally) add(err error) {
	msg := err.Error()
	if len(msg) > 60 {
		msg = msg[:60]
	}
	t.mu.Lock()
	t.n++
	if t.by == nil {
		t.by = map[string]int64{}
	}
	if _, ok := t.by[msg]; ok || len(t.by) < 8 {
		t.by[msg]++
	}
	t.mu.Unlock()
}

// dialParallel makes n workers, at most 256 dialling at once (the listen
// backlogs of the servers are finite).
func dialParallel(ctx context.Context, d driver, n int) ([]worker, error) {
	ws := make([]worker, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   int
	)
	sem := make(chan struct{}, 256)
	for i := range ws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w, err := d.newWorker(ctx, i)
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			ws[i] = w
		}()
	}
	wg.Wait()
	out := ws[:0]
	for _, w := range ws {
		if w != nil {
			out = append(out, w)
		}
	}
	if failed > 0 {
		err := fmt.Errorf("%d of %d connections failed: %w", failed, n, firstErr)
		if len(out) == 0 {
			return nil, err
		}
		return out, err
	}
	return out, nil
}

func closeAll(ws []worker) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, w := range ws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			w.Close()
			<-sem
		}()
	}
	wg.Wait()
}

// runLoad runs one measurement. Closed loop: every worker sends its next
// request as soon as the last one is answered; latency is send to reply.
// Open loop: worker i of N sends at start + (i + k·N)/Rate; latency is
// measured from that intended time, not from the actual send, so a server
// that stalls is charged for every request that should have gone out during
// the stall (the coordinated-omission correction of wrk2/HdrHistogram).
// Requests still unsent when the overrun bound passes are recorded with
// their lateness at that moment (a lower bound).
func runLoad(ctx context.Context, d driver, spec loadSpec) (loadResult, error) {
	ws, dialErr := dialParallel(ctx, d, spec.Conns)
	if len(ws) == 0 {
		return loadResult{}, dialErr
	}
	defer closeAll(ws)
	kinds := d.kinds()
	hists := make([]*histSet, len(kinds))
	for i := range hists {
		hists[i] = newHistSet()
	}
	var (
		errs errTally
		done atomic.Int64
	)
	start := time.Now().Add(50 * time.Millisecond)
	measureFrom := start.Add(spec.Warmup)
	end := measureFrom.Add(spec.Duration)
	overrun := end.Add(max(spec.Duration/2, time.Second))
	lctx, cancel := context.WithDeadline(ctx, overrun.Add(5*time.Second))
	defer cancel()

	var wg sync.WaitGroup
	if spec.Mark != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sleepUntil(lctx, measureFrom) {
				spec.Mark(0)
			}
			if sleepUntil(lctx, end) {
				spec.Mark(1)
			}
		}()
	}
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if spec.Mode == "open" {
				openLoop(lctx, w, i, len(ws), spec.Rate, start, measureFrom, end, overrun, hists, &errs, &done)
			} else {
				closedLoop(lctx, w, i, start, measureFrom, end, hists, &errs, &done)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return loadResult{}, err
	}
	res := loadResult{Seconds: spec.Duration.Seconds(), Errors: errs.n, ErrorKinds: errs.by, Workers: len(ws)}
	all := hdrhistogram.New(1, histMaxUS, histSigFigs)
	if len(kinds) > 1 {
		res.Kinds = map[string]Latency{}
	}
	for i, h := range hists {
		m := h.merged()
		all.Merge(m)
		if res.Kinds != nil {
			res.Kinds[kinds[i]] = summarize(m)
		}
	}
	res.Latency = summarize(all)
	res.Throughput = float64(done.Load()) / res.Seconds
	if dialErr != nil {
		res.ErrorKinds = mergeErr(res.ErrorKinds, dialErr)
	}
	return res, nil
}

func mergeErr(m map[string]int64, err error) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[err.Error()]++
	return m
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func closedLoop(ctx context.Context, w worker, i int, start, from, end time.Time, hists []*histSet, errs *errTally, done *atomic.Int64) {
	if !sleepUntil(ctx, start) {
		return
	}
	for {
		t0 := time.Now()
		if !t0.Before(end) || ctx.Err() != nil {
			return
		}
		kind, err := w.do(ctx)
		t1 := time.Now()
		if t0.Before(from) {
			continue
		}
		if err != nil {
			errs.add(err)
			if !isReplyError(err) && !reconnect(ctx, w) {
				return
			}
			continue
		}
		hists[kind].record(i, t1.Sub(t0))
		if t1.Before(end) {
			done.Add(1)
		}
	}
}

func openLoop(ctx context.Context, w worker, i, n int, rate float64, start, from, end, overrun time.Time, hists []*histSet, errs *errTally, done *atomic.Int64) {
	interval := time.Duration(float64(time.Second) / rate) // between two requests of all workers
	every := interval * time.Duration(n)                   // between two requests of this worker
	intended := start.Add(interval * time.Duration(i))
	for ; intended.Before(end); intended = intended.Add(every) {
		if !sleepUntil(ctx, intended) {
			return
		}
		if time.Now().After(overrun) {
			break
		}
		kind, err := w.do(ctx)
		t1 := time.Now()
		if intended.Before(from) {
			continue
		}
		if err != nil {
			errs.add(err)
			if !isReplyError(err) && !reconnect(ctx, w) {
				return
			}
			continue
		}
		hists[kind].record(i, t1.Sub(intended))
		done.Add(1)
	}
	// Requests that never went out before the overrun bound: charge each
	// its lateness so far.
	now := time.Now()
	for ; intended.Before(end); intended = intended.Add(every) {
		if !intended.Before(from) {
			hists[0].record(i, now.Sub(intended))
		}
	}
}

func isReplyError(err error) bool {
	var re respError
	return errors.As(err, &re) || errors.Is(err, errReply)
}

// errReply marks an application error that left the connection usable.
var errReply = errors.New("reply error")

// reconnecter is a worker that can replace a broken connection.
type reconnecter interface{ reconnect() error }

func reconnect(ctx context.Context, w worker) bool {
	r, ok := w.(reconnecter)
	if !ok {
		return ctx.Err() == nil
	}
	for range 3 {
		if ctx.Err() != nil {
			return false
		}
		if r.reconnect() == nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
