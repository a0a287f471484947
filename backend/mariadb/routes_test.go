package mariadb

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// counter is a slog handler counting the records of one message.
type counter struct {
	msg string
	n   atomic.Int64
}

func (c *counter) Enabled(context.Context, slog.Level) bool { return true }
func (c *counter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.n.Add(1)
	}
	return nil
}
func (c *counter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *counter) WithGroup(string) slog.Handler      { return c }

// openStore opens another store on dsn, closed after the test.
func openStore(tb testing.TB, dsn string, logger *slog.Logger) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// archivedLog returns how many times each id appears in the season's
// archived review log.
func archivedLog(tb testing.TB, s *Store, season string) map[string]int {
	tb.Helper()
	table, err := partitions.ArchiveTable("review_log", season)
	if err != nil {
		tb.Fatal(err)
	}
	rows, err := s.DB().QueryContext(context.Background(), "SELECT review_id, COUNT(*) FROM "+table+
		" WHERE season = ? GROUP BY review_id", season)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			tb.Fatal(err)
		}
		out[id] = n
	}
	return out
}

func mustArchivedCard(tb testing.TB, s *Store, season, player, question string) srs.Card {
	tb.Helper()
	c, ok, err := s.ArchivedCard(context.Background(), season, player, question)
	if err != nil || !ok {
		tb.Fatalf("ArchivedCard(%s, %s, %s) = %v, %v", season, player, question, ok, err)
	}
	return c
}

// TestApplyReviewsArchivedSeason: late entries of an archived season land in
// its archive tables, idempotent and newer-wins; after a purge they are
// rejected; a live season in the same batch is unaffected throughout.
func TestApplyReviewsArchivedSeason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const old, cur = "SEASON-2025", "SEASON-2026"
	newSeason(t, s, old)
	newSeason(t, s, cur)
	r1 := review("r1", old, "alice", "q1", 1_000_000, 1)
	r2 := review("r2", old, "alice", "q2", 2_000_000, 2)
	apply(t, s, r1, r2)

	// Archiving, partition still there: the live tables, as usual.
	markSeason(t, s, old, srs.ArchiveInProgress)
	r3 := review("r3", old, "bob", "q1", 1_500_000, 1)
	if rejected := apply(t, s, r3); rejected != nil {
		t.Fatalf("rejected = %v", rejected)
	}
	if n, err := s.CountCards(ctx, old); err != nil || n != 3 {
		t.Fatalf("live cards while archiving = %d, %v; want 3", n, err)
	}
	if _, err := s.ArchiveSeason(ctx, old); err != nil {
		t.Fatal(err)
	}
	markSeason(t, s, old, srs.ArchiveDone)

	newer := then(r1, review("late1", old, "alice", "q1", 3_000_000, 3))
	// Older than the archived card: the card is recomputed from its archived
	// log (r2 and late2) with the season's scheduler.
	older := review("late2", old, "alice", "q2", 1_500_000, 1)
	se, err := s.Season(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := fsrs.New(se.Scheduler)
	if err != nil {
		t.Fatal(err)
	}
	recomputed := replayed(sched, []srs.Review{r2, older})
	replay := review("r1", old, "alice", "q1", 9_000_000, 9) // a replayed id: never applied again
	fresh := review("late3", old, "carol", "q1", 3_000_000, 1)
	live := review("c1", cur, "alice", "q1", 3_000_000, 1)
	batch := []srs.Review{newer, older, replay, fresh, live}
	for range 2 { // the second run is a replay of the whole batch
		if rejected := apply(t, s, batch...); rejected != nil {
			t.Fatalf("rejected = %v", rejected)
		}
		if c := mustArchivedCard(t, s, old, "alice", "q1"); !reflect.DeepEqual(c, newer.Card()) {
			t.Errorf("alice/q1 = %+v, want the newer %+v", c, newer.Card())
		}
		if c := mustArchivedCard(t, s, old, "alice", "q2"); !reflect.DeepEqual(c, recomputed) {
			t.Errorf("alice/q2 = %+v, want the replay %+v", c, recomputed)
		}
		if c := mustArchivedCard(t, s, old, "carol", "q1"); !reflect.DeepEqual(c, fresh.Card()) {
			t.Errorf("carol/q1 = %+v", c)
		}
		want := map[string]int{"r1": 1, "r2": 1, "r3": 1, "late1": 1, "late2": 1, "late3": 1}
		if got := archivedLog(t, s, old); !reflect.DeepEqual(got, want) {
			t.Errorf("archived log = %v, want %v", got, want)
		}
		if cards, logRows, ok, err := s.ArchiveInfo(ctx, old); err != nil || !ok || cards != 4 || logRows != 6 {
			t.Errorf("ArchiveInfo = %d, %d, %v, %v; want 4, 6", cards, logRows, ok, err)
		}
		if c := mustCard(t, s, cur, "alice", "q1"); !reflect.DeepEqual(c, live.Card()) {
			t.Errorf("live season card = %+v", c)
		}
	}
	if n, err := s.CountCards(ctx, old); err != nil || n != 0 {
		t.Errorf("live cards of the archived season = %d, %v", n, err)
	}

	// Purged: nowhere to go, rejected (dead letter); the live season goes on.
	if err := s.PurgeArchive(ctx, old); err != nil {
		t.Fatal(err)
	}
	markSeason(t, s, old, srs.ArchivePurged)
	live2 := review("c2", cur, "bob", "q1", 3_000_000, 1)
	if rejected := apply(t, s, review("late4", old, "dave", "q1", 4_000_000, 1), live2); !slices.Equal(rejected, []int{0}) {
		t.Errorf("rejected after purge = %v, want [0]", rejected)
	}
	if c := mustCard(t, s, cur, "bob", "q1"); !reflect.DeepEqual(c, live2.Card()) {
		t.Errorf("live season card = %+v", c)
	}
	// Marked archived but purged (the engine's mark came after the drop).
	markSeason(t, s, old, srs.ArchiveDone)
	if rejected := apply(t, s, review("late5", old, "dave", "q1", 4_000_000, 1)); !slices.Equal(rejected, []int{0}) {
		t.Errorf("rejected after purge = %v, want [0]", rejected)
	}
}

// TestApplyReviewsRoutesAcrossSidecars: the routes one store caches go stale
// when another store archives or purges; its next batch finds out from the
// errors (1526, 1146) and reroutes instead of failing.
func TestApplyReviewsRoutesAcrossSidecars(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	reroutes := &counter{msg: "apply reviews: rerouting"}
	s1 := openStore(t, dsn, slog.New(reroutes))
	s2 := openStore(t, dsn, nil)
	const season = "SEASON-2025"
	newSeason(t, s1, season)
	markSeason(t, s1, season, srs.ArchiveInProgress)
	apply(t, s1, review("a", season, "alice", "q1", 1_000_000, 1)) // s1 caches "live tables"

	if _, err := s2.ArchiveSeason(ctx, season); err != nil {
		t.Fatal(err)
	}
	b := then(review("a", season, "alice", "q1", 1_000_000, 1), review("b", season, "alice", "q1", 2_000_000, 2))
	if rejected := apply(t, s1, b); rejected != nil {
		t.Fatalf("rejected = %v", rejected)
	}
	if c := mustArchivedCard(t, s1, season, "alice", "q1"); !reflect.DeepEqual(c, b.Card()) {
		t.Errorf("archived card = %+v, want %+v", c, b.Card())
	}
	if got := reroutes.n.Load(); got != 1 {
		t.Errorf("%d reroutes after the archive, want 1", got)
	}

	// s1 now caches the archive tables; s2 drops them.
	apply(t, s1, review("c", season, "bob", "q1", 2_000_000, 1))
	if err := s2.PurgeArchive(ctx, season); err != nil {
		t.Fatal(err)
	}
	if rejected := apply(t, s1, review("d", season, "alice", "q1", 3_000_000, 3)); !slices.Equal(rejected, []int{0}) {
		t.Errorf("rejected after purge = %v, want [0]", rejected)
	}
	if got := reroutes.n.Load(); got != 2 {
		t.Errorf("%d reroutes after the purge, want 2", got)
	}
}

// waitProcess waits until a session of the schema runs a statement matching
// like in the given state (as information_schema.PROCESSLIST shows it).
func waitProcess(tb testing.TB, s *Store, like, state string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		err := s.DB().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM information_schema.PROCESSLIST
			WHERE DB = ? AND INFO LIKE ? AND STATE = ?`, s.Schema(), like, state).Scan(&n)
		if err != nil {
			tb.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no session runs %q in state %q", like, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestApplyReviewsPartitionVanishesMidBatch stages the race exactly: the
// batch resolves its season as live, the move of the cards partition waits
// for a reader's metadata lock, the batch's lock of its card rows queues
// behind the move, the reader ends, the move runs, the lock finds no row and
// the card INSERT fails with 1526. The batch must be rerouted to the
// archive, not rejected.
func TestApplyReviewsPartitionVanishesMidBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	reroutes := &counter{msg: "apply reviews: rerouting"}
	s := openStore(t, dsn, slog.New(reroutes))
	const season = "SEASON-2025"
	newSeason(t, s, season)
	seed(t, s, season, 100)
	markSeason(t, s, season, srs.ArchiveInProgress)

	reader, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback()
	var n int
	if err := reader.QueryRowContext(ctx, "SELECT COUNT(*) FROM cards WHERE season = ?", season).Scan(&n); err != nil {
		t.Fatal(err)
	}

	archived := make(chan error, 1)
	go func() {
		_, err := s.ArchiveSeason(ctx, season)
		archived <- err
	}()
	waitProcess(t, s, "ALTER TABLE%`cards` CONVERT PARTITION%", "Waiting for table metadata lock")

	r := review("mid", season, "zoe", "q1", 5_000_000, 1)
	applied := make(chan error, 1)
	go func() {
		rejected, err := s.ApplyReviews(ctx, []srs.Review{r})
		if err == nil && rejected != nil {
			err = fmt.Errorf("rejected %v", rejected)
		}
		applied <- err
	}()
	waitProcess(t, s, "SELECT %FROM `cards`%FOR UPDATE", "Waiting for table metadata lock")
	if err := reader.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-archived; err != nil {
		t.Fatalf("ArchiveSeason: %v", err)
	}
	if err := <-applied; err != nil {
		t.Fatalf("ApplyReviews: %v", err)
	}
	if reroutes.n.Load() == 0 {
		t.Error("the batch was not rerouted")
	}
	if c := mustArchivedCard(t, s, season, "zoe", "q1"); !reflect.DeepEqual(c, r.Card()) {
		t.Errorf("archived card = %+v, want %+v", c, r.Card())
	}
	if got := archivedLog(t, s, season)["mid"]; got != 1 {
		t.Errorf("review logged %d times in the archive, want 1", got)
	}
	if cards, logRows, ok, err := s.ArchiveInfo(ctx, season); err != nil || !ok || cards != 101 || logRows != 101 {
		t.Errorf("ArchiveInfo = %d, %d, %v, %v; want 101, 101", cards, logRows, ok, err)
	}
}

// TestApplyReviewsConcurrentArchive archives a season while drainers keep
// applying batches of it and of a live season: no batch fails or loses a
// review, every id ends up logged once, in the archive or in the live log,
// and every archived card is the newest of its reviews.
func TestApplyReviewsConcurrentArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	reroutes := &counter{msg: "apply reviews: rerouting"}
	s := openStore(t, dsn, slog.New(reroutes))
	const old, cur = "SEASON-2025", "SEASON-2026"
	newSeason(t, s, old)
	newSeason(t, s, cur)
	seed(t, s, old, 5000)
	markSeason(t, s, old, srs.ArchiveInProgress)

	const drainers, batchSize, minBatches = 4, 50, 5
	var (
		clock    atomic.Int64 // unique review times, so "newest" is unambiguous
		lasts    = make([]map[cardKey]srs.Review, drainers)
		mu       sync.Mutex
		reviews  []srs.Review
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		warm     sync.WaitGroup // each drainer has applied minBatches before the archive
		after    sync.WaitGroup // … and minBatches more after it
		archived = make(chan struct{})
	)
	warm.Add(drainers)
	after.Add(drainers)
	for d := range drainers {
		lasts[d] = map[cardKey]srs.Review{}
		wg.Go(func() {
			post := 0 // batches finished after the archive
			for b := 0; ; b++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := make([]srs.Review, batchSize)
				for i := range batch {
					season := old
					if i%5 == 0 {
						season = cur
					}
					at := 10_000_000 + clock.Add(1)
					// Each drainer has cards of its own (a card's reviews
					// come from one queue, in order, each built on the one
					// before); the merging of queues is TestReplay….
					r := review(fmt.Sprintf("d%d-b%d-%d", d, b, i), season,
						fmt.Sprintf("d%d-p%d", d, (b*batchSize+i)%20), fmt.Sprintf("q%d", i%7), at, int(at%1000)+1)
					k := cardKeyOf(r)
					if prev, ok := lasts[d][k]; ok {
						r = then(prev, r)
					}
					lasts[d][k] = r
					batch[i] = r
				}
				rejected, err := s.ApplyReviews(ctx, batch)
				if err != nil || rejected != nil {
					t.Errorf("drainer %d batch %d: rejected %v, %v", d, b, rejected, err)
					return
				}
				mu.Lock()
				reviews = append(reviews, batch...)
				mu.Unlock()
				if b == minBatches-1 {
					warm.Done()
				}
				select {
				case <-archived:
					if post++; post == minBatches {
						after.Done()
						<-stop
						return
					}
				default:
				}
			}
		})
	}
	warm.Wait()
	res, err := s.ArchiveSeason(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	markSeason(t, s, old, srs.ArchiveDone)
	close(archived)
	after.Wait()
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("archived %d cards, %d log rows in %.4f s while %d drainers applied %d reviews; %d reroutes",
		res.Cards, res.LogRows, res.MoveSeconds, drainers, len(reviews), reroutes.n.Load())

	// Every review is logged exactly once where its season's log lives now.
	logOld := archivedLog(t, s, old)
	var curIDs []srs.Review
	newest := map[cardKey]srs.Review{}
	for _, r := range reviews {
		k := cardKey{r.Season, r.Player, r.QuestionID}
		if n, ok := newest[k]; !ok || r.After.NewerThan(n.After) {
			newest[k] = r
		}
		if r.Season == cur {
			curIDs = append(curIDs, r)
		} else if logOld[r.ID] != 1 {
			t.Errorf("%s logged %d times in the archive", r.ID, logOld[r.ID])
		}
	}
	counts, err := s.ReviewIDs(ctx, cur, keys(curIDs...))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys(curIDs...) {
		if counts[k] != 1 {
			t.Errorf("%v logged %d times", k, counts[k])
		}
	}
	for k, r := range newest {
		var c srs.Card
		if k.season == old {
			c = mustArchivedCard(t, s, old, k.player, k.question)
		} else {
			c = mustCard(t, s, cur, k.player, k.question)
		}
		if !reflect.DeepEqual(c, r.Card()) {
			t.Errorf("card %v = %+v, want %+v", k, c.Schedule, r.After)
		}
	}
	if want := 5000 + len(reviews) - len(curIDs); len(logOld) != want {
		t.Errorf("archived log holds %d ids, want %d", len(logOld), want)
	}
	if _, logRows, _, err := s.ArchiveInfo(ctx, old); err != nil || logRows != int64(len(logOld)) {
		t.Errorf("archived log rows = %d, %v; want %d", logRows, err, len(logOld))
	}
}
