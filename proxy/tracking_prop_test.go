package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// versions is the truth the property test's commands read and change.
type versions struct {
	mu sync.Mutex
	v  map[string]int
}

func (vs *versions) get(k string) int {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.v[k]
}

func (vs *versions) bump(k string) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.v[k]++
}

// TestTrackingNeverLeavesStale is the property client-side caching rests
// on: clients that cache every read reply and drop what invalidations
// name never keep a stale value. Concurrent clients read and change keys
// (through the server, and from outside it, as the Redis watcher reports
// other sidecars' writes); once everything is quiet, every value a client
// still holds is the current one. Seeded; thousands of operations.
func TestTrackingNeverLeavesStale(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			checkNoStale(t, seed)
		})
	}
}

func checkNoStale(t *testing.T, seed uint64) {
	truth := &versions{v: make(map[string]int)}
	var s *testServer
	s = startServer(t, Config{}, func(m *Mux) {
		m.Handle(Command{Name: "V.GET", Arity: 2, CacheKey: 1, Handler: func(_ context.Context, w *Reply, args [][]byte) {
			w.Int(int64(truth.get(string(args[1]))))
		}})
		m.Handle(Command{Name: "V.SET", Arity: 2, Handler: func(_ context.Context, w *Reply, args [][]byte) {
			truth.bump(string(args[1]))
			w.Changed(string(args[1]))
			w.Simple("OK")
		}})
	})
	const clients, ops, keys = 4, 300, 6
	key := func(r *rand.Rand) string { return "k" + strconv.Itoa(r.IntN(keys)) }
	var wg sync.WaitGroup
	caches := make([]*cachingClient, clients)
	for i := range caches {
		caches[i] = dialCaching(t, s.addr)
	}
	for i, cc := range caches {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			for range ops {
				k := key(r)
				switch n := r.IntN(10); {
				case n < 6:
					cc.get(t, k)
				case n < 9:
					cc.set(t, k)
				default:
					cc.flushPipeline(t, r, key)
				}
			}
		})
	}
	wg.Go(func() { // the watcher: changes made elsewhere
		r := rand.New(rand.NewPCG(seed, 99))
		for range ops / 2 {
			k := key(r)
			truth.bump(k)
			s.Invalidate([]string{k})
			time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
		}
	})
	wg.Wait()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	for i, cc := range caches {
		cc.quiesce(t)
		for k, v := range cc.cache {
			if now := truth.get(k); v != now {
				t.Errorf("client %d holds %s = %d, but it is %d: a stale value survived", i, k, v, now)
			}
		}
	}
}

// cachingClient is a RESP3 tracking client that caches every V.GET reply
// and drops what pushes invalidate, reading the stream in order as client
// libraries do.
type cachingClient struct {
	nc    net.Conn
	br    *bufio.Reader
	cache map[string]int
}

func dialCaching(t *testing.T, addr string) *cachingClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	cc := &cachingClient{nc: nc, br: bufio.NewReader(nc), cache: make(map[string]int)}
	cc.send(t, resp("HELLO", "3"))
	cc.reply(t)
	cc.send(t, resp("CLIENT", "TRACKING", "ON"))
	if got := cc.reply(t); got != "+OK\r\n" {
		t.Fatalf("CLIENT TRACKING ON: %q", got)
	}
	return cc
}

func (cc *cachingClient) send(t *testing.T, s string) {
	if _, err := cc.nc.Write([]byte(s)); err != nil {
		t.Error(err)
	}
}

// reply returns the next reply, applying every push before it.
func (cc *cachingClient) reply(t *testing.T) string {
	for {
		var b bytes.Buffer
		if err := readValue(cc.br, &b); err != nil {
			t.Fatalf("read: %v", err)
		}
		v := b.String()
		if !strings.HasPrefix(v, ">2\r\n$10\r\ninvalidate\r\n") {
			return v
		}
		body := strings.TrimPrefix(v, ">2\r\n$10\r\ninvalidate\r\n")
		if body == "_\r\n" {
			clear(cc.cache)
			continue
		}
		lines := strings.Split(body, "\r\n")
		for i := 2; i < len(lines); i += 2 { // *n, then $len and key pairs
			delete(cc.cache, lines[i])
		}
	}
}

func (cc *cachingClient) get(t *testing.T, k string) {
	cc.send(t, resp("V.GET", k))
	cc.store(t, k, cc.reply(t))
}

func (cc *cachingClient) store(t *testing.T, k, reply string) {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(reply, ":"), "\r\n"))
	if err != nil {
		t.Fatalf("V.GET %s: %q", k, reply)
	}
	cc.cache[k] = n
}

func (cc *cachingClient) set(t *testing.T, k string) {
	cc.send(t, resp("V.SET", k))
	if got := cc.reply(t); got != "+OK\r\n" {
		t.Fatalf("V.SET: %q", got)
	}
}

// flushPipeline sends a few reads and changes in one write.
func (cc *cachingClient) flushPipeline(t *testing.T, r *rand.Rand, key func(*rand.Rand) string) {
	var b strings.Builder
	var kinds, ks []string
	for range 1 + r.IntN(5) {
		k := key(r)
		kind := "V.GET"
		if r.IntN(2) == 0 {
			kind = "V.SET"
		}
		b.WriteString(resp(kind, k))
		kinds, ks = append(kinds, kind), append(ks, k)
	}
	cc.send(t, b.String())
	for i, kind := range kinds {
		got := cc.reply(t)
		if kind == "V.GET" {
			cc.store(t, ks[i], got)
		}
	}
}

// quiesce applies every push queued for the client so far. Every change
// has queued its pushes by the time quiesce runs; a queued push goes out by
// the end of the batch it waited behind, at the latest right after the first
// PING's reply, so it comes before the second one's.
func (cc *cachingClient) quiesce(t *testing.T) {
	for range 2 {
		cc.send(t, resp("PING"))
		if got := cc.reply(t); got != "+PONG\r\n" {
			t.Fatalf("PING: %q", got)
		}
	}
}
