package mariadb

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

func TestContinues(t *testing.T) {
	t.Parallel()
	row := srs.Schedule{State: srs.StateReview, Stability: 3.5, Difficulty: 6, Due: 5000,
		LastReview: 1000, Reps: 3, Lapses: 1, LastID: srs.ReviewHash("r3"), Recall: 0.9}
	on := func(id string, at int64, before srs.Schedule) srs.Review {
		after := before
		after.LastReview, after.Reps, after.LastID, after.Stability = at, before.Reps+1, srs.ReviewHash(id), before.Stability+1
		return srs.Review{ID: id, ReviewedAt: at, Before: before, After: after}
	}
	with := func(f func(*srs.Schedule)) srs.Schedule { s := row; f(&s); return s }
	r4 := on("r4", 2000, row)
	r5 := on("r5", 3000, r4.After)
	unknown := with(func(s *srs.Schedule) { s.LastID = 0 }) // a row from release 1
	for _, tc := range []struct {
		name   string
		row    srs.Schedule
		exists bool
		revs   []srs.Review
		want   bool
	}{
		{"built on the row", row, true, []srs.Review{r4}, true},
		{"a chain built on the row", row, true, []srs.Review{r4, r5}, true},
		{"same instant, built on the row", row, true, []srs.Review{on("r4", 1000, row)}, true},
		{"due and recall do not matter", row, true, []srs.Review{on("r4", 2000, with(func(s *srs.Schedule) { s.Due, s.Recall = 1, float64(float32(0.9)) }))}, true},
		{"older than the row", row, true, []srs.Review{on("r4", 999, row)}, false},
		{"built on another review (fork or gap)", row, true, []srs.Review{on("r4", 2000, with(func(s *srs.Schedule) { s.LastID = srs.ReviewHash("r2") }))}, false},
		{"same last_id, other state (row recomputed since)", row, true, []srs.Review{on("r4", 2000, with(func(s *srs.Schedule) { s.Stability = 3.25 }))}, false},
		{"names no review, row known", row, true, []srs.Review{on("r4", 2000, with(func(s *srs.Schedule) { s.LastID = 0 }))}, false},
		{"a gap inside the batch", row, true, []srs.Review{r4, on("r5", 3000, row)}, false},
		{"row unknown, built on it", unknown, true, []srs.Review{on("r4", 2000, unknown)}, true},
		{"row unknown, other reps", unknown, true, []srs.Review{on("r4", 2000, with(func(s *srs.Schedule) { s.LastID, s.Reps = 0, 2 }))}, false},
		{"row unknown, older", unknown, true, []srs.Review{on("r4", 10, unknown)}, false},
		{"no row", srs.Schedule{}, false, []srs.Review{on("r1", 5, srs.Schedule{})}, true},
		{"no row, first review built on one not drained yet", srs.Schedule{}, false, []srs.Review{r4, r5}, true},
		{"no row, a gap inside the batch", srs.Schedule{}, false, []srs.Review{r4, on("r5", 3000, row)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := continues(tc.row, tc.exists, tc.revs); got != tc.want {
				t.Errorf("continues = %v, want %v", got, tc.want)
			}
		})
	}
}

// history is the acknowledged reviews of one card as the engine computes
// them, each built on a state of the card: the one before it (a shared cache)
// or, with probability fork, an older one (a sidecar in Safe Mode working
// from the store and its own queue). Times never go back; some are equal.
func history(rng *rand.Rand, sched *fsrs.Scheduler, season, player, question string, n int, fork float64) []srs.Review {
	seed := fsrs.Seed(season, player, question)
	states := []srs.Schedule{{}}
	at := int64(1_790_000_000_000) + rng.Int64N(1_000_000)
	var out []srs.Review
	for i := range n {
		switch rng.IntN(4) {
		case 0: // same instant: two answers in one millisecond
		case 1:
			at += rng.Int64N(20 * 60_000)
		default:
			at += rng.Int64N(20 * 86_400_000)
		}
		before := states[len(states)-1]
		if len(states) > 1 && rng.Float64() < fork {
			before = states[rng.IntN(len(states)-1)]
		}
		at = max(at, before.LastReview)
		g := srs.Grade(1 + rng.IntN(4))
		out1 := sched.Next(before, g, at, seed)
		id := fmt.Sprintf("%s-%d-%d", question, i, rng.IntN(1000))
		after := out1.Schedule
		after.LastID = srs.ReviewHash(id)
		after.Recall = sched.Retrievability(before, at)
		out = append(out, srs.Review{
			ID: id, Season: season, Player: player, QuestionID: question,
			Subject: fmt.Sprintf("s%d", i%3), Grade: g, ReviewedAt: at, ElapsedDays: out1.ElapsedDays,
			Before: before, After: after,
		})
		states = append(states, after)
	}
	return out
}

// replayed is the card the whole history gives, computed here the way the
// audit does (independently of the store's replay).
func replayed(sched *fsrs.Scheduler, reviews []srs.Review) srs.Card {
	rs := slices.Clone(reviews)
	slices.SortFunc(rs, func(a, b srs.Review) int {
		return cmp.Or(cmp.Compare(a.ReviewedAt, b.ReviewedAt), cmp.Compare(a.After.Reps, b.After.Reps), cmp.Compare(a.ID, b.ID))
	})
	c := srs.Card{Season: rs[0].Season, Player: rs[0].Player, QuestionID: rs[0].QuestionID}
	seed := fsrs.Seed(c.Season, c.Player, c.QuestionID)
	for _, r := range rs {
		next := sched.Next(c.Schedule, r.Grade, r.ReviewedAt, seed).Schedule
		next.LastID, next.Recall = srs.ReviewHash(r.ID), sched.Retrievability(c.Schedule, r.ReviewedAt)
		c.Schedule, c.Subject, c.Topic, c.Stage = next, r.Subject, r.Topic, r.Stage
	}
	return c
}

// TestReplayAcrossSidecars is invariant 3 across sidecars: random histories
// of a few cards, acknowledged by two sidecars, are drained by both in
// random batches, interleaved in a random order (one sidecar often drains
// late, all at once, as after it was killed with undrained entries while the
// other went on), with batches sent again now and then (a retried drain:
// duplicates by scoped id). Whatever the order, every card row ends equal to
// the replay of all its reviews, every review is logged once, and a card the
// store reports as recomputed equals the row it wrote.
func TestReplayAcrossSidecars(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	se, err := s.Season(ctx, season)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := fsrs.New(se.Scheduler)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu         sync.Mutex
		recomputed = map[cardKey]srs.Card{}
		recomputes int
	)
	s.SetOnRecompute(func(c srs.Card) {
		mu.Lock()
		defer mu.Unlock()
		recomputed[cardKey{c.Season, c.Player, c.QuestionID}] = c
		recomputes++
	})

	const histories = 150
	var reviews, batches int
	start := time.Now()
	for h := range histories {
		rng := rand.New(rand.NewPCG(uint64(h), 3))
		player := fmt.Sprintf("h%03d", h)
		fork := 0.0
		if h%3 == 2 {
			fork = 0.3
		}
		var all []srs.Review
		queues := [2][]srs.Review{}
		for q := range 1 + rng.IntN(3) {
			hist := history(rng, sched, season, player, fmt.Sprintf("q%d", q), 1+rng.IntN(10), fork)
			all = append(all, hist...)
			for _, r := range hist {
				side := rng.IntN(2)
				r.Sidecar = fmt.Sprintf("node-%d", side)
				queues[side] = append(queues[side], r)
			}
		}
		// The drain order: one sidecar drains late (all after the other)
		// in a third of the histories; otherwise batches interleave.
		late := -1
		if h%3 == 0 {
			late = rng.IntN(2)
		}
		var sent [][]srs.Review
		for len(queues[0])+len(queues[1]) > 0 {
			side := rng.IntN(2)
			switch {
			case len(queues[side]) == 0:
				side = 1 - side
			case late >= 0 && side == late && len(queues[1-late]) > 0:
				side = 1 - late
			}
			n := min(len(queues[side]), 1+rng.IntN(3))
			batch := queues[side][:n]
			queues[side] = queues[side][n:]
			if len(sent) > 0 && rng.IntN(4) == 0 { // a batch sent again, with this one
				batch = append(slices.Clone(sent[rng.IntN(len(sent))]), batch...)
			}
			if rejected := apply(t, s, batch...); rejected != nil {
				t.Fatalf("history %d: rejected %v", h, rejected)
			}
			sent = append(sent, batch)
			batches++
		}
		reviews += len(all)

		cards := map[string][]srs.Review{}
		for _, r := range all {
			cards[r.QuestionID] = append(cards[r.QuestionID], r)
		}
		for q, rs := range cards {
			want := replayed(sched, rs)
			got := mustCard(t, s, season, player, q)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("history %d, card %s (%d reviews, fork %v, late %d):\n got %+v\nwant %+v", h, q, len(rs), fork, late, got, want)
			}
			if fork == 0 && !reflect.DeepEqual(want.Schedule, rs[len(rs)-1].After) {
				t.Errorf("history %d, card %s: the replay %+v is not the engine's last state %+v", h, q, want.Schedule, rs[len(rs)-1].After)
			}
			mu.Lock()
			if c, ok := recomputed[cardKey{season, player, q}]; ok && !reflect.DeepEqual(c, got) && len(rs) > 0 {
				// A later continuation may have moved the row on since; it
				// must then be a continuation of the recomputed state.
				if c.LastReview > got.LastReview {
					t.Errorf("history %d, card %s: recomputed %+v after the final row %+v", h, q, c, got)
				}
			}
			mu.Unlock()
			counts, err := s.ReviewIDs(ctx, season, keys(rs...))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys(rs...) {
				if counts[k] != 1 {
					t.Errorf("history %d: %v logged %d times", h, k, counts[k])
				}
			}
		}
	}
	t.Logf("%d histories, %d reviews in %d batches, %d recomputes, %.1f ms per batch",
		histories, reviews, batches, recomputes, float64(time.Since(start).Microseconds())/1000/float64(batches))
	if recomputes == 0 {
		t.Error("no card was recomputed: the test does not reach the replay")
	}
}

// TestReplayConcurrentDrainers drains two sidecars' queues of the same cards
// at the same time, from two goroutines (two stores on one database): the
// row locks make them take turns, and each card ends equal to the replay.
func TestReplayConcurrentDrainers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	stores := []*Store{openStore(t, dsn, nil), openStore(t, dsn, nil)}
	newSeason(t, stores[0], season)
	se, err := stores[0].Season(ctx, season)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := fsrs.New(se.Scheduler)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var (
		queues [2][]srs.Review
		cards  = map[string][]srs.Review{}
	)
	for q := range 20 {
		hist := history(rng, sched, season, "zed", fmt.Sprintf("q%02d", q), 12, 0.1)
		cards[hist[0].QuestionID] = hist
		for _, r := range hist {
			side := rng.IntN(2)
			queues[side] = append(queues[side], r)
		}
	}
	var wg sync.WaitGroup
	for side := range 2 {
		wg.Go(func() {
			for batch := range slices.Chunk(queues[side], 5) {
				if rejected, err := stores[side].ApplyReviews(ctx, batch); err != nil || rejected != nil {
					t.Errorf("sidecar %d: %v, %v", side, rejected, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for q, rs := range cards {
		if got, want := mustCard(t, stores[0], season, "zed", q), replayed(sched, rs); !reflect.DeepEqual(got, want) {
			t.Errorf("card %s:\n got %+v\nwant %+v", q, got, want)
		}
	}
}

// BenchmarkReplay measures the recompute of one card with n logged reviews:
// a late review arrives and the card is replayed from its log (one
// ApplyReviews call: the lock, the log insert, the log read, n FSRS steps and
// the row write).
func BenchmarkReplay(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	newSeason(b, s, season)
	se, err := s.Season(ctx, season)
	if err != nil {
		b.Fatal(err)
	}
	sched, err := fsrs.New(se.Scheduler)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			i := 0
			for b.Loop() {
				b.StopTimer()
				i++
				hist := history(rng, sched, season, fmt.Sprintf("bench%d-%d", n, i), "q1", n+1, 0)
				for batch := range slices.Chunk(hist[1:], 500) {
					if _, err := s.ApplyReviews(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := s.ApplyReviews(ctx, hist[:1]); err != nil { // the first review, drained last
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReplayFSRS is the in-memory part of a recompute: n FSRS steps
// over a card's log, without the database.
func BenchmarkReplayFSRS(b *testing.B) {
	sched, err := fsrs.New(srs.DefaultSchedulerConfig())
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			log := history(rand.New(rand.NewPCG(uint64(n), 2)), sched, season, "p", "q", n, 0)
			for b.Loop() {
				replay(sched, season, "p", "q", log)
			}
		})
	}
}
