package proxy

import (
	"container/heap"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

// Server-assisted client-side caching (docs/TRACKING.md): a tracking
// connection's cacheable reads (Command.CacheKey) are remembered by key in
// the server's trackTable; when a key changes (Reply.Changed, or
// Server.Invalidate from the Redis watcher) or its replies expire, every
// connection that read it since is sent an invalidation.

// invalidateChannel is the pub/sub channel RESP2 connections subscribe to
// for invalidations redirected to them.
const invalidateChannel = "__redis__:invalidate"

// Defaults of the tracking limits.
const (
	DefaultTrackingMaxKeys = 100_000
	DefaultTrackingMaxAge  = time.Minute
)

// tracking is a connection's CLIENT TRACKING mode. A session is immutable:
// changing the mode stores a new one, so the table can tell a registration
// of an earlier session (or of a closed connection) by its pointer.
type tracking struct {
	on, bcast, optin, optout, noloop bool
	redirect                         int64
	prefixes                         []string
}

// redirection is CLIENT GETREDIR: -1 when tracking is off, else the client
// invalidations go to, 0 for none.
func (t *tracking) redirection() int64 {
	if t == nil || !t.on {
		return -1
	}
	return t.redirect
}

// pushMsg is an invalidation on its way to a connection: keys nil is a
// flush of everything; redirBroken names a vanished redirect target instead.
type pushMsg struct {
	keys        []string
	redirBroken int64
}

// appendPush encodes m for a connection speaking proto, subscribed or not
// to the invalidation channel, by Redis's rules: RESP3 gets an invalidate
// push, RESP2 a pub/sub message if it subscribed, else nothing.
func appendPush(b []byte, proto int, subscribed bool, m pushMsg) []byte {
	if m.redirBroken != 0 {
		if proto != 3 {
			return b
		}
		b = append(b, ">2\r\n$21\r\ntracking-redir-broken\r\n"...)
		return redcon.AppendInt(b, m.redirBroken)
	}
	switch {
	case proto == 3:
		b = append(b, ">2\r\n$10\r\ninvalidate\r\n"...)
	case subscribed:
		b = append(b, "*3\r\n$7\r\nmessage\r\n$20\r\n"+invalidateChannel+"\r\n"...)
	default:
		return b
	}
	if m.keys == nil {
		if proto == 3 {
			return append(b, "_\r\n"...)
		}
		return append(b, "*-1\r\n"...)
	}
	b = redcon.AppendArray(b, len(m.keys))
	for _, k := range m.keys {
		b = redcon.AppendBulkString(b, k)
	}
	return b
}

// session is one tracking registration: a connection and the session it read under.
type session struct {
	c *conn
	t *tracking
}

// trackedKey is a key read by tracking connections since its last
// invalidation, and when its replies expire.
type trackedKey struct {
	key     string
	readers map[*conn]*tracking
	expires time.Time
	index   int // in the expiry heap
}

// trackTable is the server's tracking state. Its own lock guards it; pushes
// are delivered outside the lock.
type trackTable struct {
	mu      sync.Mutex
	keys    map[string]*trackedKey
	byTime  expiryHeap
	bcast   map[*conn]*tracking // BCAST sessions by connection
	clients atomic.Int64        // connections with tracking on
	wake    chan struct{}       // the expiry loop's next deadline moved earlier
	sent    atomic.Int64        // invalidation messages delivered
}

func newTrackTable() *trackTable {
	return &trackTable{keys: make(map[string]*trackedKey), bcast: make(map[*conn]*tracking), wake: make(chan struct{}, 1)}
}

type expiryHeap []*trackedKey

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	k := x.(*trackedKey)
	k.index = len(*h)
	*h = append(*h, k)
}
func (h *expiryHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}

// add registers a read of key by c under session t, expiring at expires at
// the latest. Past maxKeys the key expiring soonest is evicted: it is
// returned with its readers, to be invalidated.
func (tt *trackTable) add(key string, c *conn, t *tracking, expires time.Time, maxKeys int) (evicted *trackedKey) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	k := tt.keys[key]
	if k == nil {
		if len(tt.keys) >= maxKeys && len(tt.byTime) > 0 {
			evicted = heap.Pop(&tt.byTime).(*trackedKey)
			delete(tt.keys, evicted.key)
		}
		k = &trackedKey{key: key, readers: make(map[*conn]*tracking, 1), expires: expires}
		tt.keys[key] = k
		heap.Push(&tt.byTime, k)
		if k.index == 0 {
			tt.poke()
		}
	}
	k.readers[c] = t
	return evicted
}

// expireAt moves a key's expiry earlier (never later: an earlier reply may
// change sooner).
func (tt *trackTable) expireAt(key string, at time.Time) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	k := tt.keys[key]
	if k == nil || !at.Before(k.expires) {
		return
	}
	k.expires = at
	heap.Fix(&tt.byTime, k.index)
	if k.index == 0 {
		tt.poke()
	}
}

func (tt *trackTable) poke() {
	select {
	case tt.wake <- struct{}{}:
	default:
	}
}

// take removes keys from the table and returns who read them, plus every
// BCAST session whose prefixes match one.
func (tt *trackTable) take(keys []string) (taken []*trackedKey, bcast []session) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for _, key := range keys {
		if k := tt.keys[key]; k != nil {
			heap.Remove(&tt.byTime, k.index)
			delete(tt.keys, key)
			taken = append(taken, k)
		}
	}
	for c, t := range tt.bcast {
		if slices.ContainsFunc(keys, t.matches) {
			bcast = append(bcast, session{c, t})
		}
	}
	return taken, bcast
}

// clearAll empties the table (a flush).
func (tt *trackTable) clearAll() {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	clear(tt.keys)
	tt.byTime = tt.byTime[:0]
}

// matches reports whether a BCAST session wants key.
func (t *tracking) matches(key string) bool {
	if len(t.prefixes) == 0 {
		return true
	}
	return slices.ContainsFunc(t.prefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}

// due removes and returns the keys whose expiry has passed.
func (tt *trackTable) due(now time.Time) (keys []*trackedKey, next time.Time) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for len(tt.byTime) > 0 && !tt.byTime[0].expires.After(now) {
		k := heap.Pop(&tt.byTime).(*trackedKey)
		delete(tt.keys, k.key)
		keys = append(keys, k)
	}
	if len(tt.byTime) > 0 {
		next = tt.byTime[0].expires
	}
	return keys, next
}

// pttl is the milliseconds until key's replies expire, -1 if it is not tracked.
func (tt *trackTable) pttl(key string, now time.Time) int64 {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if k := tt.keys[key]; k != nil {
		return max(0, k.expires.Sub(now).Milliseconds())
	}
	return -1
}

func (tt *trackTable) size() int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.keys)
}

// TrackingStats are the figures of client-side caching, for metrics.
type TrackingStats struct {
	Clients       int64 // connections with tracking on
	Keys          int64 // keys in the tracking table
	Invalidations int64 // invalidation messages sent since the start
}

// Tracking returns the current TrackingStats.
func (s *Server) Tracking() TrackingStats {
	return TrackingStats{Clients: s.track.clients.Load(), Keys: int64(s.track.size()), Invalidations: s.track.sent.Load()}
}

// Invalidate tells every tracking connection that read one of keys, and
// every BCAST connection whose prefixes match one, that the keys changed.
// The Redis watcher calls it for changes made through any sidecar.
func (s *Server) Invalidate(keys []string) {
	if len(keys) > 0 {
		s.invalidate(keys, nil)
	}
}

// InvalidateAll tells every tracking connection to drop everything it
// cached: invalidations may have been lost (the watcher lost Redis).
func (s *Server) InvalidateAll() { s.invalidate(nil, nil) }

// invalidate delivers invalidations of keys to their readers; keys nil
// flushes every tracking connection, as Redis does on FLUSHALL. writer is
// the connection whose own command changed them, or nil.
func (s *Server) invalidate(keys []string, writer *conn) {
	if s.track.clients.Load() == 0 {
		return // nobody tracks: what the table holds is of sessions that ended
	}
	if keys == nil {
		s.track.clearAll()
		for _, c := range s.clients() {
			if t := c.track.Load(); t != nil {
				s.deliver(c, t, pushMsg{}, writer)
			}
		}
		return
	}
	taken, bcast := s.track.take(keys)
	s.deliverTaken(taken, writer)
	for _, r := range bcast {
		if r.c == writer && r.t.noloop {
			continue
		}
		var mine []string
		for _, key := range keys {
			if r.t.matches(key) {
				mine = append(mine, key)
			}
		}
		s.deliver(r.c, r.t, pushMsg{keys: mine}, writer)
	}
}

// deliverTaken invalidates keys taken from the table for their readers.
func (s *Server) deliverTaken(taken []*trackedKey, writer *conn) {
	for _, k := range taken {
		for c, t := range k.readers {
			if c == writer && t.noloop {
				continue
			}
			s.deliver(c, t, pushMsg{keys: []string{k.key}}, writer)
		}
	}
}

// deliver sends m to the connection session t of c sends invalidations to:
// c itself or its REDIRECT target. A session that ended is skipped. When
// the target is the writer running its command, the push goes before that
// command's reply.
func (s *Server) deliver(c *conn, t *tracking, m pushMsg, writer *conn) {
	if c.track.Load() != t {
		return // tracking turned off or changed, or the connection closed
	}
	target, m := s.route(c, t, m)
	s.track.sent.Add(1)
	if target == writer {
		writer.ownPush = append(writer.ownPush, m)
		return
	}
	target.push(m)
}

// route returns where session t of c sends m: c itself or its REDIRECT
// target; when that target is gone, c gets tracking-redir-broken instead
// (RESP3 only, by appendPush).
func (s *Server) route(c *conn, t *tracking, m pushMsg) (*conn, pushMsg) {
	if t.redirect == 0 || t.redirect == c.id {
		return c, m
	}
	if target := s.connByID(t.redirect); target != nil {
		return target, m
	}
	return c, pushMsg{redirBroken: t.redirect}
}

// connByID returns the open connection with id, or nil.
func (s *Server) connByID(id int64) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// expireLoop invalidates keys whose replies expired. It runs from Serve
// until Shutdown.
func (s *Server) expireLoop(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		expired, next := s.track.due(s.now())
		s.deliverTaken(expired, nil)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(s.now()), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-stop:
			return
		case <-s.track.wake:
		case <-timer.C:
		}
	}
}

// push delivers m to c from another goroutine. Only c's goroutine writes
// to its socket: the push is queued, and a connection waiting for commands
// is woken (its read deadline set in the past) to write it. So a client that
// does not read its socket stalls nothing but its own connection.
func (c *conn) push(m pushMsg) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	c.pending = append(c.pending, m)
	if !c.busy {
		c.woken.Store(true)
		_ = c.nc.SetReadDeadline(wakeNow)
	}
}

// wakeNow is a read deadline in the past: it ends a blocked read at once.
var wakeNow = time.Unix(1, 0)

// wokenForPushes reports whether a failed read was push's wake-up (not a
// shutdown or a half-sent command's timeout), putting the read deadline back
// so that reading can go on.
func (c *conn) wokenForPushes() bool {
	if c.s.closing.Load() || !c.pushes.Load() {
		return false
	}
	// Under wmu, as push sets the flag and the deadline together.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.woken.Swap(false) {
		return false
	}
	_ = c.nc.SetReadDeadline(c.readDeadline)
	return true
}

// appendPushes writes queued pushes into the reply buffer.
func (c *conn) appendPushes(msgs []pushMsg) []pushMsg {
	for _, m := range msgs {
		c.reply.b = appendPush(c.reply.b, c.reply.proto, c.subscribed.Load(), m)
	}
	return msgs[:0]
}

// becomePushTarget makes c a connection other goroutines may push to. From
// here on its goroutine marks itself busy while it builds replies.
func (c *conn) becomePushTarget() {
	if c.pushes.Load() {
		return
	}
	c.wmu.Lock()
	c.busy = true
	c.pushes.Store(true)
	c.wmu.Unlock()
}

// afterCommand places the pushes a top-level command caused: those from its
// own changes before its reply (which starts at mark), those for its
// volatile reads after it.
func (c *conn) afterCommand(mark int) {
	if len(c.ownPush) > 0 {
		reply := slices.Clone(c.reply.b[mark:])
		c.reply.b = c.reply.b[:mark]
		c.ownPush = c.appendPushes(c.ownPush)
		c.reply.b = append(c.reply.b, reply...)
	}
	if len(c.afterPush) > 0 {
		c.afterPush = c.appendPushes(c.afterPush)
	}
	if c.caching.set {
		c.caching.set = false
	} else if c.tx == nil {
		c.caching.next = 0
	}
}

// cachingFlag is CLIENT CACHING YES|NO: it applies to the next command, or
// to the next MULTI … EXEC.
type cachingFlag struct {
	next int8 // +1 YES, -1 NO
	set  bool // set by the command running now
}

// tracksRead reports whether a cacheable read now is tracked for c.
func (c *conn) tracksRead(t *tracking) bool {
	switch {
	case t == nil || !t.on:
		return false
	case t.optin:
		return c.caching.next > 0
	case t.optout:
		return c.caching.next >= 0
	}
	return true
}

// trackedRead is the tracking of the cacheable read a handler is answering.
type trackedRead struct {
	key      string
	on       bool
	volatile bool
	expires  time.Time
}

// beginRead registers a cacheable read of args[e.CacheKey] before its
// handler runs, so that a change arriving while the reply is computed is
// delivered after it.
func (c *conn) beginRead(e *entry, args [][]byte) {
	if e.CacheKey >= len(args) {
		return
	}
	t := c.track.Load()
	if !c.tracksRead(t) {
		return
	}
	s := c.s
	key := string(args[e.CacheKey])
	c.reply.read = trackedRead{key: key, on: true}
	if ev := s.track.add(key, c, t, s.now().Add(s.cfg.TrackingMaxAge), s.cfg.TrackingMaxKeys); ev != nil {
		s.deliverTaken([]*trackedKey{ev}, nil)
	}
}

// endRead applies what the handler said about its reply: a volatile reply
// is invalidated right after it; one that changes at a known time expires then.
func (c *conn) endRead() {
	r := c.reply.read
	c.reply.read = trackedRead{}
	t := c.track.Load()
	if r.volatile {
		if t == nil {
			return
		}
		if target, m := c.s.route(c, t, pushMsg{keys: []string{r.key}}); target == c {
			c.afterPush = append(c.afterPush, m) // after this reply, not before it
		} else {
			target.push(m)
		}
		return
	}
	if !r.expires.IsZero() {
		c.s.track.expireAt(r.key, r.expires)
	}
}

// Tracked reports whether the reply being written will be cached by a
// tracking client: the handler must then make sure it hears of changes
// (or call Volatile).
func (w *Reply) Tracked() bool { return w.read.on }

// Volatile says the reply must not stay cached: nothing will report its
// changes (it came from MariaDB, or the watcher is down). The client is
// sent an invalidation right after it.
func (w *Reply) Volatile() { w.read.volatile = true }

// ExpiresAt says the reply changes at t without any write (a card becomes
// due); the client is sent an invalidation then.
func (w *Reply) ExpiresAt(t time.Time) {
	if w.read.expires.IsZero() || t.Before(w.read.expires) {
		w.read.expires = t
	}
}

// Changed says the command changed key: every connection tracking it is
// told, this one before the reply unless it asked for NOLOOP.
func (w *Reply) Changed(key string) { w.c.s.invalidate([]string{key}, w.c) }

// ChangedAll says the command may have changed every key (season
// administration): every tracking connection is told to drop everything.
func (w *Reply) ChangedAll() { w.c.s.invalidate(nil, w.c) }

// setTracking stores c's new tracking session and keeps the server's
// counts and BCAST set up to date.
func (c *conn) setTracking(t *tracking) {
	old := c.track.Swap(t)
	tt := c.s.track
	wasOn, isOn := old != nil && old.on, t != nil && t.on
	switch {
	case !wasOn && isOn:
		tt.clients.Add(1)
	case wasOn && !isOn:
		tt.clients.Add(-1)
	}
	tt.mu.Lock()
	delete(tt.bcast, c)
	if isOn && t.bcast {
		tt.bcast[c] = t
	}
	tt.mu.Unlock()
	if isOn {
		c.becomePushTarget()
	}
}

// clientTracking is CLIENT TRACKING ON|OFF [option ...], with Redis's checks
// and errors.
func clientTracking(w *Reply, args [][]byte) {
	c := w.c
	var t tracking
	switch strings.ToUpper(string(args[0])) {
	case "ON":
		t.on = true
	case "OFF":
	default:
		w.Error("ERR syntax error")
		return
	}
	for i := 1; i < len(args); i++ {
		more := len(args) - 1 - i
		switch opt := strings.ToUpper(string(args[i])); {
		case opt == "BCAST":
			t.bcast = true
		case opt == "OPTIN":
			t.optin = true
		case opt == "OPTOUT":
			t.optout = true
		case opt == "NOLOOP":
			t.noloop = true
		case opt == "REDIRECT" && more >= 1:
			id, err := strconv.ParseInt(string(args[i+1]), 10, 64)
			if err != nil {
				w.Error("ERR value is not an integer or out of range")
				return
			}
			if id != c.id && c.s.connByID(id) == nil {
				w.Error("ERR The client ID you want redirect to does not exist")
				return
			}
			t.redirect = id
			i++
		case opt == "PREFIX" && more >= 1:
			t.prefixes = append(t.prefixes, string(args[i+1]))
			i++
		default:
			w.Error("ERR syntax error")
			return
		}
	}
	if !t.on {
		c.setTracking(nil)
		w.Simple("OK")
		return
	}
	old := c.track.Load()
	if old == nil {
		old = &tracking{}
	}
	switch {
	case len(t.prefixes) > 0 && !t.bcast:
		w.Error("ERR PREFIX option requires BCAST mode to be enabled")
	case t.optin && t.optout:
		w.Error("ERR You can't use both OPTIN and OPTOUT")
	case t.bcast && (t.optin || t.optout):
		w.Error("ERR OPTIN and OPTOUT are not compatible with BCAST")
	case old.on && old.bcast != t.bcast:
		w.Error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.")
	case old.on && (old.optin != t.optin || old.optout != t.optout):
		w.Error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.")
	default:
		if old.on && t.bcast {
			t.prefixes = append(slices.Clone(old.prefixes), t.prefixes...)
		}
		c.setTracking(&t)
		w.Simple("OK")
	}
}

// clientCaching is CLIENT CACHING YES|NO, valid in OPTIN and OPTOUT mode:
// it decides whether the next command's reads are tracked.
func clientCaching(w *Reply, arg []byte) {
	c := w.c
	t := c.track.Load()
	switch strings.ToUpper(string(arg)) {
	case "YES":
		if t == nil || !t.optin {
			w.Error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
			return
		}
		c.caching = cachingFlag{next: 1, set: true}
	case "NO":
		if t == nil || !t.optout {
			w.Error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
			return
		}
		c.caching = cachingFlag{next: -1, set: true}
	default:
		w.Error("ERR syntax error")
		return
	}
	w.Simple("OK")
}

// clientTrackingInfo is CLIENT TRACKINGINFO: a map of flags, redirect and
// prefixes, as Redis 6.2 answers it.
func clientTrackingInfo(w *Reply) {
	t := w.c.track.Load()
	flags := []string{"off"}
	var prefixes []string
	if t != nil && t.on {
		flags = []string{"on"}
		for _, f := range []struct {
			set  bool
			name string
		}{{t.bcast, "bcast"}, {t.optin, "optin"}, {t.optout, "optout"}, {t.noloop, "noloop"}} {
			if f.set {
				flags = append(flags, f.name)
			}
		}
		prefixes = t.prefixes
	}
	w.Map(3)
	w.String("flags")
	w.Array(len(flags))
	for _, f := range flags {
		w.Simple(f)
	}
	w.String("redirect")
	w.Int(t.redirection())
	w.String("prefixes")
	w.Array(len(prefixes))
	for _, p := range prefixes {
		w.String(p)
	}
}

// subscribe is SUBSCRIBE channel: only the invalidation channel exists, for
// RESP2 connections that receive redirected invalidations.
func subscribe(_ context.Context, w *Reply, args [][]byte) {
	c := w.c
	if string(args[1]) != invalidateChannel {
		w.Error("ERR srsproxy has no pub/sub: only " + invalidateChannel + " (CLIENT TRACKING … REDIRECT) can be subscribed")
		return
	}
	c.becomePushTarget()
	c.subscribed.Store(true)
	w.subscription("subscribe", invalidateChannel, 1)
}

// unsubscribe is UNSUBSCRIBE [channel ...].
func unsubscribe(_ context.Context, w *Reply, args [][]byte) {
	c := w.c
	for _, ch := range args[1:] {
		if string(ch) != invalidateChannel {
			w.Error("ERR srsproxy has no pub/sub: only " + invalidateChannel + " can be unsubscribed")
			return
		}
	}
	was := c.subscribed.Swap(false)
	if !was && len(args) == 1 {
		w.subscription("unsubscribe", "", 0)
		return
	}
	w.subscription("unsubscribe", invalidateChannel, 0)
}

// subscription writes a (un)subscribe confirmation, a push in RESP3.
func (w *Reply) subscription(kind, channel string, count int64) {
	w.value(3)
	if w.proto == 3 {
		w.b = append(w.b, ">3\r\n"...)
	} else {
		w.b = append(w.b, "*3\r\n"...)
	}
	w.String(kind)
	if channel == "" {
		w.Null()
	} else {
		w.String(channel)
	}
	w.Int(count)
}

// pttl is PTTL key: the milliseconds until this sidecar sends tracking
// clients a time-based invalidation of key, -1 when none is scheduled.
// rueidis's DoCache reads it to bound how long it keeps a reply.
func pttl(_ context.Context, w *Reply, args [][]byte) {
	w.Int(w.c.s.track.pttl(string(args[1]), w.c.s.now()))
}

// allowedSubscribed is what a RESP2 connection may run once subscribed.
func allowedSubscribed(name string) bool {
	switch name {
	case "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE", "PING", "QUIT", "RESET":
		return true
	}
	return false
}
