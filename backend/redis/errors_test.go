package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

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
		{goredis.ErrPoolTimeout, true},
		{goredis.ErrClosed, true},
		{io.EOF, true},
		{fmt.Errorf("redis due: %w", &net.OpError{Op: "dial", Err: errors.New("refused")}), true},
	} {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
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
