package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/srs"
)

// twoSidecars are two caches over one Redis and prefix, as two sidecars
// are: each has its own near-cache.
func twoSidecars(t *testing.T) (*Cache, *Cache) {
	t.Helper()
	a := testCache(t)
	b, err := New(Options{Addrs: a.opts.Addrs, Prefix: a.opts.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

func reviewed(c srs.Card, id string, due int64) srs.Card {
	c.Reps++
	c.Due, c.LastID = due, srs.ReviewHash(id)
	return c
}

// A write on one sidecar is seen by the other's next due list and read: the
// version check makes the near-cache exact.
func TestNearCacheSeesOtherSidecarsWrites(t *testing.T) {
	t.Parallel()
	a, b := twoSidecars(t)
	ctx := context.Background()
	const s, p, now = "SEASON-2026", "p1", 1_764_000_000_000
	cards := []srs.Card{card("q1", "math", now-3000), card("q2", "bio", now-2000)}
	if ok, err := a.Load(ctx, s, p, cards); err != nil || !ok {
		t.Fatalf("load: %v %v", ok, err)
	}
	if page, err := b.Due(ctx, s, p, "", now, 10); err != nil || page.Total != 2 {
		t.Fatalf("b's first due list: %+v %v", page, err)
	}
	rd, err := a.Read(ctx, s, p, "q1")
	if err != nil || !rd.Found {
		t.Fatalf("a's read: %+v %v", rd, err)
	}
	if got, err := a.Swap(ctx, rd.Token, reviewed(rd.Card, "r1", now+86400000)); err != nil || got != srs.SwapStored {
		t.Fatalf("a's swap: %v %v", got, err)
	}
	page, err := b.Due(ctx, s, p, "", now, 10)
	if err != nil || page.Total != 1 || page.Cards[0].QuestionID != "q2" {
		t.Fatalf("b must see a's review: %+v %v", page, err)
	}
	// b's snapshot is current again, so its peek is too.
	if rd, ok := b.Peek(s, p, "q1"); !ok || rd.Card.Reps != cards[0].Reps+1 {
		t.Fatalf("b's peek after the refresh: %+v %v", rd, ok)
	}
	if st := b.NearStats(); st.Users != 1 || st.Misses != 2 || st.Hits != 0 {
		t.Fatalf("b's near-cache: %+v (want 2 fetches: first read and after a's write)", st)
	}
}

// A review built on a stale peek cannot land: its compare-and-set conflicts,
// and a fresh read then shows the other sidecar's review.
func TestStalePeekConflicts(t *testing.T) {
	t.Parallel()
	a, b := twoSidecars(t)
	ctx := context.Background()
	const s, p, now = "SEASON-2026", "p1", 1_764_000_000_000
	if _, err := a.Load(ctx, s, p, []srs.Card{card("q1", "math", now)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx, s, p, "q1"); err != nil {
		t.Fatal(err)
	}
	stale, ok := b.Peek(s, p, "q1")
	if !ok {
		t.Fatal("b has no snapshot after a read")
	}
	rd, _ := a.Read(ctx, s, p, "q1")
	if got, _ := a.Swap(ctx, rd.Token, reviewed(rd.Card, "r-a", now+1)); got != srs.SwapStored {
		t.Fatalf("a's swap: %v", got)
	}
	if got, err := b.Swap(ctx, stale.Token, reviewed(stale.Card, "r-b", now+2)); err != nil || got != srs.SwapConflict {
		t.Fatalf("b's swap on a stale peek: %v %v", got, err)
	}
	fresh, err := b.Read(ctx, s, p, "q1")
	if err != nil || fresh.Card.LastID != srs.ReviewHash("r-a") {
		t.Fatalf("b's fresh read: %+v %v", fresh, err)
	}
}

// New labels from two sidecars: both land (one after re-fetching the
// header the other extended), and each card keeps its own labels.
func TestLabelSetsAddedBySeveralSidecars(t *testing.T) {
	t.Parallel()
	a, b := twoSidecars(t)
	ctx := context.Background()
	const s, p, now = "SEASON-2026", "p1", 1_764_000_000_000
	if _, err := a.Load(ctx, s, p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx, s, p, "x"); err != nil { // b's snapshot: no labels
		t.Fatal(err)
	}
	ca, cb := card("qa", "history", now), card("qb", "physics", now)
	if got, err := a.Swap(ctx, "", ca); err != nil || got != srs.SwapStored {
		t.Fatalf("a adds a card with a new label: %v %v", got, err)
	}
	if got, err := b.Swap(ctx, "", cb); err != nil || got != srs.SwapStored {
		t.Fatalf("b adds a card with another new label: %v %v", got, err)
	}
	for _, c := range []*Cache{a, b} {
		all, loaded, err := c.UserCards(ctx, s, p)
		if err != nil || !loaded || all["qa"].Card != ca || all["qb"].Card != cb {
			t.Fatalf("cards: %+v %v", all, err)
		}
	}
}

// A reload (another epoch) makes every older token fail, even for a card
// whose record bytes happen to be the same.
func TestTokensOfAnotherEpochConflict(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	const s, p, now = "SEASON-2026", "p1", 1_764_000_000_000
	q := card("q1", "m", now)
	if _, err := c.Load(ctx, s, p, []srs.Card{q}); err != nil {
		t.Fatal(err)
	}
	old, _ := c.Read(ctx, s, p, "q1")
	if err := c.Invalidate(ctx, s, p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, s, p, []srs.Card{q}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Swap(ctx, old.Token, reviewed(q, "r", now+1)); err != nil || got != srs.SwapConflict {
		t.Fatalf("swap with a token of the previous epoch: %v %v", got, err)
	}
}

// Release 2's keys of a user (format-2 records, due set) are never read, and
// Invalidate deletes them with the current ones.
func TestReleaseTwoKeysIgnoredAndDeleted(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	const s, p = "SEASON-2026", "p1"
	base := c.opts.Prefix + ":{" + s + "|" + p + "}:"
	c.rdb.HSet(ctx, base+"c2", "", "1", "q1", "\x02\x04math")
	c.rdb.ZAdd(ctx, base+"d2", goredisZ(1, "q1"))
	if page, err := c.Due(ctx, s, p, "", 10, 5); err != nil || page.Loaded {
		t.Fatalf("release 2's keys must not read as loaded: %+v %v", page, err)
	}
	if err := c.Invalidate(ctx, s, p); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.rdb.Exists(ctx, base+"c2", base+"d2").Result(); n != 0 {
		t.Fatalf("%d release-2 keys left after Invalidate", n)
	}
}

func goredisZ(score float64, m string) goredis.Z { return goredis.Z{Score: score, Member: m} }

// A sidecar's own writes show in its snapshot at once: reviews of one card
// in a row, each built on Peek, all land on the first try. (Versions pass
// through Lua's doubles: a version above 2^53 would come back rounded, and
// every snapshot would wait for a write that never comes.)
func TestPeekFollowsOwnWrites(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	const s, p, now = "SEASON-2026", "p1", 1_764_000_000_000
	if _, err := c.Load(ctx, s, p, []srs.Card{card("q0", "m", now)}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		rd, ok := c.Peek(s, p, "q0")
		if !ok || rd.Card.Reps != 3+i {
			t.Fatalf("peek %d: %+v %v, want reps %d", i, rd, ok, 3+i)
		}
		if got, err := c.Swap(ctx, rd.Token, reviewed(rd.Card, fmt.Sprint(i), now+int64(i))); err != nil || got != srs.SwapStored {
			t.Fatalf("swap %d built on a peek: %v %v", i, got, err)
		}
	}
	if st := c.NearStats(); st.Misses != 0 {
		t.Fatalf("%d fetches: the snapshot should have followed every write", st.Misses)
	}
}

// Concurrent writes of one user's cards through one sidecar: writes that
// overtake each other are applied in version order, and every card ends with
// every review (a conflict only costs a fresh read).
func TestConcurrentWritesOfOneUser(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	const s, p, now, workers, rounds = "SEASON-2026", "p1", 1_764_000_000_000, 5, 40
	var cards []srs.Card
	for i := range workers {
		cards = append(cards, card(fmt.Sprintf("q%d", i), "m", now))
	}
	if _, err := c.Load(ctx, s, p, cards); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			q := fmt.Sprintf("q%d", w)
			for i := range rounds {
				rd, ok := c.Peek(s, p, q)
				for attempt := 0; ; attempt++ {
					if !ok || attempt > 0 {
						var err error
						if rd, err = c.Read(ctx, s, p, q); err != nil {
							t.Error(err)
							return
						}
					}
					got, err := c.Swap(ctx, rd.Token, reviewed(rd.Card, fmt.Sprint(i), now+int64(i)))
					if err != nil || got == srs.SwapStored {
						break
					}
					if attempt > 10 {
						t.Errorf("%s round %d: no swap landed in 10 fresh reads", q, i)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	all, _, err := c.UserCards(ctx, s, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, cc := range all {
		if cc.Card.Reps != 3+rounds {
			t.Errorf("%s: reps %d, want %d", cc.Card.QuestionID, cc.Card.Reps, 3+rounds)
		}
	}
}
