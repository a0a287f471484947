package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
	"github.com/srsproxy/srsproxy/srs"
)

type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{goredis.Nil, false},
		{context.Canceled, false},
		{redisReply("ERR Error running script: bad"), false},
		{redisReply("WRONGTYPE Operation against a key"), false},
		{redisReply("LOADING Redis is loading the dataset in memory"), true},
		{redisReply("CLUSTERDOWN The cluster is down"), true},
		{redisReply("MASTERDOWN Link with MASTER is down"), true},
		{redisReply("TRYAGAIN Multiple keys request during rehashing"), true},
		{goredis.ErrClosed, true},
		{io.EOF, true},
		{fmt.Errorf("redis due: %w", &net.OpError{Op: "dial", Err: errors.New("refused")}), true},
		// A socket deadline: the server was sent a command and did not answer.
		{fmt.Errorf("redis due: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), true},
		{os.ErrDeadlineExceeded, true},
		// Overload: waiting in our own pool is not an outage.
		{goredis.ErrPoolTimeout, false},
		{fmt.Errorf("redis due: %w", goredis.ErrPoolTimeout), false},
		{goredis.ErrPoolExhausted, false},
		// Ambiguous (a pool wait, or a handshake a stalled server never
		// answered): counted; callCtx excludes it when the caller's context ended.
		{context.DeadlineExceeded, true},
		// TLS handshakes that failed: the upstream cannot be used.
		{fmt.Errorf("redis fetch: %w", &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "127.0.0.1"}}), true},
		{&net.OpError{Op: "remote error", Err: tls.AlertError(116)}, true}, // the server's "certificate required"
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true},
	} {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestIsOverloaded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{goredis.Nil, false},
		{context.Canceled, false},
		{goredis.ErrPoolTimeout, true},
		{fmt.Errorf("redis due: %w", goredis.ErrPoolExhausted), true},
		{context.DeadlineExceeded, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}, false},
		{io.EOF, false},
		{redisReply("LOADING Redis is loading the dataset in memory"), false},
	} {
		if got := IsOverloaded(tc.err); got != tc.want {
			t.Errorf("IsOverloaded(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// holdOnlyConn occupies the one connection of c's pool with a BLPOP that the
// server keeps blocked (a healthy server, answering later), and returns when
// the server shows it blocked; release unblocks it and waits for the reply.
func holdOnlyConn(t *testing.T, c, admin *goredis.Client, key string) (release func()) {
	t.Helper()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- c.BLPop(ctx, 30*time.Second, key).Err() }()
	for {
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(list, "cmd=blpop") {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("BLPOP returned before it was released: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return func() {
		t.Helper()
		if err := admin.LPush(ctx, key, "x").Err(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("BLPOP: %v", err)
		}
	}
}

// TestPoolWaitIsOverload checks against a real redis-server how go-redis
// reports a call that waited for a pooled connection while the server is
// healthy (its one connection is blocked in a BLPOP): ErrPoolTimeout after
// PoolTimeout. That is overload, not an outage.
func TestPoolWaitIsOverload(t *testing.T) {
	t.Parallel()
	srv := faults.StartRedis(t)
	admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Protocol: 2})
	defer admin.Close()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), Protocol: 2, DisableIdentity: true,
		PoolSize: 1, PoolTimeout: 50 * time.Millisecond, ReadTimeout: time.Second, MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	release := holdOnlyConn(t, c, admin, "overload:pool")
	err := c.Get(context.Background(), "k").Err()
	release()
	if !errors.Is(err, goredis.ErrPoolTimeout) {
		t.Fatalf("waiting for the pool: %v (%T), want ErrPoolTimeout", err, err)
	}
	if !IsOverloaded(err) || IsUnavailable(err) {
		t.Fatalf("waiting for the pool (%v): IsOverloaded %v, IsUnavailable %v; want overload, not an outage",
			err, IsOverloaded(err), IsUnavailable(err))
	}
	if err := c.Get(context.Background(), "k").Err(); !errors.Is(err, goredis.Nil) {
		t.Fatalf("after the wait the pool serves again: %v", err)
	}
}

// TestStalledRedisIsUnavailable checks against a real redis-server behind a
// stalled proxy that a real timeout counts as unavailable and not as
// overload: a command sent on a pooled connection that the server never
// answers, whether the socket deadline came from the caller's context or
// from ReadTimeout, and a new connection whose handshake is never answered.
func TestStalledRedisIsUnavailable(t *testing.T) {
	t.Parallel()
	srv := faults.StartRedis(t)
	gate := faults.NewProxy(t, srv.Addr())
	c, err := New(Options{Addrs: []string{gate.Addr()}, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond,
		DialTimeout: 200 * time.Millisecond, PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Due(context.Background(), "SEASON-2026", "p", "", 1, 5); err != nil {
		t.Fatalf("before the stall: %v", err)
	}
	gate.Stall()
	defer gate.Restore()
	// In this order: the first call uses the connection made before the
	// stall (go-redis drops it after the timeout), the others dial anew.
	for _, tc := range []struct {
		name       string
		ctxTimeout time.Duration // 0: no deadline
		want       error
	}{
		// A socket deadline that came from the caller's context is reported
		// as the context's error: the same bare error as a pool wait under a
		// deadline (see IsOverloaded).
		{"caller deadline on a pooled connection", 50 * time.Millisecond, context.DeadlineExceeded},
		// ReadTimeout: the socket's own error (go-redis unwraps the
		// *net.OpError), not a context error.
		{"read timeout on a new connection", 0, os.ErrDeadlineExceeded},
		// The caller stops waiting for the handshake (HELLO).
		{"caller deadline during a new connection's handshake", 50 * time.Millisecond, context.DeadlineExceeded},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		if tc.ctxTimeout > 0 {
			ctx, cancel = context.WithTimeout(context.Background(), tc.ctxTimeout)
		}
		_, err := c.Due(ctx, "SEASON-2026", "p", "", 1, 5)
		cancel()
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v (%T), want %v", tc.name, err, err, tc.want)
		}
		if !IsUnavailable(err) || IsOverloaded(err) {
			t.Fatalf("%s (%v): IsUnavailable %v, IsOverloaded %v; want an outage", tc.name, err, IsUnavailable(err), IsOverloaded(err))
		}
	}
}

func TestUnreachableRedisIsUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := New(Options{Addrs: []string{addr}, DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Due(context.Background(), "SEASON-2026", "p", "", 1, 5)
	if !IsUnavailable(err) {
		t.Fatalf("a refused connection must count as unavailable: %v", err)
	}
	_, err = c.Load(context.Background(), "SEASON-2026", "p", []srs.Card{card("q", "s", 1)})
	if !IsUnavailable(err) {
		t.Fatalf("load: %v", err)
	}
}
