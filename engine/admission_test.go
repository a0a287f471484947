package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// blockingCache is a Cache whose Due blocks until released, telling entered
// each time a call arrives; the embedded nil Cache panics on anything else.
type blockingCache struct {
	Cache
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func newBlockingCache() *blockingCache {
	return &blockingCache{entered: make(chan struct{}, 1024), release: make(chan struct{})}
}

func (c *blockingCache) Due(ctx context.Context, _, _, _ string, _ int64, _ int) (srs.DuePage, error) {
	c.calls.Add(1)
	c.entered <- struct{}{}
	select {
	case <-c.release:
		return srs.DuePage{Loaded: true}, nil
	case <-ctx.Done():
		return srs.DuePage{}, ctx.Err()
	}
}

// waitEntered waits until n calls are inside the cache.
func (c *blockingCache) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the cache call did not arrive")
		}
	}
}

// waitWaiting waits until n calls wait for a slot.
func waitWaiting(t *testing.T, a *Admission, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().Waiting != n {
		if time.Now().After(deadline) {
			t.Fatalf("waiting = %d, want %d", a.Stats().Waiting, n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func wantOverload(t *testing.T, err error, retry time.Duration) {
	t.Helper()
	var ov *OverloadError
	if !errors.As(err, &ov) || !errors.Is(err, ErrOverloaded) {
		t.Fatalf("err = %v (%T), want an *OverloadError", err, err)
	}
	if ov.RetryAfter != retry {
		t.Fatalf("RetryAfter = %v, want %v", ov.RetryAfter, retry)
	}
	// The RESP layer answers ErrContention's prefix: TRYAGAIN.
	if !errors.Is(err, ErrContention) {
		t.Fatalf("%v does not match ErrContention (TRYAGAIN)", err)
	}
}

func TestOverloadError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retry time.Duration
		want  string
	}{
		{10 * time.Millisecond, "sidecar overloaded; retry in 10ms"},
		{250 * time.Microsecond, "sidecar overloaded; retry in 250µs"},
		{time.Second, "sidecar overloaded; retry in 1s"},
	} {
		if got := (&OverloadError{RetryAfter: tc.retry}).Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	if got := NewAdmission(AdmissionConfig{MaxWait: -1}).refusal.Error(); got != "sidecar overloaded; retry in 10ms" {
		t.Errorf("default refusal %q", got)
	}
}

func TestAdmissionDefaults(t *testing.T) {
	t.Parallel()
	a := NewAdmission(AdmissionConfig{})
	if st := a.Stats(); st.Limit != DefaultMaxInFlight || a.maxQueue != 64*DefaultMaxInFlight || a.maxWait != DefaultAdmitWait ||
		a.refusal.RetryAfter != DefaultRetryAfter {
		t.Fatalf("defaults: %+v, queue %d, wait %v, retry %v", st, a.maxQueue, a.maxWait, a.refusal.RetryAfter)
	}
	// The engine's default when SafeModeConfig names none.
	if st := newSafeMode(SafeModeConfig{}, time.Now).cfg.Admission.Stats(); st.Limit != DefaultMaxInFlight {
		t.Fatalf("safe mode's default admission: %+v", st)
	}
}

func TestAdmissionBounds(t *testing.T) {
	t.Parallel()
	t.Run("refused at once without waiting", func(t *testing.T) {
		t.Parallel()
		a := NewAdmission(AdmissionConfig{MaxInFlight: 2, MaxWait: -1})
		ctx := context.Background()
		for range 2 {
			if err := a.acquire(ctx); err != nil {
				t.Fatal(err)
			}
		}
		wantOverload(t, a.acquire(ctx), DefaultRetryAfter)
		a.release()
		if err := a.acquire(ctx); err != nil {
			t.Fatalf("a released slot is free again: %v", err)
		}
		if st := a.Stats(); st.InFlight != 2 || st.Shed["wait"] != 1 || st.ShedTotal() != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("the wait is bounded", func(t *testing.T) {
		t.Parallel()
		a := NewAdmission(AdmissionConfig{MaxInFlight: 1, MaxWait: time.Millisecond, RetryAfter: 3 * time.Millisecond})
		if err := a.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantOverload(t, a.acquire(context.Background()), 3*time.Millisecond)
		if st := a.Stats(); st.Shed["wait"] != 1 || st.Waiting != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("a waiter gets the freed slot, in arrival order", func(t *testing.T) {
		t.Parallel()
		a := NewAdmission(AdmissionConfig{MaxInFlight: 1, MaxWait: time.Minute})
		if err := a.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		order := make(chan int, 2)
		for i := range 2 {
			go func() {
				if err := a.acquire(context.Background()); err != nil {
					t.Errorf("waiter %d: %v", i, err)
				}
				order <- i
			}()
			waitWaiting(t, a, i+1)
		}
		a.release()
		if first := <-order; first != 0 {
			t.Fatalf("waiter %d was admitted first, want 0", first)
		}
		a.release()
		<-order
		if st := a.Stats(); st.ShedTotal() != 0 || st.InFlight != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("the queue is bounded", func(t *testing.T) {
		t.Parallel()
		a := NewAdmission(AdmissionConfig{MaxInFlight: 1, MaxQueue: 1, MaxWait: time.Minute})
		if err := a.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.acquire(context.Background()) }()
		waitWaiting(t, a, 1)
		wantOverload(t, a.acquire(context.Background()), DefaultRetryAfter)
		if st := a.Stats(); st.Shed["queue_full"] != 1 {
			t.Fatalf("stats %+v", st)
		}
		a.release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the caller's end stops the wait", func(t *testing.T) {
		t.Parallel()
		a := NewAdmission(AdmissionConfig{MaxInFlight: 1, MaxWait: time.Minute})
		if err := a.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.acquire(ctx) }()
		waitWaiting(t, a, 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want the context's", err)
		}
		if st := a.Stats(); st.ShedTotal() != 0 || st.Waiting != 0 {
			t.Fatalf("a caller that left is not shed: %+v", st)
		}
	})
}

// Overload is not an outage: with every slot held by calls that a slow but
// healthy cache has not answered yet, further calls are refused with an
// *OverloadError before reaching the cache, and the breaker, which opens on
// the first counted failure here, stays closed. A real failure still opens it.
func TestShedIsNotAnOutage(t *testing.T) {
	t.Parallel()
	for _, withCtx := range []bool{false, true} {
		name := "call"
		if withCtx {
			name = "callCtx"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cache := newBlockingCache()
			adm := NewAdmission(AdmissionConfig{MaxInFlight: 2, MaxWait: 2 * time.Millisecond})
			e := breakerEngine(t, cache, SafeModeConfig{Failures: 1, Admission: adm})
			s := e.safe
			ctx := context.Background()
			do := func(fn func() error) error {
				if withCtx {
					return s.callCtx(ctx, fn)
				}
				return s.call(fn)
			}
			due := func() error {
				_, err := cache.Due(ctx, "S", "p", "", 1, 5)
				return err
			}
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := do(due); err != nil {
						t.Errorf("an admitted call: %v", err)
					}
				}()
			}
			cache.waitEntered(t, 2)
			const extra = 50
			errs := make(chan error, extra)
			for range extra {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- do(due)
				}()
			}
			for range extra {
				wantOverload(t, <-errs, DefaultRetryAfter)
			}
			if n := cache.calls.Load(); n != 2 {
				t.Fatalf("the cache saw %d calls, want 2: shed calls must not reach it", n)
			}
			if st := e.BreakerState(); st != "closed" {
				t.Fatalf("breaker %s after shedding, want closed", st)
			}
			if st := e.Admission(); st.Shed["wait"]+st.Shed["queue_full"] != extra || st.InFlight != 2 {
				t.Fatalf("admission stats %+v", st)
			}
			close(cache.release)
			wg.Wait()
			if err := do(func() error { return errDown }); !errors.Is(err, errBypass) {
				t.Fatalf("a real failure: %v, want a bypass", err)
			}
			if st := e.BreakerState(); st != "open" {
				t.Fatalf("breaker %s after a real failure, want open", st)
			}
		})
	}
}

// A cache error that is the sidecar's own overload (the pool had no
// connection) is answered as a refusal and counted neither way: it neither
// opens the breaker nor, as a success would, resets its failure count.
func TestPoolOverloadCountsNeitherWay(t *testing.T) {
	t.Parallel()
	errPool := errors.New("redis: connection pool timeout")
	adm := NewAdmission(AdmissionConfig{Overloaded: func(err error) bool { return errors.Is(err, errPool) }})
	s := newSafeMode(SafeModeConfig{Failures: 2, Admission: adm,
		// As backend/redis.IsUnavailable: pool waits are not unavailability.
		Unavailable: func(err error) bool { return errors.Is(err, errDown) }}, time.Now)
	ctx := context.Background()
	if err := s.call(func() error { return errDown }); !errors.Is(err, errBypass) {
		t.Fatalf("first failure: %v", err)
	}
	for range 10 {
		wantOverload(t, s.call(func() error { return errPool }), DefaultRetryAfter)
		wantOverload(t, s.callCtx(ctx, func() error { return errPool }), DefaultRetryAfter)
	}
	if s.active() {
		t.Fatal("pool overload opened the breaker")
	}
	if c := s.cb.Counts(); c.ConsecutiveFailures != 1 {
		t.Fatalf("pool overload changed the failure count: %+v", c)
	}
	if st := adm.Stats(); st.Shed["pool"] != 20 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.call(func() error { return errDown }); !errors.Is(err, errBypass) || !s.active() {
		t.Fatalf("second consecutive failure: %v, active %v; want the breaker open", err, s.active())
	}
}

// A request whose client leaves while it waits for admission gets its
// context's error, neither a bypass nor a refusal.
func TestCallerLeavesWhileWaiting(t *testing.T) {
	t.Parallel()
	cache := newBlockingCache()
	adm := NewAdmission(AdmissionConfig{MaxInFlight: 1, MaxWait: time.Minute})
	e := breakerEngine(t, cache, SafeModeConfig{Failures: 1, Admission: adm})
	go func() {
		_ = e.safe.call(func() error {
			_, err := cache.Due(context.Background(), "S", "p", "", 1, 5)
			return err
		})
	}()
	cache.waitEntered(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.safe.callCtx(ctx, func() error { t.Error("ran without a slot"); return nil }) }()
	waitWaiting(t, adm, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || errors.Is(err, errBypass) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(cache.release)
	if st := e.BreakerState(); st != "closed" {
		t.Fatalf("breaker %s", st)
	}
}

func BenchmarkAdmissionUncontended(b *testing.B) {
	s := newSafeMode(SafeModeConfig{}, time.Now)
	fn := func() error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = s.call(fn)
	}
}
