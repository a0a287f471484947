package safemode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sleepLog is a Sleep that returns at once (the clock does not move) and
// records what it was asked to wait.
type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleepLog) Calls() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

// sleepCall is one Sleep held by a gate until the test releases it.
type sleepCall struct {
	d       time.Duration
	release chan struct{}
}

// sleepGate is a Sleep that blocks until released or ctx ends, announcing
// each call on calls.
type sleepGate struct{ calls chan sleepCall }

func newSleepGate() *sleepGate { return &sleepGate{calls: make(chan sleepCall, 100)} }

func (g *sleepGate) Sleep(ctx context.Context, d time.Duration) error {
	c := sleepCall{d: d, release: make(chan struct{})}
	g.calls <- c
	select {
	case <-c.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next returns the next Sleep call.
func (g *sleepGate) next(t *testing.T) sleepCall {
	t.Helper()
	select {
	case c := <-g.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no request started to wait")
		return sleepCall{}
	}
}

// admitAsync runs Admit in a goroutine and returns its result channel.
func admitAsync(ctx context.Context, l *Limiter, user string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- l.Admit(ctx, user) }()
	return ch
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Admit did not return")
		return nil
	}
}

// wantBusy asserts err is a *BusyError with the given fields.
func wantBusy(t *testing.T, err error, retryAfter time.Duration, perUser bool, seconds int) {
	t.Helper()
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("err = %v, want *BusyError", err)
	}
	if busy.RetryAfter != retryAfter || busy.PerUser != perUser || busy.Seconds() != seconds {
		t.Fatalf("BusyError = {RetryAfter: %v, PerUser: %v, Seconds: %d}, want {%v, %v, %d}",
			busy.RetryAfter, busy.PerUser, busy.Seconds(), retryAfter, perUser, seconds)
	}
}

func TestLimiterBurstThenWaitThenBusy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		perMinute int
		burst     int
		token     time.Duration // time per token
		waits     int           // further requests that fit in MaxWait (2s)
		busy      time.Duration // RetryAfter of the first refused
		seconds   int
	}{
		{perMinute: 60, burst: 1, token: time.Second, waits: 2, busy: 3 * time.Second, seconds: 3},
		{perMinute: 500, burst: 9, token: 120 * time.Millisecond, waits: 16, busy: 2040 * time.Millisecond, seconds: 3},
		{perMinute: 90, burst: 2, token: 666666666, waits: 3, busy: 4 * 666666666, seconds: 3},
		{perMinute: 1, burst: 1, token: time.Minute, waits: 0, busy: time.Minute, seconds: 60},
		{perMinute: 3600, burst: 60, token: time.Second / 60, waits: 120, busy: 121 * (time.Second / 60), seconds: 3},
	} {
		t.Run(fmt.Sprint(tc.perMinute), func(t *testing.T) {
			t.Parallel()
			clock, sleeps := newFakeClock(), &sleepLog{}
			l := NewLimiter(LimiterConfig{PerMinute: tc.perMinute, Now: clock.Now, Sleep: sleeps.Sleep})
			if l.Burst() != tc.burst {
				t.Fatalf("Burst = %d, want %d", l.Burst(), tc.burst)
			}
			ctx := t.Context()
			user := 0
			admit := func() error { user++; return l.Admit(ctx, fmt.Sprint("u", user)) }
			for i := range tc.burst {
				if err := admit(); err != nil {
					t.Fatalf("burst request %d: %v", i+1, err)
				}
			}
			if got := sleeps.Calls(); len(got) != 0 {
				t.Fatalf("the burst slept %v", got)
			}
			var want []time.Duration
			for k := 1; k <= tc.waits; k++ {
				if err := admit(); err != nil {
					t.Fatalf("request %d after the burst: %v", k, err)
				}
				want = append(want, time.Duration(k)*tc.token)
			}
			if got := sleeps.Calls(); !slices.Equal(got, want) {
				t.Fatalf("waits = %v, want %v", got, want)
			}
			for range 3 { // refused requests give their reservation back
				wantBusy(t, admit(), tc.busy, false, tc.seconds)
			}
		})
	}
}

// RetryAfter grows one token at a time as waiting requests pile up.
func TestLimiterRetryAfterPilesUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		maxWait time.Duration
		waited  int
		seconds int
	}{
		{500 * time.Millisecond, 0, 1},
		{1500 * time.Millisecond, 1, 2},
		{2500 * time.Millisecond, 2, 3},
		{3 * time.Second, 3, 4},
	} {
		t.Run(tc.maxWait.String(), func(t *testing.T) {
			t.Parallel()
			clock, sleeps := newFakeClock(), &sleepLog{}
			l := NewLimiter(LimiterConfig{PerMinute: 60, MaxWait: tc.maxWait, Now: clock.Now, Sleep: sleeps.Sleep})
			ctx := t.Context()
			if err := l.Admit(ctx, "first"); err != nil {
				t.Fatal(err)
			}
			for i := range tc.waited {
				if err := l.Admit(ctx, fmt.Sprint("waiter", i)); err != nil {
					t.Fatal(err)
				}
			}
			err := l.Admit(ctx, "refused")
			wantBusy(t, err, time.Duration(tc.seconds)*time.Second, false, tc.seconds)
			if want := fmt.Sprintf("safe mode, retry after %d seconds", tc.seconds); err.Error() != want {
				t.Fatalf("Error() = %q, want %q", err, want)
			}
			clock.Advance(300 * time.Millisecond)
			wantBusy(t, l.Admit(ctx, "refused"), time.Duration(tc.seconds)*time.Second-300*time.Millisecond, false, tc.seconds)
		})
	}
}

func TestLimiterRefill(t *testing.T) {
	t.Parallel()
	clock, sleeps := newFakeClock(), &sleepLog{}
	l := NewLimiter(LimiterConfig{PerMinute: 300, MaxWait: time.Nanosecond, Now: clock.Now, Sleep: sleeps.Sleep})
	ctx := t.Context()
	user := 0
	admitted := func() int {
		n := 0
		for {
			user++
			err := l.Admit(ctx, fmt.Sprint("u", user))
			if err != nil {
				var busy *BusyError
				if !errors.As(err, &busy) || busy.PerUser {
					t.Fatalf("Admit = %v, want a global BusyError", err)
				}
				return n
			}
			n++
		}
	}
	if n := admitted(); n != 5 {
		t.Fatalf("admitted %d from the full bucket, want the burst of 5", n)
	}
	clock.Advance(199 * time.Millisecond)
	if n := admitted(); n != 0 {
		t.Fatalf("admitted %d before a token was due", n)
	}
	clock.Advance(time.Millisecond)
	if n := admitted(); n != 1 {
		t.Fatalf("admitted %d after one token interval, want 1", n)
	}
	clock.Advance(700 * time.Millisecond)
	if n := admitted(); n != 3 {
		t.Fatalf("admitted %d after 3.5 token intervals, want 3", n)
	}
	clock.Advance(time.Hour)
	if n := admitted(); n != 5 {
		t.Fatalf("admitted %d after an hour, want the burst of 5 (the bucket holds no more)", n)
	}
	if got := sleeps.Calls(); len(got) != 0 {
		t.Fatalf("slept %v with MaxWait 1ns", got)
	}
}

func TestLimiterPerUser(t *testing.T) {
	t.Parallel()
	clock, sleeps := newFakeClock(), &sleepLog{}
	l := NewLimiter(LimiterConfig{Now: clock.Now, Sleep: sleeps.Sleep})
	ctx := t.Context()
	if err := l.Admit(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(12 * time.Second)
	err := l.Admit(ctx, "ann")
	wantBusy(t, err, 18*time.Second, true, 18)
	if err.Error() != "safe mode, retry after 18 seconds" {
		t.Fatalf("Error() = %q", err)
	}
	if err := l.Admit(ctx, "bob"); err != nil {
		t.Fatalf("another user: %v", err)
	}
	clock.Advance(18*time.Second - time.Millisecond)
	wantBusy(t, l.Admit(ctx, "ann"), time.Millisecond, true, 1)
	clock.Advance(time.Millisecond)
	if err := l.Admit(ctx, "ann"); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	wantBusy(t, l.Admit(ctx, "ann"), 30*time.Second, true, 30)
	wantBusy(t, l.Admit(ctx, "bob"), 12*time.Second, true, 12)
}

// A user refused by their own limit spends none of the global budget.
func TestLimiterPerUserRefusalSpendsNoBudget(t *testing.T) {
	t.Parallel()
	clock, sleeps := newFakeClock(), &sleepLog{}
	l := NewLimiter(LimiterConfig{PerMinute: 120, Now: clock.Now, Sleep: sleeps.Sleep}) // burst 2
	ctx := t.Context()
	if err := l.Admit(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		wantBusy(t, l.Admit(ctx, "ann"), 30*time.Second, true, 30)
	}
	if err := l.Admit(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := sleeps.Calls(); len(got) != 0 {
		t.Fatalf("the second token of the burst was not free: slept %v", got)
	}
	if err := l.Admit(ctx, "cid"); err != nil {
		t.Fatal(err)
	}
	if got, want := sleeps.Calls(), []time.Duration{500 * time.Millisecond}; !slices.Equal(got, want) {
		t.Fatalf("slept %v, want %v", got, want)
	}
}

// A user's slot is taken when their token is due, so a request of a waiting
// user is refused with the time from the end of that wait.
func TestLimiterPerUserWhileWaiting(t *testing.T) {
	t.Parallel()
	clock, gate := newFakeClock(), newSleepGate()
	l := NewLimiter(LimiterConfig{PerMinute: 60, Now: clock.Now, Sleep: gate.Sleep})
	ctx := t.Context()
	if err := l.Admit(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	bob := admitAsync(ctx, l, "bob")
	call := gate.next(t)
	if call.d != time.Second {
		t.Fatalf("bob waits %v, want 1s", call.d)
	}
	wantBusy(t, l.Admit(ctx, "bob"), 31*time.Second, true, 31)
	close(call.release)
	if err := result(t, bob); err != nil {
		t.Fatal(err)
	}
}

func TestLimiterMaxQueue(t *testing.T) {
	t.Parallel()
	clock, gate := newFakeClock(), newSleepGate()
	l := NewLimiter(LimiterConfig{PerMinute: 60, MaxWait: time.Minute, MaxQueue: 2, Now: clock.Now, Sleep: gate.Sleep})
	ctx := t.Context()
	if err := l.Admit(ctx, "u0"); err != nil {
		t.Fatal(err)
	}
	w1 := admitAsync(ctx, l, "u1")
	c1 := gate.next(t)
	w2 := admitAsync(ctx, l, "u2")
	c2 := gate.next(t)
	if c1.d != time.Second || c2.d != 2*time.Second {
		t.Fatalf("waits %v, %v; want 1s, 2s", c1.d, c2.d)
	}
	if n := l.Waiting(); n != 2 {
		t.Fatalf("Waiting = %d, want 2", n)
	}
	wantBusy(t, l.Admit(ctx, "u3"), 3*time.Second, false, 3)
	wantBusy(t, l.Admit(ctx, "u3"), 3*time.Second, false, 3)
	close(c1.release)
	if err := result(t, w1); err != nil {
		t.Fatal(err)
	}
	// A place is free again, and the refusals above spent no token.
	w3 := admitAsync(ctx, l, "u3")
	c3 := gate.next(t)
	if c3.d != 3*time.Second {
		t.Fatalf("u3 waits %v, want 3s", c3.d)
	}
	close(c2.release)
	close(c3.release)
	for _, ch := range []<-chan error{w2, w3} {
		if err := result(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Waiting(); n != 0 {
		t.Fatalf("Waiting = %d, want 0", n)
	}
}

func TestLimiterCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	clock, gate := newFakeClock(), newSleepGate()
	l := NewLimiter(LimiterConfig{PerMinute: 60, Now: clock.Now, Sleep: gate.Sleep})
	if err := l.Admit(t.Context(), "u0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ann := admitAsync(ctx, l, "ann")
	if c := gate.next(t); c.d != time.Second {
		t.Fatalf("ann waits %v, want 1s", c.d)
	}
	cancel()
	if err := result(t, ann); !errors.Is(err, context.Canceled) {
		t.Fatalf("Admit = %v, want context.Canceled", err)
	}
	if n := l.Waiting(); n != 0 {
		t.Fatalf("Waiting = %d, want 0", n)
	}
	// The token came back (bob waits 1s, not 2s), and so did ann's slot.
	bob := admitAsync(t.Context(), l, "bob")
	cb := gate.next(t)
	if cb.d != time.Second {
		t.Fatalf("bob waits %v, want 1s: the cancelled token was not given back", cb.d)
	}
	ann = admitAsync(t.Context(), l, "ann")
	ca := gate.next(t)
	if ca.d != 2*time.Second {
		t.Fatalf("ann waits %v, want 2s", ca.d)
	}
	close(cb.release)
	close(ca.release)
	for _, ch := range []<-chan error{bob, ann} {
		if err := result(t, ch); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLimiterCancelledContext(t *testing.T) {
	t.Parallel()
	clock, sleeps := newFakeClock(), &sleepLog{}
	l := NewLimiter(LimiterConfig{PerMinute: 60, Now: clock.Now, Sleep: sleeps.Sleep})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Admit(ctx, "ann"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Admit = %v, want context.Canceled", err)
	}
	if err := l.Admit(t.Context(), "ann"); err != nil {
		t.Fatalf("the cancelled call spent the token or the slot: %v", err)
	}
}

func TestLimiterReset(t *testing.T) {
	t.Parallel()
	clock, sleeps := newFakeClock(), &sleepLog{}
	l := NewLimiter(LimiterConfig{PerMinute: 60, MaxWait: time.Millisecond, Now: clock.Now, Sleep: sleeps.Sleep})
	ctx := t.Context()
	if err := l.Admit(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	wantBusy(t, l.Admit(ctx, "bob"), time.Second, false, 1)
	l.Reset()
	if err := l.Admit(ctx, "ann"); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	wantBusy(t, l.Admit(ctx, "ann"), 30*time.Second, true, 30)
}

// A wait cancelled after Reset gives nothing back: the bucket is already full.
func TestLimiterCancelAfterReset(t *testing.T) {
	t.Parallel()
	clock, gate := newFakeClock(), newSleepGate()
	l := NewLimiter(LimiterConfig{PerMinute: 60, Now: clock.Now, Sleep: gate.Sleep})
	if err := l.Admit(t.Context(), "u0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ann := admitAsync(ctx, l, "ann")
	gate.next(t)
	l.Reset()
	if err := l.Admit(t.Context(), "ann"); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	cancel()
	if err := result(t, ann); !errors.Is(err, context.Canceled) {
		t.Fatalf("Admit = %v, want context.Canceled", err)
	}
	wantBusy(t, l.Admit(t.Context(), "ann"), 30*time.Second, true, 30)
	bob := admitAsync(t.Context(), l, "bob")
	if c := gate.next(t); c.d != time.Second {
		t.Fatalf("bob waits %v, want 1s", c.d)
	} else {
		close(c.release)
	}
	if err := result(t, bob); err != nil {
		t.Fatal(err)
	}
}

// The per-user map holds about the users of one interval, not every user ever seen.
func TestLimiterSweepBoundsUsers(t *testing.T) {
	t.Parallel()
	const perRound = 3000
	clock, sleeps := newFakeClock(), &sleepLog{}
	l := NewLimiter(LimiterConfig{PerMinute: 60 * 1_000_000, Now: clock.Now, Sleep: sleeps.Sleep})
	ctx := t.Context()
	largest := 0
	for round := range 20 {
		for i := range perRound {
			if err := l.Admit(ctx, fmt.Sprintf("r%d-u%d", round, i)); err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			largest = max(largest, len(l.users))
			l.mu.Unlock()
		}
		clock.Advance(DefaultUserInterval)
	}
	if bound := 2*perRound + minSweep; largest > bound {
		t.Fatalf("the user map grew to %d entries, want at most %d", largest, bound)
	}
	if len(sleeps.Calls()) != 0 {
		t.Fatal("slept with a huge budget")
	}
}

// Under contention the counts stay exact: with a frozen clock and waits that
// return at once, the burst plus MaxWait's worth of tokens are admitted, each
// wait a distinct multiple of the token interval.
func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	clock, sleeps := newFakeClock(), &sleepLog{}
	l := NewLimiter(LimiterConfig{PerMinute: 600, Now: clock.Now, Sleep: sleeps.Sleep}) // burst 10, a token per 100ms
	ctx := t.Context()
	var (
		wg                     sync.WaitGroup
		mu                     sync.Mutex
		admitted, busy, others int
	)
	for g := range 50 {
		wg.Go(func() {
			for i := range 40 {
				err := l.Admit(ctx, fmt.Sprintf("g%d-%d", g, i))
				var b *BusyError
				mu.Lock()
				switch {
				case err == nil:
					admitted++
				case errors.As(err, &b) && !b.PerUser:
					busy++
				default:
					others++
				}
				mu.Unlock()
			}
		})
	}
	// One user from many goroutines at once: exactly one gets through.
	var sameUser sync.Map
	for g := range 20 {
		wg.Go(func() { sameUser.Store(g, l.Admit(ctx, "same")) })
	}
	wg.Wait()
	oneUser := 0
	sameUser.Range(func(_, v any) bool {
		var b *BusyError
		switch err, _ := v.(error); {
		case err == nil:
			oneUser++
		case errors.As(err, &b):
		default:
			t.Errorf("same user: %v", err)
		}
		return true
	})
	total := admitted + oneUser
	if want := 10 + 20; total != want || others != 0 {
		t.Fatalf("admitted %d (+%d of the shared user), refused %d, other errors %d; want %d admitted in all",
			admitted, oneUser, busy, others, want)
	}
	if oneUser > 1 {
		t.Fatalf("the shared user was admitted %d times", oneUser)
	}
	got := sleeps.Calls()
	slices.Sort(got)
	var want []time.Duration
	for k := 1; k <= 20; k++ {
		want = append(want, time.Duration(k)*100*time.Millisecond)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
}

func TestBusyError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retryAfter time.Duration
		seconds    int
	}{
		{18 * time.Second, 18},
		{0, 1},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{2040 * time.Millisecond, 3},
		{17*time.Second + 1, 18},
	} {
		e := &BusyError{RetryAfter: tc.retryAfter}
		if e.Seconds() != tc.seconds {
			t.Errorf("Seconds(%v) = %d, want %d", tc.retryAfter, e.Seconds(), tc.seconds)
		}
		if want := fmt.Sprintf("safe mode, retry after %d seconds", tc.seconds); e.Error() != want {
			t.Errorf("Error(%v) = %q, want %q", tc.retryAfter, e.Error(), want)
		}
	}
	err := fmt.Errorf("srs.due: %w", &BusyError{RetryAfter: 18 * time.Second, PerUser: true})
	wantBusy(t, err, 18*time.Second, true, 18)
	if got := (&BusyError{RetryAfter: 18 * time.Second}).Error(); got != "safe mode, retry after 18 seconds" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestLimiterConfigValidate(t *testing.T) {
	t.Parallel()
	if err := (LimiterConfig{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for _, tc := range []struct {
		cfg   LimiterConfig
		field string
	}{
		{LimiterConfig{PerMinute: -1}, "PerMinute"},
		{LimiterConfig{PerMinute: int(time.Minute) + 1}, "PerMinute"},
		{LimiterConfig{UserInterval: -time.Second}, "UserInterval"},
		{LimiterConfig{MaxQueue: -1}, "MaxQueue"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "LimiterConfig."+tc.field) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
}

// A negative MaxWait means no waiting: over budget is refused at once with
// the real time to the next token.
func TestLimiterNoWait(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(LimiterConfig{PerMinute: 60, MaxWait: -1, Now: func() time.Time { return now },
		Sleep: func(context.Context, time.Duration) error { t.Fatal("slept with MaxWait < 0"); return nil }})
	if err := l.Admit(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	var busy *BusyError
	if err := l.Admit(context.Background(), "b"); !errors.As(err, &busy) || busy.RetryAfter != time.Second || busy.PerUser {
		t.Fatalf("second user: %v, want BUSY after 1s", err)
	}
}

// The default Sleep ends with the context.
func TestDefaultSleep(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep = %v, want context.Canceled", err)
	}
	if err := sleep(t.Context(), 0); err != nil {
		t.Fatalf("sleep(0) = %v", err)
	}
}
