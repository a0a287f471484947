// Package health knows whether the sidecar's dependencies answer: a Probe
// pings one on an interval with a deadline and tells when it goes down and
// comes back, and DrainWatch tells a drain that has stopped making progress.
package health

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/srsproxy/srsproxy/internal/startstop"
)

// ProbeConfig configures a Probe. The zero value of each field means its default.
type ProbeConfig struct {
	Name string                          // the dependency, for logs ("mariadb")
	Ping func(ctx context.Context) error // required; must honour ctx's deadline
	// Interval is the pause between the end of one ping and the start of
	// the next, default 500ms; with Timeout a hung dependency is seen as down
	// within Timeout×Failures + Interval.
	Interval time.Duration
	Timeout  time.Duration // deadline of one ping, default 1s
	Failures int           // consecutive failed pings before it is down, default 1
	// OnChange is told each transition, on the probe's goroutine (never
	// under a lock): up is the new state, err the failure that took it down.
	// It must not block for long.
	OnChange func(up bool, err error)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Probe pings a dependency in the background and remembers whether it is
// up. It starts up (optimistic: the sidecar serves until a ping fails).
// Its methods are safe for concurrent use.
type Probe struct {
	cfg  ProbeConfig
	svc  startstop.Service
	back chan struct{}
	kick chan struct{}

	mu       sync.Mutex
	up       bool
	since    time.Time // when the current state began
	lastErr  error
	failures int
	checked  time.Time // when the last ping ended
	waiters  []chan struct{}
}

// NewProbe returns a stopped Probe; Start runs it.
func NewProbe(cfg ProbeConfig) *Probe {
	cfg.Interval = cmp.Or(cfg.Interval, 500*time.Millisecond)
	cfg.Timeout = cmp.Or(cfg.Timeout, time.Second)
	cfg.Failures = cmp.Or(cfg.Failures, 1)
	cfg.Name = cmp.Or(cfg.Name, "dependency")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Probe{cfg: cfg, back: make(chan struct{}, 1), kick: make(chan struct{}, 1), up: true, since: cfg.Now()}
}

// Start pings at once and then every Interval until Stop or ctx ends. A
// second Start does nothing.
func (p *Probe) Start(ctx context.Context) {
	p.svc.Start(ctx, p.cfg.Name+" probe", p.cfg.Logger, p.loop)
}

// Stop ends the pings and waits for the one in flight. It is idempotent.
func (p *Probe) Stop() { p.svc.Stop() }

func (p *Probe) loop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.kick:
		}
		p.Check(ctx)
		t.Reset(p.cfg.Interval)
	}
}

// Kick asks for a ping now instead of at the next interval, e.g. after a
// caller saw the dependency fail; kicks while one is pending are merged.
func (p *Probe) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Check pings once with the probe's deadline and records the result; it
// returns the ping's error. The loop calls it; tests may call it directly.
func (p *Probe) Check(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	err := p.cfg.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return err // stopping: not the dependency's fault
	}
	p.record(err)
	return err
}

func (p *Probe) record(err error) {
	now := p.cfg.Now()
	p.mu.Lock()
	p.checked = now
	wasUp := p.up
	if err == nil {
		p.failures, p.lastErr = 0, nil
		p.up = true
	} else {
		p.failures++
		p.lastErr = err
		if p.failures >= p.cfg.Failures {
			p.up = false
		}
	}
	changed := wasUp != p.up
	var since time.Time
	if changed {
		since, p.since = p.since, now
	}
	waiters := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, w := range waiters {
		close(w)
	}
	if !changed {
		return
	}
	if p.up {
		p.cfg.Logger.Warn("dependency is back", "dependency", p.cfg.Name, "down_for", now.Sub(since).Round(time.Millisecond))
		select {
		case p.back <- struct{}{}:
		default:
		}
	} else {
		p.cfg.Logger.Error("dependency is down", "dependency", p.cfg.Name, "err", err)
	}
	if p.cfg.OnChange != nil {
		startstop.Safely(p.cfg.Name+" probe OnChange", p.cfg.Logger, func() { p.cfg.OnChange(p.up, err) })
	}
}

// Up reports whether the last pings succeeded (true before the first one).
func (p *Probe) Up() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// State returns whether it is up, since when, and the last ping's error
// (nil when it succeeded).
func (p *Probe) State() (up bool, since time.Time, lastErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up, p.since, p.lastErr
}

// Back receives a value each time the dependency comes back up (values are
// merged while nobody reads): a drainer selects on it to retry at once.
// There is one channel per Probe; give it to one reader, or use OnChange.
func (p *Probe) Back() <-chan struct{} { return p.back }

// Checked returns a channel closed when the next ping ends: tests wait on
// it instead of sleeping.
func (p *Probe) Checked() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := make(chan struct{})
	p.waiters = append(p.waiters, c)
	return c
}
