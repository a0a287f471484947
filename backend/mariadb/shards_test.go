package mariadb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// TestApplyReviewsShards drains the same batches, each spanning many
// users, into a store that applies them in one transaction and one that
// splits them into concurrent shards: the rejected indices, the recomputed
// cards (late reviews of one sidecar), every card and every log count come
// out the same, and the shards do split the batches.
func TestApplyReviewsShards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type run struct {
		s          *Store
		mu         sync.Mutex
		recomputed map[cardKey]srs.Card
		rejected   [][]int
	}
	runs := []*run{{s: newStore(t)}, {s: newStore(t)}}
	runs[0].s.SetDrainShards(1, 1)
	runs[1].s.SetDrainShards(3, 2)
	for _, r := range runs {
		newSeason(t, r.s, season)
		r.recomputed = map[cardKey]srs.Card{}
		r.s.SetOnRecompute(func(c srs.Card) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.recomputed[cardKey{c.Season, c.Player, c.QuestionID}] = c
		})
	}
	se, err := runs[0].s.Season(ctx, season)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := fsrs.New(se.Scheduler)
	if err != nil {
		t.Fatal(err)
	}
	spread := make([]srs.Review, 60)
	for i := range spread {
		spread[i] = review("x", season, fmt.Sprintf("u%d", i), "q", 1, 1)
	}
	if got := len(runs[1].s.shardsOf(spread)); got != 3 {
		t.Fatalf("shardsOf(60 users) = %d shards, want 3", got)
	}
	if got := len(runs[1].s.shardsOf(spread[:5])); got > 2 {
		t.Fatalf("shardsOf(5 reviews) = %d shards, want at most 5/2", got)
	}
	if got := runs[1].s.shardsOf(slices.Repeat(spread[:1], 60)); len(got) > 1 {
		t.Fatalf("one user's reviews in %d shards", len(got))
	}

	// Two sidecars' queues over 40 players; sidecar 1 drains only after
	// sidecar 0 is done, so its reviews come late and recompute cards.
	rng := rand.New(rand.NewPCG(11, 12))
	var queues [2][]srs.Review
	all := map[cardKey][]srs.Review{}
	for p := range 40 {
		player := fmt.Sprintf("p%02d", p)
		for q := range 2 {
			for _, r := range history(rng, sched, season, player, fmt.Sprintf("q%d", q), 2+rng.IntN(4), 0) {
				side := rng.IntN(2)
				queues[side] = append(queues[side], r)
				all[cardKeyOf(r)] = append(all[cardKeyOf(r)], r)
			}
		}
	}
	bad := review("bad", season, "p07", "q9", 1_000_000, 1)
	bad.Grade = 9
	var batches [][]srs.Review
	for _, q := range queues {
		for chunk := range slices.Chunk(q, 25) {
			b := slices.Clone(chunk)
			b = slices.Insert(b, rng.IntN(len(b)+1), bad) // rejected for good, wherever it is
			batches = append(batches, b)
		}
	}
	batches = append(batches, batches[0]) // one drained again: nothing applies twice

	for _, r := range runs {
		for _, b := range batches {
			r.rejected = append(r.rejected, apply(t, r.s, b...))
		}
	}
	for i, b := range batches {
		want := []int{slices.IndexFunc(b, func(r srs.Review) bool { return r.ID == "bad" })}
		if a, c := runs[0].rejected[i], runs[1].rejected[i]; !slices.Equal(a, want) || !slices.Equal(c, want) {
			t.Errorf("batch %d: rejected %v in one transaction, %v in shards; want %v", i, a, c, want)
		}
	}
	if len(runs[0].recomputed) == 0 {
		t.Error("no card recomputed: the test does not reach the replay")
	}
	if !reflect.DeepEqual(runs[0].recomputed, runs[1].recomputed) {
		t.Errorf("recomputed cards differ: %d in one transaction, %d in shards", len(runs[0].recomputed), len(runs[1].recomputed))
	}
	for k, rs := range all {
		want := replayed(sched, rs)
		for i, r := range runs {
			if got := mustCard(t, r.s, k.season, k.player, k.question); !reflect.DeepEqual(got, want) {
				t.Errorf("run %d, card %v:\n got %+v\nwant %+v", i, k, got, want)
			}
			counts, err := r.s.ReviewIDs(ctx, season, keys(rs...))
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range keys(rs...) {
				if counts[key] != 1 {
					t.Errorf("run %d: %v logged %d times", i, key, counts[key])
				}
			}
		}
	}
}
