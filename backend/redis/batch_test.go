package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
	"github.com/srsproxy/srsproxy/srs"
)

// Concurrent reads through the batcher each get their own key's value (or
// Nil), however they were grouped into pipelines; after close, reads fail
// at once instead of hanging.
func TestVersionReadsBatch(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	for i := range 50 {
		c.rdb.Set(ctx, fmt.Sprintf("%s:k%d", c.opts.Prefix, i), fmt.Sprint(i*7), 0)
	}
	v := newAutoPipeline(c.rdb, c.opts.ReadTimeout)
	var wg sync.WaitGroup
	for g := range 400 {
		wg.Go(func() {
			i := g % 60 // keys 50–59 do not exist
			got, err := v.get(ctx, fmt.Sprintf("%s:k%d", c.opts.Prefix, i))
			switch {
			case i >= 50 && !errors.Is(err, goredis.Nil):
				t.Errorf("k%d: %q %v, want Nil", i, got, err)
			case i < 50 && (err != nil || got != fmt.Sprint(i*7)):
				t.Errorf("k%d: %q %v, want %d", i, got, err, i*7)
			}
		})
	}
	wg.Wait()
	v.close()
	if _, err := v.get(ctx, c.opts.Prefix+":k1"); !errors.Is(err, errClosedBatcher) {
		t.Fatalf("read after close: %v", err)
	}
}

// Concurrent review swaps share pipelines: each still gets its own outcome
// (stored, then a conflict for the same stale token), also right after the
// server lost its scripts (the NOSCRIPT fallback to EVAL).
func TestSwapsBatched(t *testing.T) {
	t.Parallel()
	srv := faults.StartRedis(t)
	c, err := New(Options{Addrs: []string{srv.Addr()}, Prefix: "swaps"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	const season, users = "SEASON-2026", 40
	for u := range users {
		cd := card("q1", "math", 1000)
		cd.Season, cd.Player = season, fmt.Sprint("u", u)
		if ok, err := c.Load(ctx, season, cd.Player, []srs.Card{cd}); err != nil || !ok {
			t.Fatalf("load: %v %v", ok, err)
		}
	}
	if err := c.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for u := range users {
		wg.Go(func() {
			player := fmt.Sprint("u", u)
			rd, err := c.Read(ctx, season, player, "q1")
			if err != nil || !rd.Found {
				t.Errorf("%s: read %+v %v", player, rd, err)
				return
			}
			next := rd.Card
			next.Due, next.Reps = 2000+int64(u), next.Reps+1
			if got, err := c.Swap(ctx, rd.Token, next); err != nil || got != srs.SwapStored {
				t.Errorf("%s: swap %v %v, want stored", player, got, err)
			}
			if got, err := c.Swap(ctx, rd.Token, next); err != nil || got != srs.SwapConflict {
				t.Errorf("%s: stale swap %v %v, want a conflict", player, got, err)
			}
			if rd, err := c.Read(ctx, season, player, "q1"); err != nil || rd.Card.Due != 2000+int64(u) {
				t.Errorf("%s: after the swap %+v %v", player, rd.Card, err)
			}
		})
	}
	wg.Wait()
}
