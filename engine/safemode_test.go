package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// invalidateCache is a Cache that records invalidations; the embedded nil
// Cache panics on anything else.
type invalidateCache struct {
	Cache
	mu          sync.Mutex
	invalidated []string
}

func (c *invalidateCache) Invalidate(_ context.Context, season, player string) error {
	c.mu.Lock()
	c.invalidated = append(c.invalidated, season+"/"+player)
	c.mu.Unlock()
	return nil
}

func (c *invalidateCache) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.invalidated...)
}

// changeLog records OnChange calls and signals each.
type changeLog struct {
	mu    sync.Mutex
	calls []bool
	ch    chan bool
}

func newChangeLog() *changeLog { return &changeLog{ch: make(chan bool, 64)} }

func (l *changeLog) onChange(entered bool, _ time.Time) {
	l.mu.Lock()
	l.calls = append(l.calls, entered)
	l.mu.Unlock()
	l.ch <- entered
}

func (l *changeLog) next(t *testing.T) bool {
	t.Helper()
	select {
	case v := <-l.ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no Safe Mode transition reported")
		return false
	}
}

var errDown = errors.New("connection refused")

func breakerEngine(t *testing.T, cache Cache, cfg SafeModeConfig) *Engine {
	t.Helper()
	if cfg.Unavailable == nil {
		cfg.Unavailable = func(err error) bool { return errors.Is(err, errDown) }
	}
	e, err := New(cache, nil, nil, Config{SafeMode: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

// outage opens the breaker and closes it again (a half-open success).
func outage(t *testing.T, s *safeMode) {
	t.Helper()
	for !s.active() {
		_ = s.call(func() error { return errDown })
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.active() {
		if time.Now().After(deadline) {
			t.Fatal("the breaker did not close")
		}
		time.Sleep(time.Millisecond)
		_ = s.call(func() error { return nil })
	}
}

// An outage that began and ended before the engine's goroutine looked is
// still reported, entered then left, and its dirty users are invalidated;
// many outages in a row while it is busy are never lost either: the first
// entry and the last exit always arrive.
func TestBreakerTransitionsLossless(t *testing.T) {
	t.Parallel()
	cache := &invalidateCache{}
	changes := newChangeLog()
	e := breakerEngine(t, cache, SafeModeConfig{Failures: 1, OpenFor: time.Millisecond, OnChange: changes.onChange})
	s := e.safe
	s.markDirty("S", "p")
	for range 50 { // far more transitions than the old 16-slot channel held
		outage(t, s)
	}
	if s.active() {
		t.Fatal("breaker open after the outages")
	}
	e.Start(context.Background())
	if !changes.next(t) || changes.next(t) {
		t.Fatalf("transitions %v, want entered then left", changes.calls)
	}
	if got := cache.list(); len(got) != 1 || got[0] != "S/p" {
		t.Errorf("invalidated %v, want S/p", got)
	}
	if !e.SafeModeSince().IsZero() || e.Degraded().Redis {
		t.Errorf("after recovery: since %v, degraded %+v", e.SafeModeSince(), e.Degraded())
	}

	// With the goroutine running: each outage reported once each way.
	for range 3 {
		outage(t, s)
		if !changes.next(t) || changes.next(t) {
			t.Fatalf("transitions %v", changes.calls)
		}
	}
	select {
	case v := <-changes.ch:
		t.Fatalf("extra transition %v (all: %v)", v, changes.calls)
	case <-time.After(50 * time.Millisecond):
	}
}

// The pending events stay bounded and alternate, keeping the first and the
// latest.
func TestBreakerEventsCoalesce(t *testing.T) {
	t.Parallel()
	s := newSafeMode(SafeModeConfig{}, time.Now)
	for i := range 101 {
		s.push(breakerEvent{entered: i%2 == 0, since: int64(i)})
	}
	evs := s.pending()
	if len(evs) > 3 || !evs[0].entered || evs[0].since != 0 || !evs[len(evs)-1].entered || evs[len(evs)-1].since != 100 {
		t.Fatalf("pending %+v, want the first entry … the latest entry, at most 3", evs)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].entered == evs[i-1].entered {
			t.Fatalf("pending %+v do not alternate", evs)
		}
	}
}

// A panic in OnChange is recovered and later transitions are still handled.
func TestBreakerOnChangePanic(t *testing.T) {
	t.Parallel()
	changes := newChangeLog()
	var n atomic.Int32
	e := breakerEngine(t, &invalidateCache{}, SafeModeConfig{Failures: 1, OpenFor: time.Millisecond,
		OnChange: func(entered bool, since time.Time) {
			if n.Add(1) == 1 {
				panic("alert bug")
			}
			changes.onChange(entered, since)
		}})
	e.Start(context.Background())
	outage(t, e.safe)
	if changes.next(t) {
		t.Fatal("want the left transition after the entered one panicked")
	}
	outage(t, e.safe)
	if !changes.next(t) || changes.next(t) {
		t.Fatalf("transitions %v", changes.calls)
	}
}

// A failure after the caller's context ended is the caller's (the client
// went away or its deadline passed), not the cache's: it never opens the
// breaker, and is returned as it is, not as a bypass.
func TestBreakerIgnoresCallerContext(t *testing.T) {
	t.Parallel()
	e := breakerEngine(t, &invalidateCache{}, SafeModeConfig{Failures: 2})
	s := e.safe
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel2()
	<-expired.Done()
	for range 10 {
		for _, ctx := range []context.Context{cancelled, expired} {
			if err := s.callCtx(ctx, func() error { return errDown }); !errors.Is(err, errDown) {
				t.Fatalf("callCtx after the caller's end: %v, want the cache's error as it is", err)
			}
		}
		// call without a context: a cancellation is the caller's too.
		if err := s.call(func() error { return context.Canceled }); !errors.Is(err, context.Canceled) {
			t.Fatalf("call returning context.Canceled: %v", err)
		}
	}
	if s.active() {
		t.Fatal("the caller's context errors opened the breaker")
	}
	// The same failure with a live context counts.
	for range 2 {
		if err := s.callCtx(context.Background(), func() error { return errDown }); !errors.Is(err, errBypass) {
			t.Fatalf("availability failure: %v, want errBypass", err)
		}
	}
	if !s.active() {
		t.Fatal("two availability failures did not open the breaker")
	}
}

// pingStore is a Store with a Ping that can fail.
type pingStore struct {
	Store
	down atomic.Bool
}

func (p *pingStore) Ping(context.Context) error {
	if p.down.Load() {
		return errDown
	}
	return nil
}

// The engine probes a pingable store: Degraded reports MariaDB down while
// pings fail, and the probe's Back fires when it returns.
func TestStoreProbeDegraded(t *testing.T) {
	t.Parallel()
	st := &pingStore{}
	e, err := New(&snapshotCache{snaps: map[string]srs.Season{}}, st, nil, Config{Logger: slog.New(slog.DiscardHandler),
		SafeMode: SafeModeConfig{StoreProbeInterval: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	if e.StoreProbe() != nil {
		t.Fatal("a probe before Start")
	}
	e.Start(context.Background())
	p := e.StoreProbe()
	if p == nil {
		t.Fatal("no store probe after Start")
	}
	st.down.Store(true)
	waitFor(t, "MariaDB degraded", func() bool { return e.Degraded().MariaDB })
	d := e.Degraded()
	if d.MariaDBSince.IsZero() || !errors.Is(d.MariaDBErr, errDown) || d.Redis {
		t.Fatalf("Degraded %+v", d)
	}
	if down, _ := e.storeDown(); !down {
		t.Fatal("storeDown false")
	}
	st.down.Store(false)
	select {
	case <-p.Back():
	case <-time.After(10 * time.Second):
		t.Fatal("no Back signal")
	}
	if e.Degraded().MariaDB {
		t.Fatal("still degraded after Back")
	}
	e.Stop()
	e.Stop() // idempotent
}

// call (the due and card reads' path) applies callCtx's rule too: a
// timeout while other calls were answered is overload, refused as TRYAGAIN
// without a breaker failure; timeouts with nothing answered open it, and
// the error that did is kept for the Safe Mode alert. (Before, call counted
// every timeout: 10,000 connections of SRS.DUE opened the breaker.)
func TestCallTimeoutWhileOthersAnswered(t *testing.T) {
	t.Parallel()
	e := breakerEngine(t, &invalidateCache{}, SafeModeConfig{Failures: 2,
		Timeout: func(err error) bool { return errors.Is(err, errDown) }})
	s := e.safe
	for range 10 {
		err := s.call(func() error {
			if err := s.call(func() error { return nil }); err != nil { // another request answered meanwhile
				t.Fatal(err)
			}
			return errDown
		})
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("a timeout while another call was answered: %v, want ErrOverloaded (TRYAGAIN)", err)
		}
	}
	if s.active() {
		t.Fatal("timeouts while Redis answered other calls opened the breaker")
	}
	for range 2 {
		_ = s.call(func() error { return errDown })
	}
	if !s.active() {
		t.Fatal("timeouts with nothing answered (a stalled Redis) did not open the breaker")
	}
	if got := e.LastCacheFailure(); got != errDown.Error() {
		t.Errorf("LastCacheFailure = %q, want the error that opened the breaker", got)
	}
}
