package mariadb

import (
	"context"
	"fmt"
	"testing"
)

// TestReviewLogPage pages through a season's log at several page sizes and
// wants every row once, in (player, question, review id) order, and nothing
// of another season.
func TestReviewLogPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	newSeason(t, s, "SEASON-2027")
	var want []ReviewKey
	for p := range 3 {
		for q := range 4 {
			player, question := fmt.Sprintf("p%d", p), fmt.Sprintf("q%d", q)
			prev := review("r0", season, player, question, 1000, 1)
			apply(t, s, prev)
			want = append(want, ReviewKey{player, question, "r0"})
			for k := 1; k <= p+q; k++ {
				r := then(prev, review(fmt.Sprintf("r%d", k), season, player, question, int64(1000+k*86_400_000), k+1))
				apply(t, s, r)
				want = append(want, ReviewKey{player, question, fmt.Sprintf("r%d", k)})
				prev = r
			}
		}
	}
	apply(t, s, review("other", "SEASON-2027", "p0", "q0", 1000, 1))
	if n, err := s.CountReviewLog(ctx, season); err != nil || n != int64(len(want)) {
		t.Fatalf("CountReviewLog = %d, %v; want %d", n, err, len(want))
	}
	for _, limit := range []int{1, 5, len(want), 1000} {
		var (
			got   []ReviewKey
			after ReviewKey
		)
		for {
			page, err := s.ReviewLogPage(ctx, season, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				got = append(got, ReviewKey{e.Player, e.Question, e.ID})
				if e.Grade != 3 || e.ElapsedDays != 3 || e.AfterReps < 1 {
					t.Errorf("row %+v", e)
				}
			}
			if len(page) < limit {
				break
			}
			last := page[len(page)-1]
			after = ReviewKey{last.Player, last.Question, last.ID}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("limit %d:\n got %v\nwant %v", limit, got, want)
		}
	}
	if _, err := s.ReviewLogPage(ctx, "bad", ReviewKey{}, 10); err == nil {
		t.Error("ReviewLogPage of an invalid season name: no error")
	}
}
