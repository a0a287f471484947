// Package logx keeps logs from scaling with request rate: a Limiter lets the
// first line of each kind through, then at most one per interval, and the
// line that gets through says how many were suppressed since the last one.
//
// A line's kind is its key: by default its level and message, so messages
// must be constant strings with the variable parts in attributes (as slog
// wants anyway). Use it on any path a request can reach:
//
//	lim := logx.Every(10 * time.Second)
//	rlog := lim.Logger(log)        // a *slog.Logger whose every line is limited
//	rlog.Warn("season refresh failed", "season", name, "err", err)
//
// or, for a decision without a logger, lim.Allow(key).
package logx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// SuppressedKey is the attribute that carries how many lines of the same kind
// were dropped since the previous one that got through.
const SuppressedKey = "suppressed"

// maxKeys bounds the limiter's memory; past it, kinds idle for an interval
// are forgotten, and if every kind is busy new kinds are let through
// untracked (keys are meant to be a small, fixed set of messages).
const maxKeys = 4096

// Limiter decides which lines get through. The zero value is not usable;
// build one with Every or New. It is safe for concurrent use.
type Limiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*kind
}

type kind struct {
	last       time.Time // when a line of this kind last got through
	suppressed int       // dropped since then
}

// Every returns a Limiter that lets one line of each kind through per d.
func Every(d time.Duration) *Limiter { return New(d, nil) }

// New returns a Limiter that lets one line of each kind through per every,
// reading time from now (nil: time.Now), so tests can drive it.
func New(every time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{every: every, now: now, keys: map[string]*kind{}}
}

// Allow reports whether a line of this kind may be written now: the first
// one is, then one per interval. When it is, suppressed is how many lines of
// the kind were refused since the previous one allowed.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys[key]
	if k == nil {
		if len(l.keys) >= maxKeys {
			l.sweep(now)
			if len(l.keys) >= maxKeys {
				return true, 0
			}
		}
		l.keys[key] = &kind{last: now}
		return true, 0
	}
	if now.Sub(k.last) < l.every {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// sweep forgets the kinds with nothing suppressed that were last let through
// an interval ago or more: their next line gets through anyway.
func (l *Limiter) sweep(now time.Time) {
	for key, k := range l.keys {
		if k.suppressed == 0 && now.Sub(k.last) >= l.every {
			delete(l.keys, key)
		}
	}
}

// Log writes one line at level through log if its kind (level and message)
// is allowed now, with the suppressed count attached when there was any.
func (l *Limiter) Log(ctx context.Context, log *slog.Logger, level slog.Level, msg string, args ...any) {
	if !log.Enabled(ctx, level) {
		return
	}
	ok, n := l.Allow(level.String() + " " + msg)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, SuppressedKey, n)
	}
	log.Log(ctx, level, msg, args...)
}

// Info is Log at INFO without a context.
func (l *Limiter) Info(log *slog.Logger, msg string, args ...any) {
	l.Log(context.Background(), log, slog.LevelInfo, msg, args...)
}

// Warn is Log at WARN without a context.
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) {
	l.Log(context.Background(), log, slog.LevelWarn, msg, args...)
}

// Error is Log at ERROR without a context.
func (l *Limiter) Error(log *slog.Logger, msg string, args ...any) {
	l.Log(context.Background(), log, slog.LevelError, msg, args...)
}

// Logger returns a logger that writes through log's handler, every line of
// it limited by l (keyed by level and message; attributes added with With
// do not make a new kind).
func (l *Limiter) Logger(log *slog.Logger) *slog.Logger {
	return slog.New(NewHandler(log.Handler(), l))
}

// Handler is a slog.Handler that drops the lines its Limiter refuses.
type Handler struct {
	next slog.Handler
	lim  *Limiter
}

// NewHandler wraps next so that only the lines lim allows are written.
func NewHandler(next slog.Handler, lim *Limiter) *Handler { return &Handler{next: next, lim: lim} }

// Enabled reports whether the wrapped handler writes lines of this level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle writes the record if its kind is allowed now, with the suppressed
// count attached when lines were dropped; it returns the wrapped handler's
// error.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	ok, n := h.lim.Allow(r.Level.String() + " " + r.Message)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int(SuppressedKey, n))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a handler with the attributes added, sharing the limiter.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), lim: h.lim}
}

// WithGroup returns a handler with the group opened, sharing the limiter.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), lim: h.lim}
}
