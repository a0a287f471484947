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

// TestApplyReviewsNewerWinsWithoutFullLog: a late review would recompute the
// card from its log, but this log holds fewer reviews than the row counts
// (reps 3, two logged reviews): a replay would lose history, so the newer
// state wins, as before release 2.
func TestApplyReviewsNewerWinsWithoutFullLog(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	newSeason(t, s, season)
	newer := review("r2", season, "alice", "q1", 2_000_000, 3)
	older := review("r1", season, "alice", "q1", 1_000_000, 1)
	recomputed := 0
	s.SetOnRecompute(func(srs.Card) { recomputed++ })

	apply(t, s, newer)
	apply(t, s, older) // arrives late, e.g. from another sidecar's queue
	if got := mustCard(t, s, season, "alice", "q1"); !reflect.DeepEqual(got, newer.Card()) {
		t.Errorf("card = %+v, want the newer %+v", got, newer.Card())
	}
	if recomputed != 0 {
		t.Errorf("%d recomputes, want none", recomputed)
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

	counts, err := s.ReviewIDs(ctx, season, keys(batch[0], batch[1], review("r3", season, "alice", "q1", 1, 1),
		review("r2", season, "alice", "q1", 1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[ReviewKey]int{{"alice", "q1", "r1"}: 1, {"alice", "q2", "r2"}: 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("ReviewIDs = %v, want %v", counts, want)
	}
	if got := mustCard(t, s, season, "alice", "q1"); !reflect.DeepEqual(got, batch[0].Card()) {
		t.Errorf("card moved by a replayed id: %+v", got)
	}
	got, ok, err := s.LoggedReview(ctx, season, "alice", "q1", "r1")
	if err != nil || !ok || !reflect.DeepEqual(got, batch[0]) {
		t.Errorf("LoggedReview = %+v, %v, %v; want %+v", got, ok, err, batch[0])
	}
	for _, k := range []ReviewKey{{"alice", "q1", "r9"}, {"alice", "q2", "r1"}, {"bob", "q1", "r1"}} {
		if _, ok, err := s.LoggedReview(ctx, season, k.Player, k.Question, k.ID); ok || err != nil {
			t.Errorf("LoggedReview(%v) = %v, %v; want not found", k, ok, err)
		}
	}
}

// TestApplyReviewsIDsScopedToCard: review ids are unique per card, not per
// season. Bob reusing Alice's id, or Alice reusing it on another question,
// is another review, logged and applied; the same id on the same card in a
// later batch is ignored.
func TestApplyReviewsIDsScopedToCard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	alice := review("same", season, "alice", "q1", 1_000_000, 1)
	bob := review("same", season, "bob", "q1", 2_000_000, 1)
	other := review("same", season, "alice", "q2", 3_000_000, 1)
	apply(t, s, alice)
	apply(t, s, bob, other)
	for _, r := range []srs.Review{alice, bob, other} {
		if got, ok, err := s.LoggedReview(ctx, season, r.Player, r.QuestionID, r.ID); err != nil || !ok || !reflect.DeepEqual(got, r) {
			t.Errorf("LoggedReview(%s/%s) = %+v, %v, %v; want %+v", r.Player, r.QuestionID, got, ok, err, r)
		}
		if c := mustCard(t, s, season, r.Player, r.QuestionID); !reflect.DeepEqual(c, r.Card()) {
			t.Errorf("card %s/%s = %+v, want %+v", r.Player, r.QuestionID, c, r.Card())
		}
	}
	// A later batch repeating Bob's id on Bob's card, with another state: ignored.
	again := then(bob, review("same", season, "bob", "q1", 9_000_000, 2))
	apply(t, s, again)
	if c := mustCard(t, s, season, "bob", "q1"); !reflect.DeepEqual(c, bob.Card()) {
		t.Errorf("bob's card moved by a repeated id: %+v", c)
	}
	counts, err := s.ReviewIDs(ctx, season, keys(alice, bob, other))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys(alice, bob, other) {
		if counts[k] != 1 {
			t.Errorf("%v logged %d times", k, counts[k])
		}
	}
}

func TestApplyReviewsSameCardInOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	r1 := review("r1", season, "bob", "q1", 1_000_000, 1)
	r2 := then(r1, review("r2", season, "bob", "q1", 2_000_000, 2))
	r3 := then(r2, review("r3", season, "bob", "q1", 3_000_000, 3))
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

// TestApplyReviewsContinuesRow: reviews that continue the card row (each
// built on the row's state: Before.LastID is the row's last_id, and not
// older) move every column to the newest, whether it is later or at the same
// instant with more reps; one that does not continue it is not folded in.
func TestApplyReviewsContinuesRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)

	base := review("r1", season, "carol", "q1", 1_000_000, 5)
	sameReps := then(base, review("r2", season, "carol", "q1", 2_000_000, 5))
	sameReps.After.Due, sameReps.After.Stability, sameReps.Subject = 7_777_777, 42, "history"
	moreReps := then(sameReps, review("r3", season, "carol", "q1", 2_000_000, 6))
	olderMoreReps := then(moreReps, review("r4", season, "carol", "q1", 1_500_000, 99))

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
	// Older than the row: not a continuation. The log (3 reviews) is shorter
	// than the row's reps (6), so it is not replayed either: the row stays.
	s.DB().ExecContext(ctx, "UPDATE cards SET updated_at = '2001-01-01' WHERE player = 'carol'")
	apply(t, s, olderMoreReps)
	if got := mustCard(t, s, season, "carol", "q1"); !reflect.DeepEqual(got, moreReps.Card()) {
		t.Errorf("older last_review with more reps moved the card: %+v", got)
	}
	s.DB().QueryRowContext(ctx, "SELECT updated_at FROM cards WHERE player = 'carol'").Scan(&updated)
	if updated.Year() != 2001 {
		t.Errorf("updated_at moved by an older review: %v", updated)
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
	badGrade := review("bg", season, "dave", "q5", 1_000_000, 1)
	badGrade.Grade = 5

	batch := []srs.Review{noPartition, ok1, unknown, invalid, badText, ok2, tooLong, nan, noID, noPartition, badGrade}
	rejected := apply(t, s, batch...)
	if want := []int{0, 2, 3, 4, 6, 7, 8, 9, 10}; !slices.Equal(rejected, want) {
		t.Errorf("rejected = %v, want %v", rejected, want)
	}
	counts, err := s.ReviewIDs(ctx, season, keys(ok1, ok2, badText, tooLong, nan, noID, badGrade))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[ReviewKey]int{{"dave", "q1", "ok1"}: 1, {"dave", "q2", "ok2"}: 1}; !reflect.DeepEqual(counts, want) {
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
	for i := range 200 {
		id := fmt.Sprintf("r%03d", i)
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
	counts, err := s.ReviewIDs(ctx, season, keys(batch...))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys(batch...) {
		if counts[k] != 1 {
			t.Errorf("%v logged %d times", k, counts[k])
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
			// 10,000 players × 50 questions: new cards at first, then updates,
			// each built on the card's last review (n - 500,000).
			batch[i] = review(fmt.Sprintf("r%d", n), season, fmt.Sprintf("player%d", n%10_000),
				fmt.Sprintf("q%d", n/10_000%50), int64(1_000_000+n), n/500_000+1)
			if n > 500_000 {
				batch[i].Before.LastID = srs.ReviewHash(fmt.Sprintf("r%d", n-500_000))
			}
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
		r.Before.LastID, r.Before.Recall, r.After.Recall = math.MaxUint64-uint64(i), f/3, f/5
		r.After.Due, r.DurationMS, r.ElapsedDays = math.MaxInt64, math.MinInt64, math.MinInt32
		r.Grade, r.Player, r.Subject, r.Sidecar = srs.Easy, "gïna 🙂", "mäth's \"quoted\" \\ `x`", strings.Repeat("é", maxText)
		batch = append(batch, r)
	}
	apply(t, s, batch...)
	for _, want := range batch {
		got, ok, err := s.LoggedReview(ctx, season, want.Player, want.QuestionID, want.ID)
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

// TestApplyReviewsPreparedMatchesInterpolated applies the same batches
// through server-side prepared statements of small sizes (so that these
// batches use them, remainders included) and through interpolation only:
// cards and logs come out the same, bit for bit. The batches cover new
// cards, in-order reviews, a late review that replays its card, awkward
// floats, and batches drained again wholly or in part (the log INSERT
// finds them logged and the batch runs again with the log read first).
func TestApplyReviewsPreparedMatchesInterpolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	interp, prep := newStore(t), newStore(t)
	interp.chunks, prep.chunks = nil, []int{8, 3}
	var batches [][]srs.Review
	var first []srs.Review
	for i := range 40 {
		r := review(fmt.Sprintf("a%02d", i), season, fmt.Sprintf("p%d", i%5), fmt.Sprintf("q%d", i), 1_000_000+int64(i), 1)
		r.After.Stability, r.After.Difficulty = 1.0/3+float64(i), -0.0
		r.Before.LastID, r.After.Recall = math.MaxUint64-uint64(i), 5e-324
		first = append(first, r)
	}
	batches = append(batches, first)
	var second []srs.Review
	for i, prev := range first[:30] {
		second = append(second, then(prev, review(fmt.Sprintf("b%02d", i), season, prev.Player, prev.QuestionID, 2_000_000+int64(i), 2)))
	}
	batches = append(batches, second, second) // drained again: all logged
	late := review("late", season, first[0].Player, first[0].QuestionID, 1_500_000, 2)
	batches = append(batches, append([]srs.Review{late}, second[:10]...)) // partly logged, one replay
	for _, s := range []*Store{interp, prep} {
		newSeason(t, s, season)
		for _, b := range batches {
			if rejected, err := s.ApplyReviews(ctx, b); err != nil || rejected != nil {
				t.Fatalf("ApplyReviews = %v, %v", rejected, err)
			}
		}
	}
	for p := range 5 {
		player := fmt.Sprintf("p%d", p)
		want, err := interp.UserCards(ctx, season, player)
		if err != nil {
			t.Fatal(err)
		}
		got, err := prep.UserCards(ctx, season, player)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 8 || !reflect.DeepEqual(got, want) {
			t.Errorf("cards of %s:\n got %+v\nwant %+v", player, got, want)
		}
		for _, c := range want {
			wl, err := interp.ReviewLog(ctx, season, player, c.QuestionID)
			if err != nil {
				t.Fatal(err)
			}
			gl, err := prep.ReviewLog(ctx, season, player, c.QuestionID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gl, wl) {
				t.Errorf("log of %s/%s:\n got %+v\nwant %+v", player, c.QuestionID, gl, wl)
			}
		}
	}
	c := mustCard(t, prep, season, first[0].Player, first[0].QuestionID)
	if c.LastID != srs.ReviewHash("b00") || c.Reps != 3 {
		t.Errorf("replayed card = %+v, want reps 3 after b00", c)
	}
	if math.Float64bits(mustCard(t, prep, season, first[39].Player, first[39].QuestionID).Difficulty) != math.Float64bits(-0.0) &&
		math.Float64bits(mustCard(t, interp, season, first[39].Player, first[39].QuestionID).Difficulty) == math.Float64bits(-0.0) {
		t.Error("-0 difficulty lost through the prepared path")
	}
}
