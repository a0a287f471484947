package proxy

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// trackingCommands are a cacheable read, a write and a volatile read, keyed
// by their first argument, for the tracking tests.
func trackingCommands(m *Mux) {
	m.Handle(Command{Name: "TRK.GET", Arity: -2, CacheKey: 1, Summary: "A cacheable read; optional expiry in ms.",
		Handler: func(_ context.Context, w *Reply, args [][]byte) {
			if len(args) == 3 {
				ms, _ := strconv.Atoi(string(args[2]))
				w.ExpiresAt(time.Now().Add(time.Duration(ms) * time.Millisecond))
			}
			w.String(string(args[1]) + " tracked=" + strconv.FormatBool(w.Tracked()))
		}})
	m.Handle(Command{Name: "TRK.SET", Arity: 2, Summary: "Changes a key.",
		Handler: func(_ context.Context, w *Reply, args [][]byte) {
			w.Changed(string(args[1]))
			w.Simple("OK")
		}})
	m.Handle(Command{Name: "TRK.VOLATILE", Arity: 2, CacheKey: 1, Summary: "A read nothing will report changes of.",
		Handler: func(_ context.Context, w *Reply, args [][]byte) {
			w.Volatile()
			w.String(string(args[1]))
		}})
	m.Handle(Command{Name: "TRK.RACE", Arity: 2, CacheKey: 1, Summary: "A read during which another goroutine invalidates its key.",
		Handler: func(_ context.Context, w *Reply, args [][]byte) {
			done := make(chan struct{})
			go func() {
				w.c.s.Invalidate([]string{string(args[1])})
				close(done)
			}()
			<-done
			w.String("stale " + string(args[1]))
		}})
}

func startTracking(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServer(t, cfg, trackingCommands)
}

// push3 is the RESP3 invalidate push of keys.
func push3(keys ...string) string {
	s := ">2\r\n$10\r\ninvalidate\r\n*" + strconv.Itoa(len(keys)) + "\r\n"
	for _, k := range keys {
		s += "$" + strconv.Itoa(len(k)) + "\r\n" + k + "\r\n"
	}
	return s
}

// expectQuiet checks that nothing is waiting before the reply to a PING.
func expectQuiet(t *testing.T, c *rawConn) {
	t.Helper()
	if got := c.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("expected no push, got %q", got)
	}
}

func tracked3(t *testing.T, s *testServer, opts ...string) *rawConn {
	t.Helper()
	c := s.dial(t)
	c.do("HELLO", "3")
	if got := c.do(append([]string{"CLIENT", "TRACKING", "ON"}, opts...)...); got != "+OK\r\n" {
		t.Fatalf("CLIENT TRACKING ON %v = %q", opts, got)
	}
	return c
}

func TestTrackingInvalidatesReaders(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{})
	reader := tracked3(t, s)
	writer := s.dial(t)

	if got := reader.do("TRK.GET", "alice"); got != bulk("alice tracked=true") {
		t.Fatalf("TRK.GET = %q", got)
	}
	if got := writer.do("TRK.SET", "bob"); got != "+OK\r\n" {
		t.Fatalf("TRK.SET = %q", got)
	}
	expectQuiet(t, reader) // bob was never read
	writer.do("TRK.SET", "alice")
	if got := reader.read(); got != push3("alice") { // written to the idle connection at once
		t.Fatalf("push = %q, want %q", got, push3("alice"))
	}
	writer.do("TRK.SET", "alice")
	expectQuiet(t, reader) // one shot: alice was not read again

	// Tracking off: no more invalidations.
	reader.do("TRK.GET", "alice")
	reader.do("CLIENT", "TRACKING", "OFF")
	writer.do("TRK.SET", "alice")
	expectQuiet(t, reader)
	if got := writer.do("INFO", "stats"); !strings.Contains(got, "tracking_invalidations_sent:1\r\n") {
		t.Errorf("INFO stats: %q", got)
	}
}

// TestTrackingOrder: an invalidation the connection's own command causes
// comes before its reply; one from elsewhere while a reply is being built
// comes after it; none goes inside EXEC's array.
func TestTrackingOrder(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{})
	c := tracked3(t, s)

	c.do("TRK.GET", "k")
	c.send(resp("TRK.SET", "k"))
	if got := c.read(); got != push3("k") {
		t.Fatalf("first after own TRK.SET = %q, want the push", got)
	}
	if got := c.read(); got != "+OK\r\n" {
		t.Fatalf("then = %q, want +OK", got)
	}

	if got, want := c.do("TRK.RACE", "r"), bulk("stale r"); got != want {
		t.Fatalf("TRK.RACE = %q, want the reply before the push", got)
	}
	if got := c.read(); got != push3("r") {
		t.Fatalf("after TRK.RACE = %q, want the push", got)
	}

	c.do("TRK.GET", "m")
	c.do("MULTI")
	c.do("TRK.SET", "m")
	c.send(resp("EXEC"))
	if got := c.read(); got != push3("m") {
		t.Fatalf("EXEC: first %q, want the push before the array", got)
	}
	if got := c.read(); got != "*1\r\n+OK\r\n" {
		t.Fatalf("EXEC = %q", got)
	}

	if got := c.do("TRK.VOLATILE", "v"); got != bulk("v") {
		t.Fatalf("TRK.VOLATILE = %q", got)
	}
	if got := c.read(); got != push3("v") {
		t.Fatalf("after a volatile read = %q, want its invalidation", got)
	}
	expectQuiet(t, c)
}

func TestTrackingNoLoop(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{})
	c := tracked3(t, s, "NOLOOP")
	other := tracked3(t, s)
	c.do("TRK.GET", "k")
	other.do("TRK.GET", "k")
	if got := c.do("TRK.SET", "k"); got != "+OK\r\n" {
		t.Fatalf("own change with NOLOOP: %q", got)
	}
	if got := other.read(); got != push3("k") {
		t.Fatalf("the other reader got %q", got)
	}
	expectQuiet(t, c)
}

// TestTrackingOptInOptOut follows rueidis's DoCache: CLIENT CACHING YES,
// MULTI, PTTL, the read, EXEC — the read inside EXEC is tracked, the next
// command is not.
func TestTrackingOptInOptOut(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{})
	in := tracked3(t, s, "OPTIN")
	if got := in.do("TRK.GET", "a"); got != bulk("a tracked=false") {
		t.Fatalf("OPTIN read without CACHING YES: %q", got)
	}
	in.do("CLIENT", "CACHING", "YES")
	in.do("MULTI")
	in.do("PTTL", "b")
	in.do("TRK.GET", "b")
	if got, want := in.do("EXEC"), "*2\r\n:-1\r\n"+bulk("b tracked=true"); got != want {
		t.Fatalf("EXEC = %q, want %q", got, want)
	}
	if got := in.do("TRK.GET", "c"); got != bulk("c tracked=false") {
		t.Fatalf("the command after EXEC: %q", got)
	}
	in.do("CLIENT", "CACHING", "YES")
	in.do("TRK.GET", "d", "60000")
	if got, _ := strconv.Atoi(strings.Trim(in.do("PTTL", "d"), ":\r\n")); got <= 0 || got > 60000 {
		t.Errorf("PTTL d = %d, want in (0, 60000]", got)
	}

	out := tracked3(t, s, "OPTOUT")
	out.do("CLIENT", "CACHING", "NO")
	if got := out.do("TRK.GET", "a"); got != bulk("a tracked=false") {
		t.Fatalf("OPTOUT after CACHING NO: %q", got)
	}
	if got := out.do("TRK.GET", "a"); got != bulk("a tracked=true") {
		t.Fatalf("OPTOUT: %q", got)
	}
}

// TestTrackingRedirect: RESP2 invalidations go to a subscribed connection
// as messages on __redis__:invalidate; a RESP3 connection whose target
// closed is told so.
func TestTrackingRedirect(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{})
	sub := s.dial(t)
	id := strings.Trim(sub.do("CLIENT", "ID"), ":\r\n")
	if got := sub.do("SUBSCRIBE", "news"); !strings.HasPrefix(got, "-ERR srsproxy has no pub/sub") {
		t.Fatalf("SUBSCRIBE news = %q", got)
	}
	if got, want := sub.do("SUBSCRIBE", invalidateChannel), "*3\r\n$9\r\nsubscribe\r\n"+bulk(invalidateChannel)+":1\r\n"; got != want {
		t.Fatalf("SUBSCRIBE = %q", got)
	}
	if got := sub.do("TRK.GET", "x"); !strings.HasPrefix(got, "-ERR Can't execute 'trk.get'") {
		t.Fatalf("a read while subscribed (RESP2) = %q", got)
	}
	if got := sub.do("PING"); got != "*2\r\n$4\r\npong\r\n$0\r\n\r\n" {
		t.Fatalf("PING while subscribed = %q", got)
	}

	c := s.dial(t)
	if got := c.do("CLIENT", "TRACKING", "ON", "REDIRECT", id); got != "+OK\r\n" {
		t.Fatalf("TRACKING ON REDIRECT = %q", got)
	}
	c.do("TRK.GET", "alice")
	s.Invalidate([]string{"alice"})
	want := "*3\r\n$7\r\nmessage\r\n" + bulk(invalidateChannel) + "*1\r\n" + bulk("alice")
	if got := sub.read(); got != want {
		t.Fatalf("redirected invalidation = %q, want %q", got, want)
	}
	c.do("TRK.GET", "alice")
	s.InvalidateAll()
	if got, want := sub.read(), "*3\r\n$7\r\nmessage\r\n"+bulk(invalidateChannel)+"*-1\r\n"; got != want {
		t.Fatalf("redirected flush = %q, want %q", got, want)
	}

	// A RESP3 connection redirecting to a connection that went away.
	gone := s.dial(t)
	goneID := strings.Trim(gone.do("CLIENT", "ID"), ":\r\n")
	r3 := tracked3(t, s, "REDIRECT", goneID)
	r3.do("TRK.GET", "bob")
	gone.nc.Close()
	waitFor(t, func() bool { return s.connByID(mustAtoi(t, goneID)) == nil })
	s.Invalidate([]string{"bob"})
	if got, want := r3.read(), ">2\r\n$21\r\ntracking-redir-broken\r\n:"+goneID+"\r\n"; got != want {
		t.Fatalf("redirect broken = %q, want %q", got, want)
	}
}

func TestTrackingExpiryAndEviction(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{TrackingMaxKeys: 2})
	c := tracked3(t, s)
	start := time.Now()
	c.do("TRK.GET", "soon", "150")
	if got := c.read(); got != push3("soon") {
		t.Fatalf("expiry push = %q", got)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("expired after %v, before its 150ms", waited)
	}
	c.do("TRK.GET", "a", "50000")
	c.do("TRK.GET", "b", "60000")
	if got := c.do("TRK.GET", "c"); got != bulk("c tracked=true") {
		t.Fatalf("TRK.GET c = %q", got)
	}
	if got := c.read(); got != push3("a") { // the one expiring soonest makes room
		t.Fatalf("eviction push = %q", got)
	}
	s.InvalidateAll()
	if got := c.read(); got != ">2\r\n$10\r\ninvalidate\r\n_\r\n" {
		t.Fatalf("flush = %q", got)
	}
	if got := c.do("INFO", "clients"); !strings.Contains(got, "tracking_clients:1\r\n") {
		t.Errorf("INFO clients: %q", got)
	}
}

func TestTrackingBroadcast(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{})
	c := tracked3(t, s, "BCAST", "PREFIX", "user:")
	other := s.dial(t)
	other.do("TRK.SET", "team:1")
	expectQuiet(t, c)
	other.do("TRK.SET", "user:7") // never read by c: BCAST hears of it anyway
	if got := c.read(); got != push3("user:7") {
		t.Fatalf("BCAST push = %q", got)
	}
	s.Invalidate([]string{"user:8", "team:2"})
	if got := c.read(); got != push3("user:8") {
		t.Fatalf("BCAST push of a watcher change = %q", got)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTrackingSlowReader: a tracking client that stops reading its socket
// holds up only its own connection. The writer's changes complete, and
// once the client reads again it finds every invalidation, in order.
func TestTrackingSlowReader(t *testing.T) {
	t.Parallel()
	s := startTracking(t, Config{})
	slow := tracked3(t, s)
	const n = 200
	key := func(i int) string { return strings.Repeat("k", 64<<10) + strconv.Itoa(i) } // 64 KiB: n of them overflow the socket buffers
	for i := range n {
		slow.do("TRK.GET", key(i))
	}
	writer := s.dial(t)
	for i := range n { // slow reads nothing meanwhile
		if got := writer.do("TRK.SET", key(i)); got != "+OK\r\n" {
			t.Fatalf("TRK.SET %d = %q", i, got)
		}
	}
	for i := range n {
		if got := slow.read(); got != push3(key(i)) {
			t.Fatalf("push %d: got %d bytes, want the invalidation of key %d", i, len(got), i)
		}
	}
	expectQuiet(t, slow)
}
