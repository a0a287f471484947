package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/metric"

	"github.com/srsproxy/srsproxy/internal/health"
	"github.com/srsproxy/srsproxy/internal/logx"
	"github.com/srsproxy/srsproxy/internal/startstop"
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
	// Admission bounds the concurrent cache calls, in front of the breaker:
	// a call it refuses (*OverloadError) sends nothing and counts neither
	// way. nil: NewAdmission(AdmissionConfig{}).
	Admission *Admission
	// Unavailable classifies cache errors; only these count as breaker
	// failures. Whatever it says, a cancellation, and any failure of a call
	// made with callCtx after its caller's context ended (the client went
	// away or its deadline passed), count neither way: impatience is not an
	// outage.
	Unavailable func(error) bool
	// Timeout picks, among unavailable errors, the timeouts (nil: none). A
	// timeout counts as a failure only if no cache call succeeded while it
	// waited: when other calls got answers meanwhile, Redis is up and the
	// wait was the sidecar's own (CPU starvation, queueing), so the call is
	// refused as overload (TRYAGAIN) instead of opening the breaker and
	// moving the load to MariaDB.
	Timeout func(error) bool
	// Ping probes the cache while the breaker is not closed.
	Ping func(context.Context) error
	// OnChange is told when Safe Mode is entered or left (logs, alerts). It
	// runs on the engine's own goroutine, never under the breaker's lock.
	// No transition is lost: an outage that began and ended before the
	// engine's goroutine looked is still told, entered then left.
	OnChange func(entered bool, since time.Time)
	// OnStoreBack is told when the MariaDB health probe sees the store come
	// back (the sidecar kicks its drainer: draining resumes at once, not
	// after the drainer's backoff). It must not block.
	OnStoreBack func()
	// StoreProbeInterval is the pause between MariaDB health pings (each
	// with a 1 s deadline), default 500ms. The probe runs when the store
	// has a Ping method (backend/mariadb.Store does).
	StoreProbeInterval time.Duration
}

// LogEvery is the interval of the engine's rate-limited log lines: a line a
// request can cause is written once, then at most once per LogEvery with a
// count of the ones suppressed.
const LogEvery = 10 * time.Second

// breakerEvent is a Safe Mode transition waiting for the engine's goroutine.
type breakerEvent struct {
	entered bool
	since   int64 // unix ms when the outage (entered or left) began
}

// safeMode is the breaker and what the engine remembers around an outage.
type safeMode struct {
	cfg SafeModeConfig
	cb  *gobreaker.CircuitBreaker[struct{}]
	// answered counts cache calls that succeeded; a timeout that saw it move
	// was overload, not an outage (SafeModeConfig.Timeout).
	answered atomic.Uint64
	since    atomic.Int64 // unix ms when Safe Mode was entered; 0 when closed
	// lastFailure is the latest error counted as a breaker failure: what
	// opened the breaker, for the Safe Mode log line and alert.
	lastFailure atomic.Pointer[string]
	// announced: the current outage was reported; a failed half-open probe
	// (half-open → open) is not a new outage. Only the engine's goroutine
	// touches it.
	announced bool

	// events are the transitions the engine's goroutine has not handled
	// yet, oldest first, alternating entered/left; wake (one slot) tells it
	// there are some. Appending never blocks and never drops the first or
	// the last transition (see push).
	evMu   sync.Mutex
	events []breakerEvent
	wake   chan struct{}

	// logs rate-limits the engine's log lines that requests can cause.
	logs *logx.Limiter
	// store is the MariaDB health probe, set by Start when the store can be
	// pinged; nil before.
	store atomic.Pointer[health.Probe]

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
	if cfg.Admission == nil {
		cfg.Admission = NewAdmission(AdmissionConfig{})
	}
	s := &safeMode{cfg: cfg, wake: make(chan struct{}, 1), dirty: map[userKey]uint64{}, stop: make(chan struct{}),
		logs: logx.New(LogEvery, now)}
	s.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "upstream-redis",
		MaxRequests: 1,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
		IsSuccessful: func(err error) bool {
			if err == nil || !cfg.Unavailable(err) {
				return true
			}
			msg := err.Error()
			s.lastFailure.Store(&msg)
			return false
		},
		IsExcluded: callerGone,
		// Runs under the breaker's lock: record and hand off, nothing more.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			switch {
			case from == gobreaker.StateClosed && to == gobreaker.StateOpen:
				ms := now().UnixMilli()
				s.since.Store(ms)
				s.push(breakerEvent{entered: true, since: ms})
			case to == gobreaker.StateClosed:
				s.push(breakerEvent{entered: false, since: s.since.Load()})
			}
		},
	})
	return s
}

// push queues a transition for the engine's goroutine and wakes it. Events
// alternate entered/left; when more than three wait (the goroutine is busy,
// e.g. invalidating after a long outage), the two after the first are
// merged away: outages in between collapse into one, and the first and the
// latest transition are always handled.
func (s *safeMode) push(ev breakerEvent) {
	s.evMu.Lock()
	if n := len(s.events); n > 0 && s.events[n-1].entered == ev.entered {
		s.events[n-1] = ev
	} else {
		s.events = append(s.events, ev)
	}
	if len(s.events) > 3 {
		s.events = append(s.events[:1], s.events[3:]...)
	}
	s.evMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pending takes the waiting transitions.
func (s *safeMode) pending() []breakerEvent {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	evs := s.events
	s.events = nil
	return evs
}

// errCallerGone marks a cache call that failed after its caller's context
// ended: the breaker counts it neither way.
type errCallerGone struct{ err error }

func (e errCallerGone) Error() string { return e.err.Error() }
func (e errCallerGone) Unwrap() error { return e.err }

// callerGone reports whether a failure is the caller's rather than the
// cache's: such failures are excluded from the breaker's counts. That is
// one marked by callCtx (its context had ended), a cancellation, or the
// sidecar's own overload (ErrOverloaded: admission control). A
// context.DeadlineExceeded alone is not: go-redis reports its own socket
// deadlines (derived from the context) that way too, so only callCtx, which
// knows the caller's context, can tell whose deadline it was.
func callerGone(err error) bool {
	var cg errCallerGone
	return errors.As(err, &cg) || errors.Is(err, context.Canceled) || errors.Is(err, ErrOverloaded)
}

// errBypass marks a cache call that must be served without the cache.
var errBypass = errors.New("cache bypassed")

// call runs fn through admission control and the breaker. It returns
// errBypass when the cache is unavailable (breaker open, or fn failed for
// availability reasons), and an *OverloadError, counted neither way, when
// admission refused the call (or fn met the cache's own overload).
// Prefer callCtx, which also knows when a failure is the caller's.
func (s *safeMode) call(fn func() error) error { return s.callCtx(context.Background(), fn) }

// callCtx is call for a cache call made with ctx: if fn fails after ctx
// ended (the client went away, or its deadline passed), the failure is not
// counted by the breaker and is returned as it is (wrapping ctx's end), not
// as errBypass. When ctx ends while the call waits for admission, ctx's
// error is returned.
func (s *safeMode) callCtx(ctx context.Context, fn func() error) error {
	adm := s.cfg.Admission
	if err := adm.acquire(ctx); err != nil {
		return err
	}
	defer adm.release()
	return s.execCtx(ctx, fn)
}

// callCommitted is callCtx without admission, for calls that must not be
// shed: those a review makes once its entry is on disk (the compare-and-set
// and its read-back; shedding them would leave the review unconfirmed and
// move load to MariaDB, the opposite of shedding) and the drainer's cache
// catch-up (one goroutine; shedding it would stall the drain).
func (s *safeMode) callCommitted(ctx context.Context, fn func() error) error {
	return s.execCtx(ctx, fn)
}

// execCtx runs fn through the breaker for callCtx and callCommitted.
func (s *safeMode) execCtx(ctx context.Context, fn func() error) error {
	adm := s.cfg.Admission
	before := s.answered.Load()
	_, err := s.cb.Execute(func() (struct{}, error) {
		err := adm.own(fn())
		switch {
		case err == nil:
			s.answered.Add(1)
		case ctx.Err() != nil && !errors.Is(err, ErrOverloaded):
			err = errCallerGone{err}
		case s.cfg.Timeout != nil && s.cfg.Timeout(err) && s.answered.Load() != before:
			err = adm.refuse(shedSlow)
		}
		return struct{}{}, err
	})
	var cg errCallerGone
	if errors.As(err, &cg) {
		return cg.err
	}
	return s.verdict(err)
}

func (s *safeMode) verdict(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return errBypass
	case callerGone(err):
		return err
	case s.cfg.Unavailable(err):
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

// LastCacheFailure is the latest cache error that counted as a breaker
// failure ("" if none yet): after Safe Mode is entered, what opened it.
func (e *Engine) LastCacheFailure() string {
	if p := e.safe.lastFailure.Load(); p != nil {
		return *p
	}
	return ""
}

// SafeModeSince is when Safe Mode was entered; zero when the cache is in use.
func (e *Engine) SafeModeSince() time.Time {
	if ms := e.safe.since.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// Start runs the engine's background work: the breaker's probes while it
// is not closed, the handling of its transitions (alerts; on recovery the
// invalidation of every user written during the outage), and the MariaDB
// health probe. A panic in any of it is logged and the work goes on.
func (e *Engine) Start(ctx context.Context) {
	s := e.safe
	if p, ok := e.store.(interface{ Ping(context.Context) error }); ok && s.store.Load() == nil {
		probe := health.NewProbe(health.ProbeConfig{Name: "mariadb", Ping: p.Ping, Interval: s.cfg.StoreProbeInterval,
			Timeout: time.Second, Logger: e.log, Now: e.cfg.Now, OnChange: func(up bool, _ error) {
				if up && s.cfg.OnStoreBack != nil {
					s.cfg.OnStoreBack()
				}
			}})
		if s.store.CompareAndSwap(nil, probe) {
			probe.Start(ctx)
		}
	}
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
			case <-s.wake:
				for _, ev := range s.pending() {
					startstop.Safely("safe mode transition", e.log, func() { e.stateChanged(ctx, ev) })
				}
			case <-probe.C:
				if s.active() && s.cfg.Ping != nil {
					startstop.Safely("breaker probe", e.log, func() {
						_ = s.call(func() error {
							pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeInterval)
							defer cancel()
							return s.cfg.Ping(pctx)
						})
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
	if p := e.safe.store.Load(); p != nil {
		p.Stop()
	}
}

// stateChanged handles one Safe Mode transition on the engine's goroutine.
func (e *Engine) stateChanged(ctx context.Context, ev breakerEvent) {
	s := e.safe
	if ev.entered {
		if s.announced {
			return
		}
		s.announced = true
		if s.cfg.Limiter != nil {
			s.cfg.Limiter.Reset()
		}
		if s.cfg.OnChange != nil {
			s.cfg.OnChange(true, time.UnixMilli(ev.since))
		}
		return
	}
	e.invalidateDirty(ctx)
	// Safe Mode is over once its stale entries are gone; unless the breaker
	// opened again meanwhile (a newer outage set since).
	s.since.CompareAndSwap(ev.since, 0)
	if s.cfg.OnChange != nil && s.announced {
		s.cfg.OnChange(false, time.UnixMilli(ev.since))
	}
	s.announced = false
}

// invalidateDirty deletes the cache entries of users written during the
// outage, so their next read reloads from the store and the local queue.
func (e *Engine) invalidateDirty(ctx context.Context) {
	for _, u := range e.safe.dirtyUsers() {
		if err := e.invalidate(ctx, u.season, u.player); err != nil {
			e.safe.logs.Warn(e.log, "invalidate after outage; retried on the user's next request", "season", u.season, "player", u.player, "err", err)
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
	if e.cfg.Dirty != nil && e.safe.dirtyGen(season, player) == 0 {
		if err := e.cfg.Dirty.Clean(season, player); err != nil {
			e.log.Warn("forget a dirty mark; the user is invalidated again after a restart", "season", season, "player", player, "err", err)
		}
	}
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
	if err := e.healthMetrics(m); err != nil {
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

// Degradation says which dependencies the sidecar is serving without.
type Degradation struct {
	// Redis: the breaker is not closed, or the entries that went stale
	// during its outage are not invalidated yet (Safe Mode).
	Redis      bool
	RedisSince time.Time // when Safe Mode was entered; zero when not degraded
	// MariaDB: its health probe's last pings failed (cached reads and
	// reviews go on; what needs MariaDB gets STOREDOWN).
	MariaDB      bool
	MariaDBSince time.Time // when it went down; zero when not degraded
	MariaDBErr   error     // the last failed ping's error
}

// Degraded reports which dependencies the sidecar is serving without. It
// never does I/O.
func (e *Engine) Degraded() Degradation {
	d := Degradation{RedisSince: e.SafeModeSince()}
	d.Redis = e.safe.active() || !d.RedisSince.IsZero()
	if p := e.safe.store.Load(); p != nil {
		up, since, err := p.State()
		if !up {
			d.MariaDB, d.MariaDBSince, d.MariaDBErr = true, since, err
		}
	}
	return d
}

// StoreProbe is the MariaDB health probe, nil before Start or when the
// store cannot be pinged. Its Back channel fires each time MariaDB comes
// back (the drainer's cue to retry at once); Kick asks for a ping now.
func (e *Engine) StoreProbe() *health.Probe { return e.safe.store.Load() }

// storeDown reports whether the health probe sees MariaDB down, with its
// last error.
func (e *Engine) storeDown() (bool, error) {
	if p := e.safe.store.Load(); p != nil {
		if up, _, err := p.State(); !up {
			return true, err
		}
	}
	return false, nil
}

// rateLog is the engine's rate-limited logger for lines a request can
// cause: each message is written once, then at most once per LogEvery with
// a "suppressed" count. Use it as e.rateLog().Warn(e.log, msg, args...).
func (e *Engine) rateLog() *logx.Limiter { return e.safe.logs }
