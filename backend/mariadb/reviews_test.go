package mariadb

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

const season = "SEASON-2026"

func TestApplyReviewsNewerWins(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	newSeason(t, s, season)
	newer := review("r2", season, "alice", "q1", 2_000_000, 2)
	older := review("r1", season, "alice", "q1", 1_000_000, 1)

	apply(t, s, newer)
	apply(t, s, older) // arrives late, e.g. from another sidecar's queue
	if got := mustCard(t, s, season, "alice", "q1"); !reflect.DeepEqual(got, newer.Card()) {
		t.Errorf("card = %+v, want the newer %+v", got, newer.Card())
	}
	// Both are acknowledged reviews, so both are logged.
	if log, err := s.ReviewLog(context.Background(), season, "alice", "q1"); err != nil || len(log) != 2 ||
		log[0].ID != "r1" || log[1].ID != "r2" {
		t.Errorf("ReviewLog = %+v, %v; want r1, r2", log, err)
	}
}

func TestApplyReviewsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	batch := []srs.Review{
		review("r1", season, "alice", "q1", 1_000_000, 1),
		review("r2", season, "alice", "q2", 1_000_000, 1),
		review("r1", season, "alice", "q1", 1_000_000, 1), // repeated inside the batch
	}
	apply(t, s, batch...)
	apply(t, s, batch...)

	// A replay of r1 carrying a newer state must not be applied either.
	replay := review("r1", season, "alice", "q1", 9_000_000, 9)
	apply(t, s, replay)

	counts, err := s.ReviewIDs(ctx, season, []string{"r1", "r2", "r3"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"r1": 1, "r2": 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("ReviewIDs = %v, want %v", counts, want)
	}
	if got := mustCard(t, s, season, "alice", "q1"); !reflect.DeepEqual(got, batch[0].Card()) {
		t.Errorf("card moved by a replayed id: %+v", got)
	}
	got, ok, err := s.LoggedReview(ctx, season, "r1")
	if err != nil || !ok || !reflect.DeepEqual(got, batch[0]) {
		t.Errorf("LoggedReview = %+v, %v, %v; want %+v", got, ok, err, batch[0])
	}
	if _, ok, err := s.LoggedReview(ctx, season, "r9"); ok || err != nil {
		t.Errorf("LoggedReview(missing) = %v, %v", ok, err)
	}
}

func TestApplyReviewsSameCardInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	r1 := review("r1", season, "bob", "q1", 1_000_000, 1)
	r2 := review("r2", season, "bob", "q1", 2_000_000, 2)
	r3 := review("r3", season, "bob", "q1", 3_000_000, 3)
	r3.Subject = "physics" // the newest review's labels win too

	apply(t, s, r2, r3, r1)
	if got := mustCard(t, s, season, "bob", "q1"); !reflect.DeepEqual(got, r3.Card()) {
		t.Errorf("card = %+v, want %+v", got, r3.Card())
	}
	log, err := s.ReviewLog(ctx, season, "bob", "q1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []srs.Review{r1, r2, r3}; !reflect.DeepEqual(log, want) {
		t.Errorf("ReviewLog =\n%+v\nwant\n%+v", log, want)
	}
}

// TestUpsertAssignmentOrder is the regression test for MariaDB's left-to-right
// evaluation of ON DUPLICATE KEY UPDATE: a newer review with the same reps
// (or the same last_review with more reps) must move every column.
func TestUpsertAssignmentOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)

	base := review("r1", season, "carol", "q1", 1_000_000, 5)
	sameReps := review("r2", season, "carol", "q1", 2_000_000, 5)
	sameReps.After.Due, sameReps.After.Stability, sameReps.Subject = 7_777_777, 42, "history"
	moreReps := review("r3", season, "carol", "q1", 2_000_000, 6)
	olderMoreReps := review("r4", season, "carol", "q1", 1_500_000, 99)

	apply(t, s, base)
	s.DB().ExecContext(ctx, "UPDATE cards SET updated_at = '2001-01-01' WHERE player = 'carol'")
	apply(t, s, sameReps)
	if got := mustCard(t, s, season, "carol", "q1"); !reflect.DeepEqual(got, sameReps.Card()) {
		t.Errorf("newer last_review, same reps:\n got %+v\nwant %+v", got, sameReps.Card())
	}
	var updated time.Time
	s.DB().QueryRowContext(ctx, "SELECT updated_at FROM cards WHERE player = 'carol'").Scan(&updated)
	if updated.Year() == 2001 {
		t.Errorf("updated_at not moved by a newer review")
	}
	apply(t, s, moreReps)
	if got := mustCard(t, s, season, "carol", "q1"); !reflect.DeepEqual(got, moreReps.Card()) {
		t.Errorf("same last_review, more reps:\n got %+v\nwant %+v", got, moreReps.Card())
	}
	s.DB().ExecContext(ctx, "UPDATE cards SET updated_at = '2001-01-01' WHERE player = 'carol'")
	apply(t, s, olderMoreReps)
	if got := mustCard(t, s, season, "carol", "q1"); !reflect.DeepEqual(got, moreReps.Card()) {
		t.Errorf("older last_review with more reps moved the card: %+v", got)
	}
	s.DB().QueryRowContext(ctx, "SELECT updated_at FROM cards WHERE player = 'carol'").Scan(&updated)
	if updated.Year() != 2001 {
		t.Errorf("updated_at moved by an older review: %v", updated)
	}

	// The hazard is real: assigning last_review first leaves due stale.
	_, err := s.DB().ExecContext(ctx, `INSERT INTO cards (`+cardColumns+`)
		VALUES (?, 'carol', 'q1', '', '', '', 2, 0, 1, 5, 123, 3000000, 6, 0)
		ON DUPLICATE KEY UPDATE
		last_review = IF(VALUES(last_review) > last_review OR (VALUES(last_review) = last_review AND VALUES(reps) > reps), VALUES(last_review), last_review),
		due = IF(VALUES(last_review) > last_review OR (VALUES(last_review) = last_review AND VALUES(reps) > reps), VALUES(due), due)`, season)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustCard(t, s, season, "carol", "q1"); got.LastReview != 3_000_000 || got.Due == 123 {
		t.Errorf("expected the wrong order to update last_review but not due; got %+v", got.Schedule)
	}
}

func TestApplyReviewsRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	// A season row whose partitions are missing (as after an archive): MariaDB error 1526.
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO seasons (name, created_at, scheduler)
		VALUES ('SEASON-2025', UTC_TIMESTAMP(3), '{}')`); err != nil {
		t.Fatal(err)
	}
	ok1 := review("ok1", season, "dave", "q1", 1_000_000, 1)
	ok2 := review("ok2", season, "dave", "q2", 1_000_000, 1)
	noPartition := review("np", "SEASON-2025", "dave", "q1", 1_000_000, 1)
	unknown := review("un", "SEASON-2030", "dave", "q1", 1_000_000, 1)
	invalid := review("iv", "season-2026", "dave", "q1", 1_000_000, 1)
	badText := review("bt", season, "dave", "q\xff", 1_000_000, 1)
	tooLong := review("tl", season, "dave", strings.Repeat("é", maxText+1), 1_000_000, 1)
	nan := review("nan", season, "dave", "q3", 1_000_000, 1)
	nan.After.Stability = math.NaN()
	noID := review("", season, "dave", "q4", 1_000_000, 1)

	batch := []srs.Review{noPartition, ok1, unknown, invalid, badText, ok2, tooLong, nan, noID, noPartition}
	rejected := apply(t, s, batch...)
	if want := []int{0, 2, 3, 4, 6, 7, 8, 9}; !slices.Equal(rejected, want) {
		t.Errorf("rejected = %v, want %v", rejected, want)
	}
	counts, err := s.ReviewIDs(ctx, season, []string{"ok1", "ok2", "bt", "tl", "nan", ""})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"ok1": 1, "ok2": 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("logged = %v, want %v", counts, want)
	}
	if n, err := s.CountCards(ctx, season); err != nil || n != 2 {
		t.Errorf("CountCards = %d, %v; want 2", n, err)
	}
	// A batch of nothing but rejections commits nothing and is no error.
	if rejected := apply(t, s, noPartition); !slices.Equal(rejected, []int{0}) {
		t.Errorf("rejected = %v", rejected)
	}
	if rejected := apply(t, s); rejected != nil {
		t.Errorf("empty batch rejected = %v", rejected)
	}
}

// TestApplyReviewsConcurrentDrainers applies the same batch from several
// goroutines at once (two sidecars replaying one id): every call succeeds and
// each id is logged once.
func TestApplyReviewsConcurrentDrainers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	var batch []srs.Review
	var ids []string
	for i := range 200 {
		id := fmt.Sprintf("r%03d", i)
		ids = append(ids, id)
		batch = append(batch, review(id, season, fmt.Sprintf("p%d", i%7), fmt.Sprintf("q%d", i%13), int64(1_000_000+i), i+1))
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if rejected, err := s.ApplyReviews(ctx, batch); err != nil || rejected != nil {
				t.Errorf("ApplyReviews = %v, %v", rejected, err)
			}
		})
	}
	wg.Wait()
	counts, err := s.ReviewIDs(ctx, season, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if counts[id] != 1 {
			t.Errorf("%s logged %d times", id, counts[id])
		}
	}
}

func BenchmarkApplyReviews(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	newSeason(b, s, season)
	const batchSize = 500
	n := 0
	for b.Loop() {
		batch := make([]srs.Review, batchSize)
		for i := range batch {
			n++
			// 10,000 players × 50 questions: new cards at first, then updates.
			batch[i] = review(fmt.Sprintf("r%d", n), season, fmt.Sprintf("player%d", n%10_000),
				fmt.Sprintf("q%d", n/10_000%50), int64(1_000_000+n), n/10_000+1)
		}
		if _, err := s.ApplyReviews(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
}

// TestReviewRoundTripExact stores awkward values and reads them back bit for
// bit: the log must rebuild a review exactly.
func TestReviewRoundTripExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	floats := []float64{0.1 + 0.2, 1.0 / 3, 1e-300, 5e-324, 1.2345678901234567e20, math.MaxFloat64, -0.0, 36500.5}
	var batch []srs.Review
	for i, f := range floats {
		r := review(fmt.Sprintf("f%d", i), season, "gina", fmt.Sprintf("q%d", i), 1_700_000_000_123+int64(i), math.MaxInt32)
		r.After.Stability, r.After.Difficulty = f, -f
		r.Before.Stability, r.Before.Difficulty = f/7, f*0.9
		r.Before.Step, r.After.Step = math.MaxInt16, math.MinInt16
		r.After.Due, r.DurationMS, r.ElapsedDays = math.MaxInt64, math.MinInt64, math.MinInt32
		r.Grade, r.Player, r.Subject, r.Sidecar = srs.Easy, "gïna 🙂", "mäth's \"quoted\" \\ `x`", strings.Repeat("é", maxText)
		batch = append(batch, r)
	}
	apply(t, s, batch...)
	for _, want := range batch {
		got, ok, err := s.LoggedReview(ctx, season, want.ID)
		if err != nil || !ok {
			t.Fatalf("LoggedReview(%s) = %v, %v", want.ID, ok, err)
		}
		if !reflect.DeepEqual(got, want) || math.Float64bits(got.After.Stability) != math.Float64bits(want.After.Stability) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", want.ID, got, want)
		}
		if c := mustCard(t, s, season, want.Player, want.QuestionID); !reflect.DeepEqual(c, want.Card()) {
			t.Errorf("card of %s:\n got %+v\nwant %+v", want.ID, c, want.Card())
		}
	}
}
