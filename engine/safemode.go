package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/metric"
)

// Limiter holds Safe Mode's rate limits in the sidecar's memory (not in the
// Redis that failed). safemode.Limiter implements it.
type Limiter interface {
	// Admit lets one request of user through, waiting briefly, or returns an
	// error that tells the client when to retry.
	Admit(ctx context.Context, user string) error
	// Reset forgets earlier admissions; called when Safe Mode is entered.
	Reset()
}

// SafeModeConfig configures the circuit breaker around the cache and the
// degraded serving while it is open.
type SafeModeConfig struct {
	Failures      uint32        // consecutive availability failures that open the breaker, default 5
	OpenFor       time.Duration // time open before a half-open probe, default 5s
	ProbeInterval time.Duration // how often a probe is sent while not closed, default 1s
	Top           int           // SRS.DUE items in Safe Mode, 5–10, default 10
	Limiter       Limiter       // nil: no limits
	// Unavailable classifies cache errors; only these count as breaker failures.
	Unavailable func(error) bool
	// Ping probes the cache while the breaker is not closed.
	Ping func(context.Context) error
	// OnChange is told when Safe Mode is entered or left (logs, alerts). It
	// runs on the engine's own goroutine, never under the breaker's lock.
	OnChange func(entered bool, since time.Time)
}

// safeMode is the breaker and what the engine remembers around an outage.
type safeMode struct {
	cfg     SafeModeConfig
	cb      *gobreaker.CircuitBreaker[struct{}]
	changes chan gobreaker.State
	since   atomic.Int64 // unix ms when Safe Mode was entered; 0 when closed
	// announced: the current outage was reported; a failed half-open probe
	// (half-open → open) is not a new outage.
	announced bool

	// dirty are the user-seasons this sidecar wrote without the cache; their
	// cache entries are invalidated before they are served from it again.
	// Each mark bumps a generation, so an invalidation only clears the marks
	// it has seen: a write that lands while it runs keeps the user dirty.
	mu    sync.Mutex
	dirty map[userKey]uint64
	gen   uint64
	nDirt atomic.Int32

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type userKey struct{ season, player string }

func newSafeMode(cfg SafeModeConfig, now func() time.Time) *safeMode {
	if cfg.Failures == 0 {
		cfg.Failures = 5
	}
	if cfg.OpenFor == 0 {
		cfg.OpenFor = 5 * time.Second
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.Top == 0 {
		cfg.Top = 10
	}
	if cfg.Unavailable == nil {
		cfg.Unavailable = func(err error) bool { return err != nil }
	}
	s := &safeMode{cfg: cfg, changes: make(chan gobreaker.State, 16), dirty: map[userKey]uint64{}, stop: make(chan struct{})}
	s.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "upstream-redis",
		MaxRequests: 1,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
		IsSuccessful: func(err error) bool {
			return err == nil || !cfg.Unavailable(err)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		// Runs under the breaker's lock: record and hand off, nothing more.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if from == gobreaker.StateClosed && to == gobreaker.StateOpen {
				s.since.Store(now().UnixMilli())
			}
			select {
			case s.changes <- to:
			default:
			}
		},
	})
	return s
}

// errBypass marks a cache call that must be served without the cache.
var errBypass = errors.New("cache bypassed")

// call runs fn through the breaker. It returns errBypass when the cache is
// unavailable (breaker open, or fn failed for availability reasons).
func (s *safeMode) call(fn func() error) error {
	_, err := s.cb.Execute(func() (struct{}, error) { return struct{}{}, fn() })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests), s.cfg.Unavailable(err):
		return errBypass
	}
	return err
}

// Active reports whether the breaker is not closed.
func (s *safeMode) active() bool { return s.cb.State() != gobreaker.StateClosed }

func (s *safeMode) markDirty(season, player string) {
	s.mu.Lock()
	k := userKey{season, player}
	if _, ok := s.dirty[k]; !ok {
		s.nDirt.Add(1)
	}
	s.gen++
	s.dirty[k] = s.gen
	s.mu.Unlock()
}

// dirtyGen returns the user's mark generation, 0 when clean.
func (s *safeMode) dirtyGen(season, player string) uint64 {
	if s.nDirt.Load() == 0 {
		return 0
	}
	s.mu.Lock()
	g := s.dirty[userKey{season, player}]
	s.mu.Unlock()
	return g
}

// clean clears the user's mark if no write marked it after generation g.
func (s *safeMode) clean(season, player string, g uint64) {
	s.mu.Lock()
	k := userKey{season, player}
	if cur, ok := s.dirty[k]; ok && cur == g {
		delete(s.dirty, k)
		s.nDirt.Add(-1)
	}
	s.mu.Unlock()
}

func (s *safeMode) dirtyUsers() []userKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]userKey, 0, len(s.dirty))
	for k := range s.dirty {
		out = append(out, k)
	}
	return out
}

// BreakerState is "closed", "half-open" or "open".
func (e *Engine) BreakerState() string { return e.safe.cb.State().String() }

// SafeModeSince is when Safe Mode was entered; zero when the cache is in use.
func (e *Engine) SafeModeSince() time.Time {
	if ms := e.safe.since.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Start runs the breaker's background work: probes while it is not closed,
// and on recovery the invalidation of every user written during the outage.
func (e *Engine) Start(ctx context.Context) {
	s := e.safe
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		probe := time.NewTicker(s.cfg.ProbeInterval)
		defer probe.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-ctx.Done():
				return
			case st := <-s.changes:
				e.stateChanged(ctx, st)
			case <-probe.C:
				if s.active() && s.cfg.Ping != nil {
					_ = s.call(func() error {
						pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeInterval)
						defer cancel()
						return s.cfg.Ping(pctx)
					})
				}
			}
		}
	}()
}

// Stop ends the background work and waits for it. It is idempotent.
func (e *Engine) Stop() {
	e.safe.once.Do(func() { close(e.safe.stop) })
	e.safe.wg.Wait()
	e.jobs.Wait()
}

func (e *Engine) stateChanged(ctx context.Context, st gobreaker.State) {
	s := e.safe
	switch st {
	case gobreaker.StateOpen:
		if s.announced || s.since.Load() == 0 {
			return
		}
		s.announced = true
		if s.cfg.Limiter != nil {
			s.cfg.Limiter.Reset()
		}
		if s.cfg.OnChange != nil {
			s.cfg.OnChange(true, e.SafeModeSince())
		}
	case gobreaker.StateClosed:
		since := e.SafeModeSince()
		e.invalidateDirty(ctx)
		s.since.Store(0)
		if s.cfg.OnChange != nil && s.announced {
			s.cfg.OnChange(false, since)
		}
		s.announced = false
	}
}

// invalidateDirty deletes the cache entries of users written during the
// outage, so their next read reloads from the store and the local queue.
func (e *Engine) invalidateDirty(ctx context.Context) {
	for _, u := range e.safe.dirtyUsers() {
		if err := e.invalidate(ctx, u.season, u.player); err != nil {
			e.log.Warn("invalidate after outage; retried on the user's next request", "season", u.season, "player", u.player, "err", err)
		}
	}
}

// invalidate drops one user's cache entry and forgets the dirty marks made
// before it started.
func (e *Engine) invalidate(ctx context.Context, season, player string) error {
	g := e.safe.dirtyGen(season, player)
	if err := e.safe.call(func() error { return e.cache.Invalidate(ctx, season, player) }); err != nil {
		return err
	}
	e.safe.clean(season, player, g)
	return nil
}

// safeMetrics registers the breaker's gauges.
func (e *Engine) safeMetrics(m metric.Meter) error {
	_, err := m.Int64ObservableGauge("srsproxy_breaker_state",
		metric.WithDescription("circuit breaker around the upstream Redis: 0 closed, 1 half-open, 2 open"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.safe.cb.State()))
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("srsproxy_safe_mode",
		metric.WithDescription("1 while Safe Mode serves from MariaDB"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			v := int64(0)
			if e.safe.since.Load() != 0 {
				v = 1
			}
			o.Observe(v)
			return nil
		}))
	return err
}
