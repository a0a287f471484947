// Package safemode holds the pure pieces of Safe Mode, the way the sidecar
// serves while its upstream Redis is down: a Limiter that keeps MariaDB from
// being stampeded (its state lives in this process, not in the failed Redis),
// and an Alerter that tells operators by webhook without ever blocking a
// request. The circuit breaker and the wiring live elsewhere.
package safemode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults of LimiterConfig.
const (
	DefaultPerMinute    = 500
	DefaultUserInterval = 30 * time.Second
	DefaultMaxWait      = 2 * time.Second
	DefaultMaxQueue     = 1000
)

// minSweep is the size of the per-user map below which it is never swept.
const minSweep = 1024

// LimiterConfig holds the limits of Safe Mode. The zero value of every field
// means its default.
type LimiterConfig struct {
	// PerMinute is this sidecar's share of the system-wide budget (the
	// budget divided by the number of sidecars), in requests per minute;
	// default 500. A token arrives every time.Minute/PerMinute; the bucket
	// holds at most one second's worth of tokens, burst =
	// ceil(PerMinute/60), at least 1, and starts full.
	PerMinute int
	// UserInterval is the least time between two admitted requests of one
	// user; default 30s.
	UserInterval time.Duration
	// MaxWait is how long a request over the global budget may wait for
	// its token; default 2s. A negative value means no waiting: over budget
	// is refused at once.
	MaxWait time.Duration
	// MaxQueue bounds the requests waiting at once; default 1000.
	MaxQueue int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, then returns ctx.Err(); default a
	// timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate reports every invalid field, each error naming it.
func (c LimiterConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"PerMinute", int64(c.PerMinute)},
		{"UserInterval", int64(c.UserInterval)},
		{"MaxQueue", int64(c.MaxQueue)},
	} {
		if f.value < 0 {
			errs = append(errs, fmt.Errorf("safemode: LimiterConfig.%s must not be negative", f.name))
		}
	}
	if c.PerMinute > int(time.Minute) {
		errs = append(errs, fmt.Errorf("safemode: LimiterConfig.PerMinute %d exceeds one per nanosecond", c.PerMinute))
	}
	return errors.Join(errs...)
}

// withDefaults fills in every zero (or invalid, negative) field.
func (c LimiterConfig) withDefaults() LimiterConfig {
	if c.PerMinute <= 0 || c.PerMinute > int(time.Minute) {
		c.PerMinute = DefaultPerMinute
	}
	if c.UserInterval <= 0 {
		c.UserInterval = DefaultUserInterval
	}
	switch {
	case c.MaxWait == 0:
		c.MaxWait = DefaultMaxWait
	case c.MaxWait < 0:
		c.MaxWait = 0
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	return c
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Limiter admits or refuses the requests of Safe Mode: per user one request
// per UserInterval, and overall a token bucket of PerMinute. It is safe for
// concurrent use.
//
// The bucket is kept as the instant at which it would be full again given
// every reservation made (the GCRA's theoretical arrival time): a request
// moves that instant one token interval later, and its wait is how far the
// instant then lies beyond one burst from now. Integer durations make the
// counts exact: with a frozen clock exactly burst requests pass at once and
// the k-th one after them waits k token intervals.
//
// The per-user map does not grow without bound: when it reaches twice its
// size after the last sweep (and at least 1024 entries), Admit drops the
// users whose interval has passed. Live entries are at most the requests
// admitted in one UserInterval, so the map stays within about twice that
// (or 1024), at an amortized O(1) cost per request.
type Limiter struct {
	cfg      LimiterConfig
	interval time.Duration // time per token
	window   time.Duration // burst * interval: how far ahead of now the bucket may be spent

	mu      sync.Mutex
	full    time.Time // when the bucket is full again; any time <= now means full
	waiting int
	users   map[string]time.Time // user → when their last request was admitted
	sweepAt int                  // len(users) at which the next sweep runs
	gen     uint64               // bumped by Reset, so waits from before it give nothing back
}

// NewLimiter returns a Limiter with a full bucket and no users. It does not
// validate cfg; fields that Validate would reject fall back to their defaults.
func NewLimiter(cfg LimiterConfig) *Limiter {
	cfg = cfg.withDefaults()
	interval := time.Minute / time.Duration(cfg.PerMinute)
	burst := max((cfg.PerMinute+59)/60, 1)
	return &Limiter{
		cfg:      cfg,
		interval: interval,
		window:   time.Duration(burst) * interval,
		users:    make(map[string]time.Time),
		sweepAt:  minSweep,
	}
}

// Burst is how many requests the full bucket admits at once:
// ceil(PerMinute/60), at least 1.
func (l *Limiter) Burst() int { return int(l.window / l.interval) }

// Waiting is how many admitted requests are waiting for their token now.
func (l *Limiter) Waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting
}

// Admit lets one request of user through or refuses it.
//
// The per-user limit is checked first, so a refused user spends no global
// budget: a user admitted less than UserInterval ago gets a *BusyError with
// PerUser set and RetryAfter the rest of their interval. Then the global
// budget: with a token free now Admit returns nil at once. Otherwise, if the
// wait until this request's token is at most MaxWait and fewer than MaxQueue
// requests are waiting, it sleeps that long and returns nil; else it gives
// the reservation back and returns a *BusyError whose RetryAfter is the time
// until a token would be free for it.
//
// A user is recorded as admitted at the moment their token is due (now, or
// the end of the wait). If ctx ends during the wait, Admit gives the token
// and the user's slot back and returns the error of Sleep (ctx.Err()); it
// returns ctx.Err() at once if ctx has already ended.
func (l *Limiter) Admit(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	now := l.cfg.Now()
	l.sweep(now)
	prev, seen := l.users[user]
	if seen {
		if next := prev.Add(l.cfg.UserInterval); now.Before(next) {
			l.mu.Unlock()
			return &BusyError{RetryAfter: next.Sub(now), PerUser: true}
		}
	}
	full := l.full
	if full.Before(now) {
		full = now
	}
	full = full.Add(l.interval)
	wait := max(full.Sub(now)-l.window, 0)
	if wait > 0 && (wait > l.cfg.MaxWait || l.waiting >= l.cfg.MaxQueue) {
		l.mu.Unlock()
		return &BusyError{RetryAfter: wait}
	}
	l.full = full
	admitted := now.Add(wait)
	l.users[user] = admitted
	if wait == 0 {
		l.mu.Unlock()
		return nil
	}
	l.waiting++
	gen := l.gen
	l.mu.Unlock()

	err := l.cfg.Sleep(ctx, wait)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting--
	if err != nil && gen == l.gen {
		l.full = l.full.Add(-l.interval)
		if cur, ok := l.users[user]; ok && cur.Equal(admitted) {
			if seen {
				l.users[user] = prev
			} else {
				delete(l.users, user)
			}
		}
	}
	return err
}

// sweep drops the users whose interval has passed, once the map has doubled
// since the last sweep. l.mu must be held.
func (l *Limiter) sweep(now time.Time) {
	if len(l.users) < l.sweepAt {
		return
	}
	for u, t := range l.users {
		if now.Sub(t) >= l.cfg.UserInterval {
			delete(l.users, u)
		}
	}
	l.sweepAt = max(2*len(l.users), minSweep)
}

// Reset forgets every user and refills the bucket; it is called when Safe
// Mode is entered. Requests already waiting keep their admission.
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.full = time.Time{}
	l.users = make(map[string]time.Time)
	l.sweepAt = minSweep
	l.gen++
}

// BusyError is Admit's refusal. The RESP layer sends it with the BUSY prefix.
type BusyError struct {
	RetryAfter time.Duration // until the request would be admitted
	PerUser    bool          // the user's own limit refused it, not the global budget
}

// Seconds is RetryAfter in whole seconds, rounded up, at least 1.
func (e *BusyError) Seconds() int {
	return max(int((e.RetryAfter+time.Second-1)/time.Second), 1)
}

// Error returns "safe mode, retry after N seconds" with N = Seconds().
func (e *BusyError) Error() string {
	return fmt.Sprintf("safe mode, retry after %d seconds", e.Seconds())
}
