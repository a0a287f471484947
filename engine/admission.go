package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Defaults of AdmissionConfig.
const (
	DefaultMaxInFlight = 256 // backend/redis's default pool size
	DefaultAdmitWait   = 100 * time.Millisecond
	DefaultRetryAfter  = 10 * time.Millisecond
)

// AdmissionConfig bounds this sidecar's concurrent calls to the upstream
// Redis. Overload is not an outage: past the bound a call is refused with a
// retryable *OverloadError before anything is sent, instead of queueing in
// the connection pool until its waits look like a dead Redis. The zero value
// of each field means its default.
type AdmissionConfig struct {
	// MaxInFlight is how many cache calls may run at once, default
	// DefaultMaxInFlight. Size it to the Redis connection pool (one call
	// holds one connection): with more, calls wait in the pool instead.
	MaxInFlight int
	// MaxWait is how long a call may wait for a free slot before it is
	// refused, default DefaultAdmitWait; negative: no waiting.
	MaxWait time.Duration
	// MaxQueue is how many calls may wait at once; further ones are refused
	// at once. Default 64 × MaxInFlight, below what the slots serve within
	// the default MaxWait (about 400 calls a slot at a quarter of a
	// millisecond a call): a waiter far beyond it would time out anyway.
	MaxQueue int
	// RetryAfter is the retry hint a refusal carries, default DefaultRetryAfter.
	RetryAfter time.Duration
	// Overloaded reports cache errors that are this sidecar's own overload
	// rather than an answer of the cache: backend/redis.IsOverloaded (a wait
	// for a pooled connection timed out). Such a failure is answered as a
	// refusal and the breaker counts it neither way. nil: none.
	Overloaded func(error) bool
}

// ErrOverloaded is matched (errors.Is) by every *OverloadError.
var ErrOverloaded = errors.New("sidecar overloaded")

// OverloadError is a cache call the sidecar refused because it already had
// as many upstream calls in flight as it allows and no slot freed within the
// bounded wait (or the connection pool had none). Nothing was sent to Redis
// and the circuit breaker does not count it: the client should retry after
// RetryAfter. It matches ErrOverloaded and ErrContention, so the RESP layer
// answers it with ErrContention's TRYAGAIN prefix: "TRYAGAIN sidecar
// overloaded; retry in 10ms".
type OverloadError struct {
	RetryAfter time.Duration
	msg        string // Error's text, made once by NewAdmission
}

// Error returns "sidecar overloaded; retry in <RetryAfter>".
func (e *OverloadError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return "sidecar overloaded; retry in " + e.RetryAfter.String()
}

// Is matches ErrOverloaded and ErrContention (retry shortly, nothing done).
func (e *OverloadError) Is(target error) bool {
	return target == ErrOverloaded || target == ErrContention
}

// Why a call was refused; the attribute "reason" of srsproxy_shed_total.
const (
	shedQueueFull = iota // MaxQueue calls were waiting already
	shedWaited           // no slot freed within MaxWait
	shedPool             // the cache's own pool had no connection (AdmissionConfig.Overloaded)
	shedSlow             // timed out while other calls were answered (SafeModeConfig.Timeout)
	shedReasons
)

var shedReasonNames = [shedReasons]string{"queue_full", "wait", "pool", "slow"}

// Admission is the bound on concurrent upstream calls (AdmissionConfig). It
// is safe for concurrent use. Waiting calls get a free slot in arrival order.
type Admission struct {
	slots      chan struct{} // one element per call in flight
	waiting    atomic.Int64
	maxQueue   int64
	maxWait    time.Duration
	overloaded func(error) bool
	refusal    *OverloadError // immutable, shared: refusing allocates nothing
	shed       [shedReasons]atomic.Int64
}

// NewAdmission builds an Admission, filling defaults.
func NewAdmission(cfg AdmissionConfig) *Admission {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultAdmitWait
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 64 * cfg.MaxInFlight
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	return &Admission{
		slots: make(chan struct{}, cfg.MaxInFlight), maxQueue: int64(cfg.MaxQueue), maxWait: cfg.MaxWait,
		overloaded: cfg.Overloaded,
		refusal:    &OverloadError{RetryAfter: cfg.RetryAfter, msg: (&OverloadError{RetryAfter: cfg.RetryAfter}).Error()},
	}
}

// acquire takes a slot, waiting at most MaxWait. It returns the shared
// *OverloadError when refused, or ctx's error when ctx ends first; release
// must follow a nil return.
func (a *Admission) acquire(ctx context.Context) error {
	select {
	case a.slots <- struct{}{}:
		return nil
	default:
	}
	if a.maxWait < 0 {
		return a.refuse(shedWaited)
	}
	if a.waiting.Add(1) > a.maxQueue {
		a.waiting.Add(-1)
		return a.refuse(shedQueueFull)
	}
	defer a.waiting.Add(-1)
	t := time.NewTimer(a.maxWait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return a.refuse(shedWaited)
	}
}

func (a *Admission) release() { <-a.slots }

func (a *Admission) refuse(reason int) error {
	a.shed[reason].Add(1)
	return a.refusal
}

// own turns a cache error that is the sidecar's own overload (the cache's
// pool had no connection) into the refusal; other errors pass unchanged.
func (a *Admission) own(err error) error {
	if err != nil && a.overloaded != nil && a.overloaded(err) {
		return a.refuse(shedPool)
	}
	return err
}

// AdmissionStats is a snapshot of the admission control of upstream calls.
type AdmissionStats struct {
	Limit    int // MaxInFlight
	InFlight int // calls holding a slot now
	Waiting  int // calls waiting for one now
	// Shed counts refusals since start by reason: "queue_full", "wait", "pool", "slow".
	Shed map[string]int64
}

// ShedTotal is the sum of Shed.
func (s AdmissionStats) ShedTotal() int64 {
	var n int64
	for _, v := range s.Shed {
		n += v
	}
	return n
}

// Stats returns a snapshot of the counters.
func (a *Admission) Stats() AdmissionStats {
	st := AdmissionStats{Limit: cap(a.slots), InFlight: len(a.slots), Waiting: int(min(a.waiting.Load(), a.maxQueue)), Shed: make(map[string]int64, shedReasons)}
	for i := range a.shed {
		st.Shed[shedReasonNames[i]] = a.shed[i].Load()
	}
	return st
}

// Admission reports the bound on this sidecar's concurrent upstream calls:
// how many run and wait now, and how many were refused (SRS.STATUS, metrics).
func (e *Engine) Admission() AdmissionStats { return e.safe.cfg.Admission.Stats() }
