package startstop

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestStartStop(t *testing.T) {
	t.Parallel()
	var s Service
	s.Stop() // never started: no-op
	running := make(chan struct{})
	ended := make(chan struct{})
	if !s.Start(context.Background(), "loop", nil, func(ctx context.Context) {
		close(running)
		<-ctx.Done()
		close(ended)
	}) {
		t.Fatal("first Start refused")
	}
	if s.Start(context.Background(), "loop", nil, func(context.Context) { t.Error("second loop ran") }) {
		t.Fatal("second Start accepted")
	}
	<-running
	s.Stop()
	select {
	case <-ended:
	default:
		t.Fatal("Stop returned before the loop ended")
	}
	s.Stop() // idempotent
}

// A loop that panics is logged and runs again; Stop still ends it.
func TestPanicRestarts(t *testing.T) {
	t.Parallel()
	var buf syncBuf
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var runs atomic.Int32
	second := make(chan struct{})
	var s Service
	s.Start(context.Background(), "flaky", log, func(ctx context.Context) {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		close(second)
		<-ctx.Done()
	})
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not run again after its panic")
	}
	s.Stop()
	if out := buf.String(); !strings.Contains(out, "task=flaky") || !strings.Contains(out, "panic=boom") {
		t.Fatalf("log %q, want the panic", out)
	}
}

func TestSafely(t *testing.T) {
	t.Parallel()
	var buf syncBuf
	if Safely("ok", slog.New(slog.NewTextHandler(&buf, nil)), func() {}) {
		t.Fatal("no panic reported as one")
	}
	if !Safely("bad", slog.New(slog.NewTextHandler(&buf, nil)), func() { panic("x") }) {
		t.Fatal("panic not reported")
	}
}
