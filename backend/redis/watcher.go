package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Watcher learns from Redis's own client tracking when a user-season's
// version key changes, whichever sidecar changed it, so that this sidecar
// can invalidate the replies its tracking clients cached
// (docs/TRACKING.md). It holds two connections: a subscriber to
// __redis__:invalidate and a reader whose tracking redirects there. A
// version key read on the reader (Watch) is reported once when it next
// changes.
type Watcher struct {
	opts     Options
	onChange func(players []string)
	onLost   func()
	log      *slog.Logger

	sub   *goredis.Client // the subscriber's client; its OnConnect records subID
	subID atomic.Int64

	mu     sync.Mutex
	ps     *goredis.PubSub // the current subscription; Close closes it to end a blocked read
	reader *goredis.Client // nil while no subscription is confirmed
	gen    uint64          // bumped whenever the marks are forgotten
	marks  map[string]bool // version key → watched (true) or being watched (false)

	cancel context.CancelFunc
	done   chan struct{}
}

// Errors of Watch.
var (
	// ErrWatchUnsupported: Redis Cluster (tracking redirects only within one
	// node, and keys move between nodes).
	ErrWatchUnsupported = errors.New("redis watcher: client tracking is not supported on Redis Cluster")
	errWatcherDown      = errors.New("redis watcher: not subscribed to invalidations")
)

// invalidationChannel is where Redis sends redirected invalidations.
const invalidationChannel = "__redis__:invalidate"

// maxMarks bounds the version keys remembered as watched; past it Watch
// still reads each key (so Redis tracks it) but does not remember it.
const maxMarks = 1_000_000

// pingEvery is how long the subscriber may stay silent before it is pinged;
// a ping unanswered for as long again counts as a lost connection.
const pingEvery = 15 * time.Second

// NewWatcher starts watching the Redis of opts (the cache's options).
// onChange receives the players whose user-seasons changed; onLost is
// called when invalidations may have been lost (every cached reply must
// go). Both are called from the watcher's goroutine, which Close stops.
func NewWatcher(opts Options, onChange func(players []string), onLost func(), log *slog.Logger) *Watcher {
	opts.fill()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{opts: opts, onChange: onChange, onLost: onLost, log: log,
		marks: make(map[string]bool), cancel: cancel, done: make(chan struct{})}
	if opts.Cluster || len(opts.Addrs) != 1 {
		close(w.done)
		return w
	}
	w.sub = goredis.NewClient(w.clientOptions(func(ctx context.Context, cn *goredis.Conn) error {
		id, err := cn.ClientID(ctx).Result()
		w.subID.Store(id)
		return err
	}))
	go w.run(ctx)
	return w
}

// clientOptions are a one-connection client of the cache's server.
func (w *Watcher) clientOptions(onConnect func(context.Context, *goredis.Conn) error) *goredis.Options {
	o := w.opts
	return &goredis.Options{
		Addr: o.Addrs[0], Username: o.Username, Password: o.Password, TLSConfig: o.TLS,
		PoolSize: 1, ConnMaxIdleTime: -1, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
		WriteTimeout: o.WriteTimeout, ContextTimeoutEnabled: true, DialerRetries: 1,
		Protocol: 2, DisableIdentity: true, OnConnect: onConnect,
	}
}

// Close stops the watcher and closes its connections.
func (w *Watcher) Close() error {
	w.cancel()
	w.mu.Lock()
	if w.ps != nil {
		w.ps.Close()
	}
	w.mu.Unlock()
	<-w.done
	w.setReader(nil)
	if w.sub != nil {
		return w.sub.Close()
	}
	return nil
}

// Watch makes sure a change of the user-season is reported from now on. A
// read that follows it and validates against Redis's version sees every
// change made before, and every later one is reported. It fails when the
// watcher cannot promise that (not subscribed, Redis Cluster, Redis down).
func (w *Watcher) Watch(ctx context.Context, season, player string) error {
	if w.sub == nil {
		return ErrWatchUnsupported
	}
	key := UserKeys(w.opts.Prefix, season, player)[1]
	w.mu.Lock()
	rd, gen := w.reader, w.gen
	watched, marked := w.marks[key]
	if rd != nil && !marked && len(w.marks) < maxMarks {
		w.marks[key] = false
	}
	w.mu.Unlock()
	switch {
	case rd == nil:
		return errWatcherDown
	case watched:
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.ReadTimeout)
	defer cancel()
	err := rd.Get(ctx, key).Err()
	if errors.Is(err, goredis.Nil) {
		err = nil // a key not there yet is tracked all the same
	}
	w.mu.Lock()
	if pending, ok := w.marks[key]; w.gen == gen && ok && !pending {
		if err == nil {
			w.marks[key] = true
		} else {
			delete(w.marks, key)
		}
	}
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("redis watcher: %w", err)
	}
	return nil
}

// Up reports whether the watcher is subscribed and has a reader: whether
// Watch can succeed.
func (w *Watcher) Up() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reader != nil
}

// run subscribes, listens until the subscription fails, and starts again,
// until Close.
func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		ps := w.sub.Subscribe(ctx, invalidationChannel)
		w.mu.Lock()
		w.ps = ps
		w.mu.Unlock()
		if ctx.Err() != nil { // Close ran while subscribing
			ps.Close()
			return
		}
		err := w.listen(ctx, ps)
		ps.Close()
		w.lose()
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("redis watcher: invalidations lost; tracking clients flushed, retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// listen handles the subscriber's messages until an error.
func (w *Watcher) listen(ctx context.Context, ps *goredis.PubSub) error {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		var nerr interface{ Timeout() bool }
		if errors.As(err, &nerr) && nerr.Timeout() && !pinged && ctx.Err() == nil {
			pinged = true
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err // including a null payload: Redis flushed its database
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				if err := w.attach(ctx); err != nil {
					return err
				}
			}
		case *goredis.Message:
			keys := m.PayloadSlice
			if keys == nil {
				keys = []string{m.Payload}
			}
			w.changed(keys)
		}
	}
}

// attach opens a reader that redirects its tracking to the subscriber,
// replacing any earlier one.
func (w *Watcher) attach(ctx context.Context) error {
	id := w.subID.Load()
	var connects atomic.Int64
	rd := goredis.NewClient(w.clientOptions(func(ctx context.Context, cn *goredis.Conn) error {
		if err := cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", id).Err(); err != nil {
			return err
		}
		if connects.Add(1) > 1 {
			// Redis forgot what the old connection read: so must we.
			w.forget()
			w.onLost()
		}
		return nil
	}))
	pctx, cancel := context.WithTimeout(ctx, w.opts.ReadTimeout+w.opts.DialTimeout)
	defer cancel()
	if err := rd.Ping(pctx).Err(); err != nil {
		rd.Close()
		return fmt.Errorf("tracking reader: %w", err)
	}
	w.setReader(rd)
	return nil
}

// setReader replaces the reader (nil: none) and forgets every mark, which
// were the old reader's; the old reader is closed.
func (w *Watcher) setReader(rd *goredis.Client) {
	w.mu.Lock()
	old := w.reader
	w.reader = rd
	w.gen++
	clear(w.marks)
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// changed handles an invalidation: the version keys it names are no longer
// watched (Redis tracks a key once), and their players are passed on.
func (w *Watcher) changed(keys []string) {
	var players []string
	w.mu.Lock()
	for _, k := range keys {
		if player, ok := playerOfVersionKey(w.opts.Prefix, k); ok {
			delete(w.marks, k)
			players = append(players, player)
		}
	}
	w.mu.Unlock()
	if len(players) > 0 {
		w.onChange(players)
	}
}

// forget drops every mark: Redis may no longer track the keys.
func (w *Watcher) forget() {
	w.mu.Lock()
	w.gen++
	clear(w.marks)
	w.mu.Unlock()
}

// lose closes the reader and forgets the marks after the subscriber
// failed, and tells the owner that invalidations may have been lost.
func (w *Watcher) lose() {
	w.setReader(nil)
	w.onLost()
}

// playerOfVersionKey returns the player of a generation-3 version key
// (UserKeys) under prefix; season names hold no '|'.
func playerOfVersionKey(prefix, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix+":{")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, "}:v3")
	if !ok {
		return "", false
	}
	_, player, ok := strings.Cut(rest, "|")
	return player, ok
}
