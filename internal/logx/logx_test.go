package logx

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAllow(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	l := New(time.Second, c.now)
	steps := []struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed int
	}{
		{0, "a", true, 0},  // first of its kind
		{0, "a", false, 0}, // same instant
		{500 * time.Millisecond, "a", false, 0},
		{0, "b", true, 0},                      // another kind is independent
		{500 * time.Millisecond, "a", true, 2}, // an interval after the last one let through
		{999 * time.Millisecond, "a", false, 0},
		{time.Hour, "a", true, 1},
		{time.Hour, "a", true, 0},
	}
	for i, s := range steps {
		c.add(s.advance)
		ok, n := l.Allow(s.key)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d (%s): Allow = %v, %d; want %v, %d", i, s.key, ok, n, s.ok, s.suppressed)
		}
	}
}

// A burst of a thousand identical lines writes one, and the next one an
// interval later reports the rest.
func TestLoggerBurst(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	var buf bytes.Buffer
	log := New(10*time.Second, c.now).Logger(slog.New(slog.NewTextHandler(&buf, nil)).With("component", "test"))
	for i := range 1000 {
		log.Warn("store down", "i", i)
	}
	log.Info("store down") // another level is another kind
	c.add(10 * time.Second)
	log.Warn("store down", "i", 1000)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], SuppressedKey) || !strings.Contains(lines[0], "i=0") || !strings.Contains(lines[0], "component=test") {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(lines[2], "suppressed=999") || !strings.Contains(lines[2], "i=1000") {
		t.Errorf("line after the interval %q, want suppressed=999", lines[2])
	}
}

func TestLogSkipsDisabledLevels(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := Every(time.Hour)
	l.Info(log, "chatty")
	l.Warn(log, "warned", "n", 1)
	l.Warn(log, "warned", "n", 2)
	l.Error(log, "failed")
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Fatalf("%d lines, want 2:\n%s", got, buf.String())
	}
	if _, ok := l.keys["INFO chatty"]; ok {
		t.Error("a disabled line was counted")
	}
}

// Keys are bounded: idle kinds are forgotten; when every kind is busy new
// ones get through untracked.
func TestKeysBounded(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	l := New(time.Second, c.now)
	for i := range maxKeys {
		l.Allow(fmt.Sprint(i))
	}
	if ok, _ := l.Allow("new"); !ok || len(l.keys) != maxKeys {
		t.Fatalf("full limiter: Allow(new) = %v, %d keys", ok, len(l.keys))
	}
	c.add(time.Second)
	if ok, _ := l.Allow("newer"); !ok || len(l.keys) != 1 {
		t.Fatalf("after the idle kinds' interval: Allow = %v, %d keys, want 1", ok, len(l.keys))
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	l := Every(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if ok, _ := l.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d allowed, want 1", allowed)
	}
}
