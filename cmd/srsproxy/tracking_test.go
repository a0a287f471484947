package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// trackingFixture is two sidecars on one Redis and MariaDB, and a student
// with five cards due now, reviewed through sidecar B.
type trackingFixture struct {
	a, b           *Main
	season, player string
	viaB           *goredis.Client
}

func newTrackingFixture(t *testing.T, season, player string) *trackingFixture {
	t.Helper()
	e := newTestEnv(t)
	f := &trackingFixture{a: startMain(t, e), b: startMain(t, e), season: season, player: player}
	f.viaB = client(t, f.b.Addr(), 3)
	createSeason(t, client(t, f.a.Addr(), 3), season)
	base := time.Now().Add(-6 * time.Hour).UnixMilli()
	for i := range 5 { // Again six hours ago: due again minutes later, so due now
		mustDo(t, f.viaB, "SRS.REVIEW", player, season, fmt.Sprintf("q-%d", i), 1,
			"AT", base+int64(i)*1000, "ID", fmt.Sprintf("%s-seed-%d", player, i))
	}
	// Sidecar A's watcher subscribes in the background: until it has, its
	// tracked replies are volatile (invalidated at once), which would pass
	// the tests below for the wrong reason.
	deadline := time.Now().Add(5 * time.Second)
	for f.a.watcher.Watch(context.Background(), season, player) != nil {
		if time.Now().After(deadline) {
			t.Fatal("sidecar A's Redis watcher did not subscribe in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return f
}

// review answers one due card Good through sidecar B, now: it leaves the due list.
func (f *trackingFixture) reviewViaB(t *testing.T, question, id string) {
	t.Helper()
	mustDo(t, f.viaB, "SRS.REVIEW", f.player, f.season, question, 3, "ID", id)
}

// TestTrackingAcrossSidecars: rueidis with default options (RESP3, client
// tracking OPTIN) caches SRS.DUE from sidecar A with DoCache; a review of
// that student through sidecar B invalidates it, and the next DoCache reads
// the new list. A review through the client's own connection invalidates
// before its reply, so the very next DoCache already misses.
func TestTrackingAcrossSidecars(t *testing.T) {
	t.Parallel()
	f := newTrackingFixture(t, "SEASON-2026-TRK", "trk-student")
	ctx := context.Background()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{f.a.Addr()}})
	if err != nil {
		t.Fatalf("rueidis with default options: %v", err)
	}
	defer rc.Close()
	due := func() (total int64, hit bool) {
		t.Helper()
		cmd := rueidis.Cacheable(rc.B().Arbitrary("SRS.DUE").Keys(f.player).Args(f.season).Build())
		res := rc.DoCache(ctx, cmd, time.Minute)
		m, err := res.AsMap()
		if err != nil {
			t.Fatalf("DoCache SRS.DUE: %v", err)
		}
		field := m["total_due"]
		total, err = field.AsInt64()
		if err != nil {
			t.Fatalf("total_due: %v (%v)", err, m)
		}
		return total, res.IsCacheHit()
	}

	// until polls DoCache until it answers want (from the cache when
	// cached is set): sidecar B's drainer rewrites the cache after each
	// batch, and every rewrite is a (harmless) invalidation too.
	until := func(what string, want int64, cached bool) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			total, hit := due()
			if total == want && (hit || !cached) {
				return time.Since(start)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: total_due %d (cache hit %v), want %d", what, total, hit, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if total, hit := due(); total != 5 || hit {
		t.Fatalf("first DoCache: total_due %d, cache hit %v; want 5 from the server", total, hit)
	}
	until("cached", 5, true)

	f.reviewViaB(t, "q-0", "trk-b-1")
	took := until("after a review through sidecar B", 4, false)
	t.Logf("the review through sidecar B reached the client of sidecar A within %v", took)
	until("cached again", 4, true)

	// The client's own review: the invalidation precedes the reply.
	own := rc.B().Arbitrary("SRS.REVIEW").Keys(f.player).Args(f.season, "q-1", "3", "ID", "trk-a-1").Build()
	if err := rc.Do(ctx, own).Error(); err != nil {
		t.Fatalf("review through rueidis: %v", err)
	}
	if total, hit := due(); hit || total != 3 {
		t.Fatalf("right after its own review: total_due %d, cache hit %v; want 3 from the server", total, hit)
	}
	if st := f.a.server.Tracking(); st.Clients < 1 || st.Invalidations < 2 || !f.a.watcher.Up() {
		t.Errorf("sidecar A's tracking figures: %+v, watcher up %v", st, f.a.watcher.Up())
	}
}

// TestTrackingRedirectRESP2: a RESP2 client tracks with REDIRECT to a
// connection subscribed to __redis__:invalidate; a review through the other
// sidecar arrives there as a message naming the player.
func TestTrackingRedirectRESP2(t *testing.T) {
	t.Parallel()
	f := newTrackingFixture(t, "SEASON-2026-TRK2", "trk2-student")
	ctx := context.Background()
	ids := make(chan int64, 1)
	subscriber := goredis.NewClient(&goredis.Options{Addr: f.a.Addr(), Protocol: 2,
		OnConnect: func(ctx context.Context, cn *goredis.Conn) error {
			id, err := cn.ClientID(ctx).Result()
			ids <- id
			return err
		}})
	defer subscriber.Close()
	ps := subscriber.Subscribe(ctx, "__redis__:invalidate")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	subID := <-ids
	tracker := goredis.NewClient(&goredis.Options{Addr: f.a.Addr(), Protocol: 2, PoolSize: 1,
		OnConnect: func(ctx context.Context, cn *goredis.Conn) error {
			return cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", subID).Err()
		}})
	defer tracker.Close()
	if err := tracker.Do(ctx, "SRS.DUE", f.player, f.season).Err(); err != nil {
		t.Fatal(err)
	}
	f.reviewViaB(t, "q-2", "trk2-b-1")
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := ps.ReceiveMessage(rctx)
	if err != nil {
		t.Fatalf("no invalidation message: %v", err)
	}
	if len(msg.PayloadSlice) != 1 || msg.PayloadSlice[0] != f.player {
		t.Fatalf("invalidation = %+v, want the keys [%s]", msg, f.player)
	}
}

// TestTrackingDueTimeInvalidates: a cached SRS.DUE (no AT) is invalidated
// when a card becomes due, with no write at all.
func TestTrackingDueTimeInvalidates(t *testing.T) {
	t.Parallel()
	f := newTrackingFixture(t, "SEASON-2026-TRK3", "trk3-student")
	ctx := context.Background()
	// Again on a new card, backdated so that its one-minute learning step
	// ends about a second from now.
	rep, err := f.viaB.Do(ctx, "SRS.REVIEW", f.player, f.season, "q-soon", 1,
		"AT", time.Now().Add(-time.Minute+time.Second).UnixMilli(), "ID", "trk3-soon").Result()
	if err != nil {
		t.Fatal(err)
	}
	dueAt, _ := rep.(map[any]any)["due"].(int64)
	if wait := time.Until(time.UnixMilli(dueAt)); wait <= 0 || wait > 3*time.Second {
		t.Fatalf("the card is due in %v, want about a second (reply %v)", wait, rep)
	}
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{f.a.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		res := rc.DoCache(ctx, rueidis.Cacheable(rc.B().Arbitrary("SRS.DUE").Keys(f.player).Args(f.season).Build()), time.Minute)
		m, err := res.AsMap()
		if err != nil {
			t.Fatal(err)
		}
		field := m["total_due"]
		total, _ := field.AsInt64()
		if total == 6 {
			if time.Now().Before(time.UnixMilli(dueAt)) {
				t.Fatalf("total_due 6 before the card was due")
			}
			t.Logf("the due list refreshed %v after the card became due", time.Since(time.UnixMilli(dueAt)))
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("total_due still %d (cache hit %v) 5s later: no invalidation when the card became due", total, res.IsCacheHit())
		}
	}
}

// TestTrackingSafeModeNotCached: in Safe Mode nothing reports changes (the
// cache is down), so a tracked due list read from MariaDB is invalidated
// right after its reply: rueidis never serves it from its cache. Losing
// the Redis watcher also flushes what clients had cached.
func TestTrackingSafeModeNotCached(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOpts{flags: []string{"--safe-user-interval", "1ms"}})
	now := time.Now().UnixMilli()
	for i := range 3 { // Again an hour ago: due now
		r.review(r.c3, "trk-safe", fmt.Sprintf("q-%d", i), 1, now-3_600_000+int64(i))
	}
	r.drained()
	ctx := context.Background()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.m.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	due := func() (rueidis.RedisResult, map[string]rueidis.RedisMessage) {
		res := rc.DoCache(ctx, rueidis.Cacheable(rc.B().Arbitrary("SRS.DUE").Keys("trk-safe").Args(safeSeason).Build()), time.Minute)
		m, _ := res.AsMap()
		return res, m
	}
	deadline := time.Now().Add(5 * time.Second)
	for res, _ := due(); !res.IsCacheHit(); res, _ = due() { // cached once the watcher is up
		if time.Now().After(deadline) {
			t.Fatal("the due list was never cached with Redis up")
		}
		time.Sleep(5 * time.Millisecond)
	}

	r.gate.Cut() // the watcher's connections go too: clients are flushed
	r.trip(r.c3, "trk-other")
	deadline = time.Now().Add(5 * time.Second)
	for {
		res, m := due()
		if res.IsCacheHit() {
			if time.Now().After(deadline) {
				t.Fatal("the reply cached before the outage was never invalidated")
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		degraded := m["degraded"]
		if ok, _ := degraded.AsBool(); !ok {
			t.Fatalf("SRS.DUE in Safe Mode: %v (%v), want a degraded list", m, res.Error())
		}
		break
	}
	for i := range 5 { // each degraded reply was followed by its invalidation
		if res, _ := due(); res.IsCacheHit() {
			t.Fatalf("Safe Mode read %d came from rueidis's cache", i)
		}
	}
}

// TestTrackingUncachedSeasonNotCached: a season with the cache off is read
// from MariaDB, where no version tells of changes: its tracked replies are
// invalidated right after they are sent, with the watcher up.
func TestTrackingUncachedSeasonNotCached(t *testing.T) {
	t.Parallel()
	f := newTrackingFixture(t, "SEASON-2026-TRK4", "trk4-student")
	const season = "SEASON-2026-NOCACHE"
	createSeason(t, f.viaB, season, "CACHE", "OFF")
	mustDo(t, f.viaB, "SRS.REVIEW", f.player, season, "q-0", 1, "AT", time.Now().Add(-time.Hour).UnixMilli(), "ID", "trk4-1")
	ctx := context.Background()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{f.a.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for i := range 5 {
		res := rc.DoCache(ctx, rueidis.Cacheable(rc.B().Arbitrary("SRS.DUE").Keys(f.player).Args(season).Build()), time.Minute)
		if err := res.Error(); err != nil {
			t.Fatal(err)
		}
		if res.IsCacheHit() {
			t.Fatalf("read %d of a season without cache came from rueidis's cache", i)
		}
	}
}
