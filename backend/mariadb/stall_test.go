package mariadb

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/srs"
)

// stallProxy is a TCP proxy in front of the MariaDB server that forwards
// until Stall, then forwards nothing: every socket, old and new, stays open,
// what arrives is read and discarded, and nothing is ever answered. It is a
// server that hangs, not one that is down.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// startStallProxy listens on a free local port in front of target and stops
// when the test ends.
func startStallProxy(tb testing.TB, target string) *stallProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	tb.Cleanup(p.close)
	return p
}

// Addr is the proxy's address.
func (p *stallProxy) Addr() string { return p.ln.Addr().String() }

// Stall stops all forwarding, on open sockets and on those accepted later.
func (p *stallProxy) Stall() { p.stalled.Store(true) }

func (p *stallProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *stallProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(client)
		if p.stalled.Load() {
			p.wg.Go(func() { io.Copy(io.Discard, client) })
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.track(server)
		p.wg.Go(func() { p.pipe(server, client) })
		p.wg.Go(func() { p.pipe(client, server) })
	}
}

// pipe copies src to dst until the proxy stalls, then reads src and
// discards what it reads.
func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// proxied starts a stall proxy in front of dsn's server and returns it with
// the DSN that goes through it.
func proxied(tb testing.TB, dsn string) (*stallProxy, *mysql.Config) {
	tb.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	p := startStallProxy(tb, cfg.Addr)
	cfg.Addr = p.Addr()
	return p, cfg
}

// TestStalledServer: with MariaDB hanging behind the proxy (sockets open,
// nothing answered), Card, UserCards, ApplyReviews and the other calls
// return an error within their per-call timeout instead of hanging, for a
// caller whose context has no deadline; and a pool connection opened after
// the stall fails too (the handshake never comes).
func TestStalledServer(t *testing.T) {
	t.Parallel()
	if os.Getenv("SRS_TEST_MYSQL") != "" {
		if cfg, err := mysql.ParseDSN(os.Getenv("SRS_TEST_MYSQL")); err != nil || cfg.Net != "tcp" {
			t.Skip("the stall proxy needs a TCP server address")
		}
	}
	ctx := context.Background()
	dsn, _ := testDSN(t)
	p, cfg := proxied(t, dsn)
	s := openStore(t, cfg.FormatDSN(), nil)
	newSeason(t, s, season)
	r1 := review("r1", season, "alice", "q1", 1_000_000, 1)
	apply(t, s, r1)
	mustCard(t, s, season, "alice", "q1")

	const read, write = 300 * time.Millisecond, 700 * time.Millisecond
	s.SetTimeouts(Timeouts{Read: read, Write: write, Long: write})
	p.Stall()

	const slack = 2 * time.Second // scheduling on a busy machine; a hang is unbounded
	for _, tc := range []struct {
		name  string
		limit time.Duration
		call  func() error
	}{
		{"Card", read, func() error { _, _, err := s.Card(ctx, season, "alice", "q1"); return err }},
		{"UserCards", read, func() error { _, err := s.UserCards(ctx, season, "alice"); return err }},
		{"DueCards", read, func() error { _, err := s.DueCards(ctx, season, "alice", "", 1<<40, 10); return err }},
		{"LoggedReview", read, func() error { _, _, err := s.LoggedReview(ctx, season, "alice", "q1", "r1"); return err }},
		{"Season", read, func() error { _, err := s.Season(ctx, season); return err }},
		{"ApplyReviews", write, func() error {
			_, err := s.ApplyReviews(ctx, []srs.Review{then(r1, review("r2", season, "alice", "q1", 2_000_000, 2))})
			return err
		}},
		{"ArchiveInfo", write, func() error { _, _, _, err := s.ArchiveInfo(ctx, season); return err }},
		{"TryLock", write, func() error {
			l, _, err := s.TryLock(ctx, "job")
			if l != nil {
				l.Release()
			}
			return err
		}},
		{"Ping", read, func() error { return s.Ping(ctx) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.call()
			took := time.Since(start)
			if err == nil {
				t.Fatalf("no error from a stalled server after %v", took)
			}
			if took > tc.limit+slack {
				t.Errorf("returned after %v, want within %v (+ slack)", took, tc.limit)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("error (not DeadlineExceeded in its chain): %v", err)
			}
			t.Logf("%s: %v after %v", tc.name, err, took.Round(time.Millisecond))
		})
	}
}

// TestStalledServerSocketTimeout: the DSN's socket timeouts bound a call
// too, when the per-call timeout is longer.
func TestStalledServerSocketTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	p, cfg := proxied(t, dsn)
	cfg.ReadTimeout = 400 * time.Millisecond
	s := openStore(t, cfg.FormatDSN(), nil)
	newSeason(t, s, season)
	s.SetTimeouts(Timeouts{Read: time.Hour})
	p.Stall()
	start := time.Now()
	_, err := s.UserCards(ctx, season, "alice")
	if took := time.Since(start); err == nil || took > 3*time.Second {
		t.Fatalf("UserCards = %v after %v; want an error after about 400ms", err, took)
	}
}

// TestOpenStalledServer: Open against a server that accepts and never
// answers fails when its context ends (the dial succeeds; the handshake
// never comes).
func TestOpenStalledServer(t *testing.T) {
	t.Parallel()
	dsn, _ := testDSN(t)
	p, cfg := proxied(t, dsn)
	p.Stall()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, cfg.FormatDSN(), nil)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded against a stalled server")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Open returned after %v", took)
	}
}

func TestDSNDefaults(t *testing.T) {
	t.Parallel()
	cfg, slow, err := parseDSN("root@tcp(127.0.0.1:3306)/srs")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 2*time.Second || cfg.ReadTimeout != 10*time.Second || cfg.WriteTimeout != 10*time.Second {
		t.Errorf("defaults: timeout %v, readTimeout %v, writeTimeout %v", cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout)
	}
	if slow.Timeout != 2*time.Second || slow.ReadTimeout != 0 || slow.WriteTimeout != 0 {
		t.Errorf("long-statement pool: timeout %v, readTimeout %v, writeTimeout %v", slow.Timeout, slow.ReadTimeout, slow.WriteTimeout)
	}
	if !cfg.ParseTime || !cfg.InterpolateParams || cfg.Loc != time.UTC {
		t.Errorf("parseTime %v, interpolateParams %v, loc %v", cfg.ParseTime, cfg.InterpolateParams, cfg.Loc)
	}
	cfg, slow, err = parseDSN("root@tcp(127.0.0.1:3306)/srs?timeout=1s&readTimeout=3s&writeTimeout=4s")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mysql.Config{cfg, slow} {
		if c.Timeout != time.Second || c.ReadTimeout != 3*time.Second || c.WriteTimeout != 4*time.Second {
			t.Errorf("explicit values not kept: %v, %v, %v", c.Timeout, c.ReadTimeout, c.WriteTimeout)
		}
	}
}
