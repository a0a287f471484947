// Package startstop is the one lifecycle of the sidecar's background loops
// (as river's startstop): Start runs a loop once on its own goroutine, Stop
// cancels it and waits, both idempotent; a loop that panics is logged and
// run again after a pause instead of taking the process down or dying
// silently.
package startstop

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// RestartDelay is how long a loop that panicked waits before it runs again.
const RestartDelay = time.Second

// Service runs one background loop. The zero value is ready; a Service is
// started at most once.
type Service struct {
	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// Start runs loop(ctx) on a new goroutine until it returns or Stop is
// called (ctx is cancelled then). A panic in loop is logged with its stack
// at ERROR and loop runs again RestartDelay later. Start reports false and
// does nothing if the Service was started before.
func (s *Service) Start(ctx context.Context, name string, log *slog.Logger, loop func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return false
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		for {
			if !Safely(name, log, func() { loop(ctx) }) {
				return // returned normally
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(RestartDelay):
			}
		}
	}()
	return true
}

// Stop cancels the loop and waits for it to return. It is idempotent and
// safe to call on a Service never started.
func (s *Service) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Safely runs fn and reports whether it panicked; a panic is logged at
// ERROR with name and its stack, never re-raised. Use it around every
// callback a background goroutine runs.
func Safely(name string, log *slog.Logger, fn func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			if log == nil {
				log = slog.Default()
			}
			log.Error("background task panicked; recovered", "task", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	fn()
	return false
}
