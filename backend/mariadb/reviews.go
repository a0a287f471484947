package mariadb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// maxText is the length in characters of the VARCHAR(191) columns.
const maxText = 191

// chunkRows bounds the rows of one multi-row statement: 1000 × 31 placeholders
// stays under the 65535 a server-side prepared statement allows, should the
// driver ever fall back from client-side interpolation.
const chunkRows = 1000

// maxAttempts bounds the transaction retries after a deadlock, a lock wait
// timeout, or a review id logged concurrently by another drainer.
const maxAttempts = 4

// logColumns are the columns of a review-log row, in the order appendLog
// writes them and scanReview reads them. The After schedule has no hash
// column: After.LastID is always srs.ReviewHash(review_id). recall is
// After.Recall, before_recall Before.Recall.
const logColumns = `season, review_id, player, question_id, grade, reviewed_at, elapsed_days,
	duration_ms, subject, topic, stage,
	before_state, before_step, before_stability, before_difficulty, before_due,
	before_last_review, before_reps, before_lapses, before_review_hash, before_recall,
	after_state, after_step, after_stability, after_difficulty, after_due,
	after_last_review, after_reps, after_lapses, recall, sidecar`

// logWidth is the number of logColumns.
const logWidth = 31

var logPlaceholders = group(logWidth)

// group returns one row of n placeholders: "(?,?,…)".
func group(n int) string { return "(" + placeholders("?", n) + ")" }

func appendSchedule(args []any, s srs.Schedule) []any {
	return append(args, s.State, s.Step, s.Stability, s.Difficulty, s.Due, s.LastReview, s.Reps, s.Lapses)
}

func appendLog(args []any, r srs.Review) []any {
	args = append(args, r.Season, r.ID, r.Player, r.QuestionID, r.Grade, r.ReviewedAt,
		r.ElapsedDays, r.DurationMS, r.Subject, r.Topic, r.Stage)
	args = appendSchedule(args, r.Before)
	args = append(args, r.Before.LastID, r.Before.Recall)
	args = appendSchedule(args, r.After)
	return append(args, r.After.Recall, r.Sidecar)
}

func scanReview(row interface{ Scan(...any) error }) (srs.Review, error) {
	var r srs.Review
	b, a := &r.Before, &r.After
	err := row.Scan(&r.Season, &r.ID, &r.Player, &r.QuestionID, &r.Grade, &r.ReviewedAt,
		&r.ElapsedDays, &r.DurationMS, &r.Subject, &r.Topic, &r.Stage,
		&b.State, &b.Step, &b.Stability, &b.Difficulty, &b.Due, &b.LastReview, &b.Reps, &b.Lapses,
		&b.LastID, &b.Recall,
		&a.State, &a.Step, &a.Stability, &a.Difficulty, &a.Due, &a.LastReview, &a.Reps, &a.Lapses,
		&a.Recall, &r.Sidecar)
	a.LastID = srs.ReviewHash(r.ID)
	return r, err
}

// cardWidth is the number of cardColumns.
const cardWidth = 16

var cardPlaceholders = group(cardWidth)

// replaceCard writes cards into the table its first %s names (cards, or an
// archive table for late entries) whatever their rows hold: ApplyReviews
// has locked those rows and decided their new state.
var replaceCard = func() string {
	var set []string
	for _, col := range strings.Split(cardColumns, ",") {
		col = strings.TrimSpace(col)
		switch col {
		case "season", "player", "question_id":
		default:
			set = append(set, fmt.Sprintf("%s = VALUES(%s)", col, col))
		}
	}
	set = append(set, "updated_at = CURRENT_TIMESTAMP(3)")
	return "INSERT INTO %s (" + cardColumns + ") VALUES %s ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}()

// insertCard writes cards that had no row when ApplyReviews looked: if
// another drainer created one since, the INSERT fails with a duplicate key
// and the batch runs again, now seeing it.
const insertCard = "INSERT INTO %s (" + cardColumns + ") VALUES %s"

func appendCard(args []any, c srs.Card) []any {
	args = append(args, c.Season, c.Player, c.QuestionID, c.Subject, c.Topic, c.Stage)
	args = append(args, c.State, c.Step, c.Stability, c.Difficulty, c.Due, c.LastReview, c.Reps, c.Lapses)
	return append(args, c.LastID, c.Recall)
}

// checkReview refuses a review the database would reject for good (strict
// mode), which would otherwise fail its whole batch on every retry, and one
// a replay could not apply (a grade outside 1–4).
func checkReview(r srs.Review) error {
	if !srs.ValidSeasonName(r.Season) {
		return srs.ErrInvalidSeasonName
	}
	for _, f := range []struct{ name, v string }{
		{"review_id", r.ID}, {"player", r.Player}, {"question_id", r.QuestionID},
		{"subject", r.Subject}, {"topic", r.Topic}, {"stage", r.Stage}, {"sidecar", r.Sidecar},
	} {
		if !utf8.ValidString(f.v) || utf8.RuneCountInString(f.v) > maxText {
			return fmt.Errorf("%s is not UTF-8 of at most %d characters", f.name, maxText)
		}
		if f.v == "" && (f.name == "review_id" || f.name == "player" || f.name == "question_id") {
			return fmt.Errorf("%s is empty", f.name)
		}
	}
	if !r.Grade.Valid() {
		return fmt.Errorf("grade %d not in 1..4", r.Grade)
	}
	if r.ElapsedDays < math.MinInt32 || r.ElapsedDays > math.MaxInt32 {
		return errors.New("elapsed_days out of range")
	}
	for _, s := range []srs.Schedule{r.Before, r.After} {
		switch {
		case s.Step < math.MinInt16 || s.Step > math.MaxInt16:
			return errors.New("step out of range")
		case s.Reps < math.MinInt32 || s.Reps > math.MaxInt32 || s.Lapses < math.MinInt32 || s.Lapses > math.MaxInt32:
			return errors.New("reps or lapses out of range")
		case !finite(s.Stability) || !finite(s.Difficulty) || !finite(s.Recall):
			return errors.New("stability, difficulty or recall not finite")
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// ApplyReviews writes a batch of acknowledged reviews in one transaction per
// shard (below): it logs each review not logged before and moves each card
// to the state its review log gives. It is what the write-behind drainer
// calls.
//
//   - Idempotent by (season, player, question_id, review_id), the log's
//     primary key: a review already in the log, or repeated inside the
//     batch, is skipped entirely (neither logged nor applied), so a replayed
//     id is applied at most once. The same id on another card is another
//     review.
//
//   - Invariant 3 across sidecars (docs/CORE.md §5): each card's new reviews
//     are taken in (reviewed_at, after reps, review_id) order. When they
//     continue the card row (each is not older than the state before it, its
//     Before has that state's FSRS inputs and, when that state's last_id is
//     known, its Before.LastID is that last_id; see continues), the row
//     becomes the last one's After. When they do not (a late review from a
//     sidecar that was killed with undrained entries while others went on,
//     or a fork), the card is recomputed: its whole review log, old rows and
//     new, in that order, is replayed through FSRS with the season's
//     scheduler, and the row becomes the replay. The log rows stay as they
//     were written. Each recomputed card is passed, after the commit, to the
//     function set with SetOnRecompute. A card whose log, new rows included,
//     holds fewer reviews than its row counts (reps: rows loaded without
//     their log, or reviews still undrained in another queue) is not
//     replayed, which would lose history: the newer of row and review wins,
//     as before release 2, and a warning is logged; the missing reviews,
//     older than the row, replay it when they arrive.
//
//   - The card rows a batch touches are locked (SELECT … FOR UPDATE, READ
//     COMMITTED) before anything is decided, so two drainers of one card
//     take turns and the second sees the first's rows.
//
//   - Cost: a batch (or shard) drained for the first time is, after the
//     seasons lookup, three multi-row statements (lock the cards, log the
//     reviews, write the cards), server-side prepared for the sizes of
//     preparedRows; the log is read first only when the log INSERT finds
//     a review logged already (see applyOnce). Measured per row (server
//     thread CPU, batches of 1000, 2026-12-03): lock 11–14 µs, log 14–19,
//     cards upsert 25–29. An UPDATE joined to the batch as a table value
//     constructor, which would replace the lock read and the upsert, took
//     47 against their 37: building the derived table costs more than the
//     read it saves.
//
//   - After.LastID is always srs.ReviewHash(review_id): it is stored so, and
//     the card row's last_review_hash gets it.
//
//   - Late entries of an archived season: when a season's archive_state is
//     archiving or archived and its partition has left a live table, its
//     rows go to the season's archive table instead (partitions.ArchiveTable),
//     with the same rules, in the same transaction. While the partition is
//     still there they go to the live table and the partition move carries
//     them. A partition that vanishes under a batch (an INSERT fails with
//     1526 after the move) or an archive table dropped under it (1146) makes
//     the batch look again where each season's rows live and run again.
//
//   - Permanent rejections: reviews of an unknown season, of a season with
//     neither a partition nor (archiving or archived) an archive table, e.g.
//     a purged one, with a grade outside 1–4, or with values the schema
//     cannot hold are left out and the rest is committed; their batch
//     indices come back in rejected, in ascending order, and are logged.
//
//   - Shards: a batch of at least two shards' worth of reviews (see
//     SetDrainShards) is split by user (season, player) into shards applied
//     as concurrent transactions, each by the rules above; a user's reviews
//     are all in one shard, so shards lock disjoint card rows. One
//     transaction at a time leaves the server's second core idle while the
//     first waits on the client and the network (BenchmarkDrainShards).
//
// The whole call, retries included, runs under the write timeout.
// Deadlocks and races with another drainer over the same review or card are
// retried a few times. Any other failure rolls the failing shard back and
// returns the database error with rejected nil (context.DeadlineExceeded in
// its chain after the timeout); the caller retries the batch later. Shards
// that committed stay committed (their recomputed cards are still passed
// to the SetOnRecompute function): the retry finds their reviews logged and
// skips them, as it does for a batch whose commit reply was lost.
func (s *Store) ApplyReviews(ctx context.Context, batch []srs.Review) (rejected []int, err error) {
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	shards := s.shardsOf(batch)
	if len(shards) <= 1 {
		rejected, recomputed, err := s.applyBatch(ctx, batch)
		s.reportRecomputed(recomputed)
		return rejected, err
	}
	type result struct {
		rejected   []int
		recomputed []srs.Card
		err        error
	}
	results := make([]result, len(shards))
	var wg sync.WaitGroup
	for i, idx := range shards {
		wg.Go(func() {
			sub := make([]srs.Review, len(idx))
			for j, k := range idx {
				sub[j] = batch[k]
			}
			r := &results[i]
			r.rejected, r.recomputed, r.err = s.applyBatch(ctx, sub)
		})
	}
	wg.Wait()
	var recomputed []srs.Card
	for i, r := range results {
		switch {
		case r.err != nil && err == nil:
			err = r.err
		case r.err == nil:
			recomputed = append(recomputed, r.recomputed...)
			for _, j := range r.rejected {
				rejected = append(rejected, shards[i][j])
			}
		}
	}
	// The shards that committed stay committed when another failed: their
	// recomputed cards are reported all the same.
	s.reportRecomputed(recomputed)
	if err != nil {
		return nil, err
	}
	slices.Sort(rejected)
	return rejected, nil
}

// reportRecomputed passes cards to the function set with SetOnRecompute.
func (s *Store) reportRecomputed(cards []srs.Card) {
	if len(cards) == 0 {
		return
	}
	s.mu.Lock()
	fn := s.onRecompute
	s.mu.Unlock()
	if fn != nil {
		for _, c := range cards {
			fn(c)
		}
	}
}

// DefaultDrainShards is how many transactions ApplyReviews runs at once on
// a big batch (see ApplyReviews), and DefaultMinShard the fewest reviews
// of a shard, below which a shard's own begin, commit and fsync cost more
// than it saves. Measured with BenchmarkDrainShards (srsbench's rows, one
// batch per setting in turn, 2-core machine shared with other work at load
// 4–9, MariaDB 10.11, 2026-12-03), rows/s for 1/2/3/4 shards: batches of
// 1000: 2,910/4,583/5,301/5,103; 2000: 2,521/3,299/3,870/4,631; 4000:
// 2,786/4,058/4,901/5,268. One transaction at a time leaves the server
// idle while the client builds and sends the next statement and waits for
// the commit's fsync; on a busy server more concurrent transactions also
// get the drain a larger share of its CPU.
const (
	DefaultDrainShards = 4
	DefaultMinShard    = 250
)

// SetDrainShards sets how many concurrent transactions ApplyReviews splits
// a batch into (1: one transaction, as before release 3) and the fewest
// reviews a shard gets, so small batches stay one transaction; values below
// 1 take the defaults. It applies to calls that start afterwards.
func (s *Store) SetDrainShards(shards, minShard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shards, s.minShard = shards, minShard
}

// shardsOf splits the batch's indices by user (season, player) into at
// most the configured number of shards of at least minShard reviews each
// (fewer shards for a smaller batch), each in batch order; nil or one
// shard means one transaction. A user's reviews all go to one shard, so
// shards touch disjoint card rows and never wait for each other's locks.
func (s *Store) shardsOf(batch []srs.Review) [][]int {
	s.mu.Lock()
	n, least := cmp.Or(max(s.shards, 0), DefaultDrainShards), cmp.Or(max(s.minShard, 0), DefaultMinShard)
	s.mu.Unlock()
	n = min(n, len(batch)/least)
	if n <= 1 {
		return nil
	}
	shards := make([][]int, n)
	for i, r := range batch {
		k := userHash(r.Season, r.Player) % uint64(n)
		shards[k] = append(shards[k], i)
	}
	return slices.DeleteFunc(shards, func(idx []int) bool { return len(idx) == 0 })
}

// userHash is 64-bit FNV-1a of season, a zero byte and player.
func userHash(season, player string) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range [...]string{season, "\x00", player} {
		for i := range len(b) {
			h = (h ^ uint64(b[i])) * 1099511628211
		}
	}
	return h
}

// applyBatch is ApplyReviews for one transaction: it returns the indices
// of the reviews rejected for good and the cards it recomputed.
func (s *Store) applyBatch(ctx context.Context, batch []srs.Review) (rejected []int, recomputed []srs.Card, err error) {
	skip := make([]bool, len(batch))
	reject := func(i int, reason error) {
		skip[i] = true
		r := batch[i]
		s.log.WarnContext(ctx, "review rejected", "season", r.Season, "review_id", r.ID,
			"player", r.Player, "question_id", r.QuestionID, "reason", reason)
	}
	for i, r := range batch {
		if err := checkReview(r); err != nil {
			reject(i, err)
		}
	}
	routes, err := s.batchRoutes(ctx, batch, skip, false)
	if err != nil {
		return nil, nil, fmt.Errorf("apply reviews: %w", err)
	}
	rejectUnrouted := func() {
		for i, r := range batch {
			switch rt, ok := routes[r.Season]; {
			case skip[i]:
			case !ok:
				reject(i, srs.ErrUnknownSeason)
			case rt.log == "" || rt.cards == "":
				reject(i, unrouted(r.Season))
			}
		}
	}
	rejectUnrouted()
	checkLog := s.foundRows
	for attempt, reroutes := 1, 0; ; {
		recomputed, err = s.applyOnce(ctx, batch, skip, routes, checkLog)
		switch n := errNumber(err); {
		case errors.Is(err, errLoggedBefore) && !checkLog:
			// A batch drained again (after a crash, a lost commit reply,
			// another sidecar's drain): look up what is logged, once.
			checkLog = true
		case err == nil:
			for i, sk := range skip {
				if sk {
					rejected = append(rejected, i)
				}
			}
			return rejected, recomputed, nil
		case (n == errNoPartition || n == errNoSuchTable) && reroutes < maxReroutes:
			// Every reroute follows a change of where some season's rows
			// live (live → archive → gone, one table at a time), so the
			// changes run out; unchanged routes leave the error unexplained.
			reroutes++
			fresh, rerr := s.batchRoutes(ctx, batch, skip, true)
			if rerr != nil || maps.Equal(fresh, routes) {
				return nil, nil, fmt.Errorf("apply reviews: %w", err)
			}
			s.log.DebugContext(ctx, "apply reviews: rerouting", "err", err)
			routes = fresh
			rejectUnrouted()
		case (n == errDeadlock || n == errLockTimeout || n == errDupEntry) && attempt < maxAttempts:
			s.log.DebugContext(ctx, "apply reviews: retrying", "attempt", attempt, "err", err)
			attempt++
		default:
			return nil, nil, fmt.Errorf("apply reviews: %w", err)
		}
	}
}

// maxReroutes bounds the reroutes of one batch: a season's two tables move
// from live to archive to gone one at a time, and a batch rarely holds more
// than one season on the move.
const maxReroutes = 8

// seasonsOf returns the distinct seasons of the batch entries not skipped.
func seasonsOf(batch []srs.Review, skip []bool) []string {
	var out []string
	for i, r := range batch {
		if !skip[i] && !slices.Contains(out, r.Season) {
			out = append(out, r.Season)
		}
	}
	return out
}

// logKey is a review's identity: its id is unique per card.
type logKey struct{ season, player, question, id string }

func logKeyOf(r srs.Review) logKey { return logKey{r.Season, r.Player, r.QuestionID, r.ID} }

type cardKey struct{ season, player, question string }

func cardKeyOf(r srs.Review) cardKey { return cardKey{r.Season, r.Player, r.QuestionID} }

func compareCardKeys(a, b cardKey) int {
	return cmp.Or(cmp.Compare(a.season, b.season), cmp.Compare(a.player, b.player),
		cmp.Compare(a.question, b.question))
}

// reviewOrder is the order in which a card's reviews apply, the review
// log's: by reviewed_at, then by the reps they leave, then by id (bytes, as
// the utf8mb4_nopad_bin collation compares). It is a total order on one
// card's reviews, so every drainer replays the same sequence.
func reviewOrder(a, b srs.Review) int {
	return cmp.Or(cmp.Compare(a.ReviewedAt, b.ReviewedAt), cmp.Compare(a.After.Reps, b.After.Reps),
		strings.Compare(a.ID, b.ID))
}

// byTable groups items by the table each goes to, tables in name order so
// that concurrent drainers take their locks in the same order.
func byTable[T any](items []T, table func(T) string) (tables []string, groups map[string][]T) {
	groups = map[string][]T{}
	for _, it := range items {
		t := table(it)
		if groups[t] == nil {
			tables = append(tables, t)
		}
		groups[t] = append(groups[t], it)
	}
	slices.Sort(tables)
	return tables, groups
}

// errLoggedBefore is applyOnce's answer, with checkLog false, when some of
// the batch's reviews were in the log already: the batch runs again with
// checkLog true, which finds them first and leaves them out.
var errLoggedBefore = errors.New("reviews of the batch are logged already")

// applyOnce runs the batch's transaction once, leaving out skipped entries
// and writing each season's rows to the tables of its route. It returns the
// cards it recomputed by a replay.
//
// With checkLog true it first reads which reviews are logged already and
// leaves them out. With checkLog false (the common case: a batch drained
// for the first time) it does not read: the log INSERT itself tells, its
// ON DUPLICATE KEY UPDATE being a no-op that counts no affected row, and
// if any review was logged before the transaction is rolled back and
// errLoggedBefore returned. That saves a primary-key read of the whole
// batch, a third of a batch's statements; the checks are the same, as the
// batch's card rows are locked before the log is written, and a card's log
// rows are written only under its row's lock (a card without a row is
// locked by its insert; another drainer racing to create it gets a
// duplicate key on the cards INSERT and the batch runs again).
func (s *Store) applyOnce(ctx context.Context, batch []srs.Review, skip []bool, routes map[string]route, checkLog bool) ([]srs.Card, error) {
	seen := make(map[logKey]bool, len(batch))
	todo := make([]int, 0, len(batch))
	for i, r := range batch {
		if k := logKeyOf(r); !skip[i] && !seen[k] {
			seen[k] = true
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	// READ COMMITTED: once a card row is locked, the reads that follow see
	// what the drainer that held it before committed (under REPEATABLE READ
	// they would see the snapshot of the first read), and locking reads of
	// absent rows take no gap locks.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	if checkLog {
		logTables, logGroups := byTable(todo, func(i int) string { return routes[batch[i].Season].log })
		logged := map[logKey]bool{}
		for _, table := range logTables {
			if err := loggedIDs(ctx, tx, table, batch, logGroups[table], logged); err != nil {
				return nil, err
			}
		}
		todo = slices.DeleteFunc(todo, func(i int) bool { return logged[logKeyOf(batch[i])] })
		if len(todo) == 0 {
			return nil, nil
		}
	}

	// The cards, in primary-key order so that concurrent drainers lock rows
	// in the same order; each card's new reviews in the order they apply.
	news := make(map[cardKey][]srs.Review, len(todo))
	for _, i := range todo {
		r := batch[i]
		r.After.LastID = srs.ReviewHash(r.ID)
		k := cardKeyOf(r)
		news[k] = append(news[k], r)
	}
	keys := slices.SortedFunc(maps.Keys(news), compareCardKeys)
	for _, k := range keys {
		if revs := news[k]; len(revs) > 1 {
			slices.SortFunc(revs, reviewOrder)
		}
	}
	cardTable := func(k cardKey) string { return routes[k.season].cards }
	cardTables, cardGroups := byTable(keys, cardTable)
	rows := make(map[cardKey]srs.Card, len(keys))
	for _, table := range cardTables {
		if err := s.lockCards(ctx, tx, table, cardGroups[table], rows); err != nil {
			return nil, err
		}
	}

	// The log rows in primary-key order (card, then the order they apply):
	// neighbours in the statement are neighbours in the index.
	logTables, logGroups := byTable(keys, func(k cardKey) string { return routes[k.season].log })
	insertLog := "INSERT INTO %s (" + logColumns + ") VALUES %s"
	if !checkLog {
		insertLog += " ON DUPLICATE KEY UPDATE review_id = review_id"
	}
	args := make([]any, 0, len(todo)*logWidth)
	for _, table := range logTables {
		args = args[:0]
		n := 0
		for _, k := range logGroups[table] {
			for _, r := range news[k] {
				args = appendLog(args, r)
				n++
			}
		}
		affected, err := s.execRows(ctx, tx, insertLog, table, logPlaceholders, logWidth, args)
		if err != nil {
			return nil, err
		}
		// Without CLIENT_FOUND_ROWS (see Store.foundRows) a duplicate left
		// as it is counts 0, an inserted row 1.
		if !checkLog && affected != int64(n) {
			return nil, errLoggedBefore
		}
	}

	var (
		recomputed    []srs.Card
		inserts, sets = map[string][]srs.Card{}, map[string][]srs.Card{}
		scheds        = map[string]*fsrs.Scheduler{}
	)
	for _, k := range keys {
		revs := news[k]
		row, exists := rows[k]
		if !exists {
			row = srs.Card{Season: k.season, Player: k.player, QuestionID: k.question}
		}
		next, replayed, err := s.settle(ctx, tx, routes[k.season].log, scheds, row, exists, revs)
		if err != nil {
			return nil, err
		}
		if replayed {
			recomputed = append(recomputed, next)
		}
		switch table := cardTable(k); {
		case !exists:
			inserts[table] = append(inserts[table], next)
		case next != row:
			sets[table] = append(sets[table], next)
		}
	}
	for _, w := range []struct {
		query string
		cards map[string][]srs.Card
	}{{insertCard, inserts}, {replaceCard, sets}} {
		for _, table := range slices.Sorted(maps.Keys(w.cards)) {
			args = args[:0]
			for _, c := range w.cards[table] {
				args = appendCard(args, c)
			}
			if _, err := s.execRows(ctx, tx, w.query, table, cardPlaceholders, cardWidth, args); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return recomputed, nil
}

// continues reports whether a card's new reviews, in the order they apply,
// continue its row, so that folding them in gives what replaying the whole
// log would: each is not older than the state before it, and was computed
// from that very state. "That very state" is the same FSRS inputs (state,
// step, stability, difficulty, last review, reps, lapses; not due or recall,
// which Next does not read and the cache rounds) and, when the state's
// LastID is known (not 0), the same LastID. Same LastID alone is not enough:
// a row recomputed by a replay keeps the LastID of its last review but may
// differ from the state the engine had computed after it. A card without a
// row is continued by any first review (its earlier reviews, if any, are not
// drained yet; they will recompute it when they are).
func continues(row srs.Schedule, exists bool, revs []srs.Review) bool {
	prev, known := row, exists
	for _, r := range revs {
		switch {
		case r.ReviewedAt < prev.LastReview:
			return false
		case known && !sameInputs(r.Before, prev):
			return false
		case known && prev.LastID != 0 && r.Before.LastID != prev.LastID:
			return false
		}
		prev, known = r.After, true
	}
	return true
}

// sameInputs reports whether two schedules give FSRS the same inputs.
func sameInputs(a, b srs.Schedule) bool {
	return a.State == b.State && a.Step == b.Step && a.Stability == b.Stability &&
		a.Difficulty == b.Difficulty && a.LastReview == b.LastReview && a.Reps == b.Reps &&
		a.Lapses == b.Lapses
}

// settle decides a card's new row from its row (exists false: none) and its
// new reviews, already logged in logTable, in the order they apply; replayed
// reports a recompute.
func (s *Store) settle(ctx context.Context, tx *sql.Tx, logTable string, scheds map[string]*fsrs.Scheduler,
	row srs.Card, exists bool, revs []srs.Review) (next srs.Card, replayed bool, err error) {
	newest := revs[len(revs)-1].Card()
	if continues(row.Schedule, exists, revs) {
		return newest, false, nil
	}
	log, err := cardLog(ctx, tx, logTable, row.Season, row.Player, row.QuestionID)
	if err != nil {
		return srs.Card{}, false, err
	}
	newerWins := func(why string, attrs ...any) (srs.Card, bool, error) {
		s.log.WarnContext(ctx, "card not recomputed: "+why, append([]any{"season", row.Season,
			"player", row.Player, "question_id", row.QuestionID, "row_reps", row.Reps, "logged", len(log)}, attrs...)...)
		if exists && !newest.NewerThan(row.Schedule) {
			return row, false, nil
		}
		return newest, false, nil
	}
	if exists && len(log) < row.Reps {
		// Reviews the row counts are missing from the log: rows loaded
		// without their log, or reviews still in another sidecar's queue
		// (they are older than the row, so their arrival replays the card).
		return newerWins("its log holds fewer reviews than the row counts")
	}
	sched, err := s.scheduler(ctx, tx, row.Season, scheds)
	if err != nil {
		return newerWins("no scheduler for its season", "err", err)
	}
	next = replay(sched, row.Season, row.Player, row.QuestionID, log)
	s.log.InfoContext(ctx, "card recomputed from its review log", "season", row.Season,
		"player", row.Player, "question_id", row.QuestionID, "reviews", len(log), "new", len(revs))
	return next, true, nil
}

// replay computes a card from its whole review log, in the order reviews
// apply, as the engine computes each review (engine/review.go, next): FSRS
// from a new card, each review's After.LastID its hash and After.Recall the
// retrievability before it. The labels are those of the last review. A
// review with an invalid grade (never written since release 2) is skipped.
func replay(sched *fsrs.Scheduler, season, player, question string, log []srs.Review) srs.Card {
	c := srs.Card{Season: season, Player: player, QuestionID: question}
	seed := fsrs.Seed(season, player, question)
	for _, r := range log {
		if !r.Grade.Valid() {
			continue
		}
		after := sched.Next(c.Schedule, r.Grade, r.ReviewedAt, seed).Schedule
		after.LastID = srs.ReviewHash(r.ID)
		after.Recall = sched.Retrievability(c.Schedule, r.ReviewedAt)
		c.Schedule = after
		c.Subject, c.Topic, c.Stage = r.Subject, r.Topic, r.Stage
	}
	return c
}

// scheduler returns the FSRS scheduler of a season, read in tx and kept in
// scheds for the rest of the batch. It returns the database error or
// fsrs.New's.
func (s *Store) scheduler(ctx context.Context, tx *sql.Tx, season string, scheds map[string]*fsrs.Scheduler) (*fsrs.Scheduler, error) {
	if sched, ok := scheds[season]; ok {
		return sched, nil
	}
	var (
		raw      []byte
		tz       string
		dayStart int
	)
	// The day rule with the rest: a replay must count elapsed days as the
	// engine does, or it would recompute a different card.
	if err := tx.QueryRowContext(ctx, "SELECT scheduler, timezone, day_start FROM seasons WHERE name = ?", season).Scan(&raw, &tz, &dayStart); err != nil {
		return nil, err
	}
	cfg, err := decodeScheduler(raw)
	if err != nil {
		return nil, err
	}
	cfg.Timezone, cfg.DayStart = tz, dayStart
	sched, err := fsrs.New(cfg)
	if err != nil {
		return nil, err
	}
	scheds[season] = sched
	return sched, nil
}

// replayColumns are the log columns a replay reads.
const replayColumns = "review_id, grade, reviewed_at, after_reps, subject, topic, stage"

// cardLog reads one card's whole review log from table in the order reviews
// apply (reviewOrder), with the columns a replay needs.
func cardLog(ctx context.Context, tx *sql.Tx, table, season, player, question string) ([]srs.Review, error) {
	rows, err := tx.QueryContext(ctx, "SELECT "+replayColumns+" FROM "+partitions.QuoteIdent(table)+
		` WHERE season = ? AND player = ? AND question_id = ? ORDER BY reviewed_at, after_reps, review_id`,
		season, player, question)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []srs.Review
	for rows.Next() {
		r := srs.Review{Season: season, Player: player, QuestionID: question}
		if err := rows.Scan(&r.ID, &r.Grade, &r.ReviewedAt, &r.After.Reps, &r.Subject, &r.Topic, &r.Stage); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// keyChunk bounds the keys of one lookup: below the 1000 values from which
// MariaDB turns an IN list into a subquery (in_predicate_conversion_threshold).
const keyChunk = 500

// keyTerms returns the WHERE clause and arguments that select rows by
// primary key: (season = ? AND (cols) IN ((?,…),…)) OR …, one term per
// season (a batch rarely spans more than one); tuples[i] holds the values of
// cols for a row of seasons[i]. A row-constructor IN is a range read of the
// primary key, about twice as fast as the same keys as an OR of equalities.
func keyTerms(cols string, seasons []string, tuples [][]any) (string, []any) {
	var (
		order []string
		bySea = map[string][][]any{}
	)
	for i, season := range seasons {
		if bySea[season] == nil {
			order = append(order, season)
		}
		bySea[season] = append(bySea[season], tuples[i])
	}
	var (
		where []string
		args  []any
	)
	for _, season := range order {
		ts := bySea[season]
		where = append(where, "(season = ? AND ("+cols+") IN ("+placeholders(group(len(ts[0])), len(ts))+"))")
		args = append(args, season)
		for _, t := range ts {
			args = append(args, t...)
		}
	}
	return strings.Join(where, " OR "), args
}

// cardTerms selects the given cards by primary key (see keyTerms).
func cardTerms(keys []cardKey) (string, []any) {
	seasons := make([]string, len(keys))
	tuples := make([][]any, len(keys))
	for i, k := range keys {
		seasons[i], tuples[i] = k.season, []any{k.player, k.question}
	}
	return keyTerms("player, question_id", seasons, tuples)
}

// lockCards locks the rows of the given cards in table (in primary-key
// order, keys being sorted) and adds those that exist to rows. Rows are
// locked as the range read of the primary key visits them, in key order
// within a partition. No ORDER BY: it did not change that order (the sort
// came after the read) but made MariaDB sort the rows and read each again
// by its key, two thirds of the statement's time (ANALYZE: 2.9 of 4.4 ms
// for 500 keys).
func (s *Store) lockCards(ctx context.Context, tx *sql.Tx, table string, keys []cardKey, rows map[cardKey]srs.Card) error {
	sizes, prepared := splitRows(len(keys), s.chunksFor(table), keyChunk)
	for i, k := range sizes {
		chunk := keys[:k]
		keys = keys[k:]
		where, args := cardTerms(chunk)
		query := "SELECT " + cardColumns + " FROM " + partitions.QuoteIdent(table) +
			" FORCE INDEX (PRIMARY) WHERE " + where + " FOR UPDATE"
		// Prepared only for one season: the statement's shape then
		// depends on the number of keys alone.
		one := chunk[0].season == chunk[len(chunk)-1].season
		var (
			cards []srs.Card
			err   error
		)
		if st := s.maybeStmt(ctx, tx, query, prepared[i] && one); st != nil {
			cards, err = collectStmt(ctx, st, args...)
		} else {
			cards, err = collectCards(ctx, tx, query, args...)
		}
		if err != nil {
			return err
		}
		for _, c := range cards {
			rows[cardKey{c.Season, c.Player, c.QuestionID}] = c
		}
	}
	return nil
}

// loggedIDs adds to logged which reviews of todo are already in the log
// table: one primary-key range read per chunk (see keyTerms). FORCE INDEX:
// given the choice, the optimizer sometimes reads review_id_idx (release 1's
// lookup) and the batch slows down tenfold.
func loggedIDs(ctx context.Context, tx *sql.Tx, table string, batch []srs.Review, todo []int, logged map[logKey]bool) error {
	for chunk := range slices.Chunk(todo, keyChunk) {
		seasons := make([]string, len(chunk))
		tuples := make([][]any, len(chunk))
		for j, i := range chunk {
			r := batch[i]
			seasons[j], tuples[j] = r.Season, []any{r.Player, r.QuestionID, r.ID}
		}
		where, args := keyTerms("player, question_id, review_id", seasons, tuples)
		rows, err := tx.QueryContext(ctx, "SELECT season, player, question_id, review_id FROM "+
			partitions.QuoteIdent(table)+" FORCE INDEX (PRIMARY) WHERE "+where, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k logKey
			if err := rows.Scan(&k.season, &k.player, &k.question, &k.id); err != nil {
				rows.Close()
				return err
			}
			logged[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// placeholders returns n copies of group joined by commas.
func placeholders(group string, n int) string {
	return strings.TrimSuffix(strings.Repeat(group+",", n), ",")
}

// LoggedReview returns the logged review reviewID of card (season, player,
// question) and whether it exists: review ids are unique per card, so the
// same id on another card is another review and is not found here. The
// review comes back as it was written, with After.LastID =
// srs.ReviewHash(reviewID). It runs under the read timeout and returns the
// database error.
func (s *Store) LoggedReview(ctx context.Context, season, player, question, reviewID string) (srs.Review, bool, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	r, err := scanReview(s.db.QueryRowContext(ctx, "SELECT "+logColumns+
		" FROM review_log WHERE season = ? AND player = ? AND question_id = ? AND review_id = ?",
		season, player, question, reviewID))
	if errors.Is(err, sql.ErrNoRows) {
		return srs.Review{}, false, nil
	}
	if err != nil {
		return srs.Review{}, false, fmt.Errorf("review %s of %s/%s in %s: %w", reviewID, player, question, season, err)
	}
	return r, true, nil
}

// ReviewLog returns every logged review of one card in the order they apply:
// by reviewed_at, then by the reps they leave behind, then by id. It runs
// under the read timeout and returns the database error.
func (s *Store) ReviewLog(ctx context.Context, season, player, question string) ([]srs.Review, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, "SELECT "+logColumns+` FROM review_log
		WHERE season = ? AND player = ? AND question_id = ? ORDER BY reviewed_at, after_reps, review_id`,
		season, player, question)
	if err != nil {
		return nil, fmt.Errorf("review log of %s/%s in %s: %w", player, question, season, err)
	}
	defer rows.Close()
	var out []srs.Review
	for rows.Next() {
		r, err := scanReview(rows)
		if err != nil {
			return nil, fmt.Errorf("review log of %s/%s in %s: %w", player, question, season, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("review log of %s/%s in %s: %w", player, question, season, err)
	}
	return out, nil
}

// ReviewKey names one review of a season: its card (player, question) and
// its id, unique per card.
type ReviewKey struct {
	Player, Question, ID string
}

// ReviewIDs returns, for each of keys found in the live review log of
// season, the number of rows that carry it (the audit proves each is
// exactly 1); keys not logged are absent from the map. Each chunk of 500
// keys is one query under the read timeout. It returns the database error.
func (s *Store) ReviewIDs(ctx context.Context, season string, keys []ReviewKey) (map[ReviewKey]int, error) {
	counts := make(map[ReviewKey]int, len(keys))
	for chunk := range slices.Chunk(keys, keyChunk) {
		seasons := make([]string, len(chunk))
		tuples := make([][]any, len(chunk))
		for i, k := range chunk {
			seasons[i], tuples[i] = season, []any{k.Player, k.Question, k.ID}
		}
		where, args := keyTerms("player, question_id, review_id", seasons, tuples)
		if err := s.countKeys(ctx, where, args, counts); err != nil {
			return nil, fmt.Errorf("review ids of %s: %w", season, err)
		}
	}
	return counts, nil
}

// countKeys adds the review_log rows matching where, by key, to counts.
func (s *Store) countKeys(ctx context.Context, where string, args []any, counts map[ReviewKey]int) error {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, "SELECT player, question_id, review_id, COUNT(*) FROM review_log FORCE INDEX (PRIMARY) WHERE "+
		where+" GROUP BY player, question_id, review_id", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k ReviewKey
			n int
		)
		if err := rows.Scan(&k.Player, &k.Question, &k.ID, &n); err != nil {
			return err
		}
		counts[k] += n
	}
	return rows.Err()
}
