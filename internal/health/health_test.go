package health

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

// A probe goes down on a failed ping, says so once, comes back on a good
// one, and signals Back.
func TestProbeTransitions(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	var mu sync.Mutex
	var changes []bool
	p := NewProbe(ProbeConfig{Name: "db", Logger: quiet,
		Ping: func(context.Context) error {
			if fail.Load() {
				return errors.New("refused")
			}
			return nil
		},
		OnChange: func(up bool, _ error) { mu.Lock(); changes = append(changes, up); mu.Unlock() },
	})
	ctx := context.Background()
	if !p.Up() {
		t.Fatal("a probe starts up")
	}
	fail.Store(true)
	if err := p.Check(ctx); err == nil || p.Up() {
		t.Fatalf("after a failed ping: err %v, up %v", err, p.Up())
	}
	p.Check(ctx)
	if up, _, err := p.State(); up || err == nil {
		t.Fatalf("State = %v, %v", up, err)
	}
	select {
	case <-p.Back():
		t.Fatal("Back signalled while down")
	default:
	}
	fail.Store(false)
	p.Check(ctx)
	if !p.Up() {
		t.Fatal("not up after a good ping")
	}
	select {
	case <-p.Back():
	default:
		t.Fatal("Back not signalled on recovery")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("OnChange calls %v, want [false true]", changes)
	}
}

// A hung dependency is down after the ping's deadline, and the probe keeps
// pinging in the background until Stop.
func TestProbeHang(t *testing.T) {
	t.Parallel()
	var hang atomic.Bool
	hang.Store(true)
	p := NewProbe(ProbeConfig{Logger: quiet, Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Ping: func(ctx context.Context) error {
			if hang.Load() {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}})
	checked := p.Checked()
	start := time.Now()
	p.Start(context.Background())
	defer p.Stop()
	<-checked
	if took := time.Since(start); p.Up() || took > time.Second {
		t.Fatalf("after a hung ping (%s): up %v", took, p.Up())
	}
	hang.Store(false)
	select {
	case <-p.Back():
	case <-time.After(5 * time.Second):
		t.Fatal("the probe did not see the dependency come back")
	}
	p.Stop()
	p.Stop()
}

// A panicking ping is recovered and the probe goes on.
func TestProbePanic(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	p := NewProbe(ProbeConfig{Logger: quiet, Interval: time.Millisecond, Ping: func(context.Context) error {
		if n.Add(1) == 1 {
			panic("driver bug")
		}
		return errors.New("down")
	}})
	p.Start(context.Background())
	defer p.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for p.Up() {
		if time.Now().After(deadline) {
			t.Fatal("the probe died with its first ping's panic")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDrainWatch(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	var w DrainWatch
	steps := []struct {
		at      time.Duration
		drained uint64
		waiting int
		oldest  time.Duration
		stuck   time.Duration
		stalled bool
	}{
		{0, 0, 0, 0, 0, false},
		{time.Second, 0, 5, time.Second, 0, false},                          // entries start waiting
		{20 * time.Second, 0, 5, 20 * time.Second, 19 * time.Second, false}, // no progress yet
		{32 * time.Second, 0, 5, 32 * time.Second, 31 * time.Second, true},  // stalled
		{33 * time.Second, 3, 2, 33 * time.Second, 0, false},                // progress: the clock restarts
		{40 * time.Second, 3, 2, 5 * time.Second, 5 * time.Second, false},   // bounded by the oldest entry's age
		{80 * time.Second, 3, 0, 0, 0, false},                               // nothing waits
		{81 * time.Second, 3, 1, time.Second, 0, false},
		{200 * time.Second, 9, 4, 100 * time.Second, 0, false}, // moved since: behind, not stalled
	}
	for i, s := range steps {
		stuck, stalled := w.Observe(t0.Add(s.at), s.drained, s.waiting, s.oldest)
		if stuck != s.stuck || stalled != s.stalled {
			t.Errorf("step %d: Observe = %s, %v; want %s, %v", i, stuck, stalled, s.stuck, s.stalled)
		}
	}
}
