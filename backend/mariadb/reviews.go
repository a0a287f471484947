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
	"unicode/utf8"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// maxText is the length in characters of the VARCHAR(191) columns.
const maxText = 191

// chunkRows bounds the rows of one multi-row statement: 1000 × 28 placeholders
// stays under the 65535 a server-side prepared statement allows, should the
// driver ever fall back from client-side interpolation.
const chunkRows = 1000

// maxAttempts bounds the transaction retries after a deadlock, a lock wait
// timeout, or a review id logged concurrently by another drainer.
const maxAttempts = 4

const logColumns = `season, review_id, player, question_id, grade, reviewed_at, elapsed_days,
	duration_ms, subject, topic, stage,
	before_state, before_step, before_stability, before_difficulty, before_due,
	before_last_review, before_reps, before_lapses,
	after_state, after_step, after_stability, after_difficulty, after_due,
	after_last_review, after_reps, after_lapses, sidecar`

const logPlaceholders = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"

func appendSchedule(args []any, s srs.Schedule) []any {
	return append(args, s.State, s.Step, s.Stability, s.Difficulty, s.Due, s.LastReview, s.Reps, s.Lapses)
}

func appendLog(args []any, r srs.Review) []any {
	args = append(args, r.Season, r.ID, r.Player, r.QuestionID, r.Grade, r.ReviewedAt,
		r.ElapsedDays, r.DurationMS, r.Subject, r.Topic, r.Stage)
	args = appendSchedule(args, r.Before)
	args = appendSchedule(args, r.After)
	return append(args, r.Sidecar)
}

func scanReview(row interface{ Scan(...any) error }) (srs.Review, error) {
	var r srs.Review
	b, a := &r.Before, &r.After
	err := row.Scan(&r.Season, &r.ID, &r.Player, &r.QuestionID, &r.Grade, &r.ReviewedAt,
		&r.ElapsedDays, &r.DurationMS, &r.Subject, &r.Topic, &r.Stage,
		&b.State, &b.Step, &b.Stability, &b.Difficulty, &b.Due, &b.LastReview, &b.Reps, &b.Lapses,
		&a.State, &a.Step, &a.Stability, &a.Difficulty, &a.Due, &a.LastReview, &a.Reps, &a.Lapses,
		&r.Sidecar)
	return r, err
}

// upsertCard inserts cards into the table its first %s names (cards, or an
// archive table for late entries) or moves existing ones forward, never back:
// every column takes the new value only if the new version is newer (a later
// last_review, or the same one with more reps; srs.Schedule.NewerThan).
//
// MariaDB evaluates the assignments left to right and later ones see the
// columns already assigned, so the columns the condition reads come last:
// reps, then last_review. (With last_review first, a newer review with equal
// reps would update last_review and leave every later column stale.) reps
// before last_review is safe: if reps moved, either last_review grew, which
// the condition still sees, or it is equal and needs no change. updated_at
// comes just before them; after them its condition would always be false.
var upsertCard = func() string {
	const newer = "(VALUES(last_review) > last_review OR (VALUES(last_review) = last_review AND VALUES(reps) > reps))"
	var set []string
	for _, col := range []string{"subject", "topic", "stage", "state", "step", "stability", "difficulty", "due", "lapses"} {
		set = append(set, fmt.Sprintf("%s = IF(%s, VALUES(%s), %s)", col, newer, col, col))
	}
	set = append(set,
		"updated_at = IF("+newer+", CURRENT_TIMESTAMP(3), updated_at)",
		"reps = IF("+newer+", VALUES(reps), reps)",
		"last_review = IF("+newer+", VALUES(last_review), last_review)")
	return "INSERT INTO %s (" + cardColumns + ") VALUES %s ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}()

const cardPlaceholders = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"

func appendCard(args []any, c srs.Card) []any {
	args = append(args, c.Season, c.Player, c.QuestionID, c.Subject, c.Topic, c.Stage)
	return append(args, c.State, c.Step, c.Stability, c.Difficulty, c.Due, c.LastReview, c.Reps, c.Lapses)
}

// checkReview refuses a review the database would reject for good (strict
// mode), which would otherwise fail its whole batch on every retry.
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
	if r.ElapsedDays < math.MinInt32 || r.ElapsedDays > math.MaxInt32 {
		return errors.New("elapsed_days out of range")
	}
	for _, s := range []srs.Schedule{r.Before, r.After} {
		switch {
		case s.Step < math.MinInt16 || s.Step > math.MaxInt16:
			return errors.New("step out of range")
		case s.Reps < math.MinInt32 || s.Reps > math.MaxInt32 || s.Lapses < math.MinInt32 || s.Lapses > math.MaxInt32:
			return errors.New("reps or lapses out of range")
		case math.IsNaN(s.Stability) || math.IsInf(s.Stability, 0) || math.IsNaN(s.Difficulty) || math.IsInf(s.Difficulty, 0):
			return errors.New("stability or difficulty not finite")
		}
	}
	return nil
}

// ApplyReviews writes a batch of acknowledged reviews in one transaction: it
// logs each review not logged before and moves each card forward to the
// newest of its reviews. It is what the write-behind drainer calls.
//
//   - Idempotent by (season, review_id): a review already in the log, or
//     repeated inside the batch, is skipped entirely (neither logged nor
//     applied), so a replayed id is applied at most once.
//   - Newer wins: a card row only moves to a later (last_review, reps).
//   - Late entries of an archived season: when a season's archive_state is
//     archiving or archived and its partition has left a live table, its
//     rows go to the season's archive table instead (partitions.ArchiveTable),
//     with the same idempotency and newer-wins rules, in the same
//     transaction. While the partition is still there they go to the live
//     table and the partition move carries them. A partition that vanishes
//     under a batch (the INSERT fails with 1526 after the move) or an archive
//     table dropped under it (1146) makes the batch look again where each
//     season's rows live and run again.
//   - Permanent rejections: reviews of an unknown season, of a season with
//     neither a partition nor (archiving or archived) an archive table, e.g.
//     a purged one, or with values the schema cannot hold are left out and
//     the rest is committed; their batch indices come back in rejected, in
//     ascending order, and are logged.
//
// The fast path costs one lookup of the batch's seasons; only seasons being
// or already archived cost more, and their routes are cached.
// Deadlocks and races with another drainer over the same review id are
// retried a few times. Any other failure rolls the whole batch back and
// returns the database error with rejected nil; the caller retries later.
func (s *Store) ApplyReviews(ctx context.Context, batch []srs.Review) (rejected []int, err error) {
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
		return nil, fmt.Errorf("apply reviews: %w", err)
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
	for attempt, reroutes := 1, 0; ; {
		err := s.applyOnce(ctx, batch, skip, routes)
		switch n := errNumber(err); {
		case err == nil:
			for i, sk := range skip {
				if sk {
					rejected = append(rejected, i)
				}
			}
			return rejected, nil
		case (n == errNoPartition || n == errNoSuchTable) && reroutes < maxReroutes:
			// Every reroute follows a change of where some season's rows
			// live (live → archive → gone, one table at a time), so the
			// changes run out; unchanged routes leave the error unexplained.
			reroutes++
			fresh, rerr := s.batchRoutes(ctx, batch, skip, true)
			if rerr != nil || maps.Equal(fresh, routes) {
				return nil, fmt.Errorf("apply reviews: %w", err)
			}
			s.log.DebugContext(ctx, "apply reviews: rerouting", "err", err)
			routes = fresh
			rejectUnrouted()
		case (n == errDeadlock || n == errLockTimeout || n == errDupEntry) && attempt < maxAttempts:
			s.log.DebugContext(ctx, "apply reviews: retrying", "attempt", attempt, "err", err)
			attempt++
		default:
			return nil, fmt.Errorf("apply reviews: %w", err)
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

type logKey struct{ season, id string }

type cardKey struct{ season, player, question string }

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

// applyOnce runs the batch's transaction once, leaving out skipped entries
// and writing each season's rows to the tables of its route.
func (s *Store) applyOnce(ctx context.Context, batch []srs.Review, skip []bool, routes map[string]route) error {
	seen := make(map[logKey]bool, len(batch))
	var todo []int
	for i, r := range batch {
		k := logKey{r.Season, r.ID}
		if !skip[i] && !seen[k] {
			seen[k] = true
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	logTable := func(i int) string { return routes[batch[i].Season].log }
	logTables, logGroups := byTable(todo, logTable)
	logged := map[logKey]bool{}
	for _, table := range logTables {
		if err := loggedIDs(ctx, tx, table, batch, logGroups[table], logged); err != nil {
			return err
		}
	}
	todo = slices.DeleteFunc(todo, func(i int) bool { return logged[logKey{batch[i].Season, batch[i].ID}] })
	if len(todo) == 0 {
		return nil
	}

	newest := make(map[cardKey]int, len(todo))
	logTables, logGroups = byTable(todo, logTable)
	for _, table := range logTables {
		for chunk := range slices.Chunk(logGroups[table], chunkRows) {
			args := make([]any, 0, len(chunk)*28)
			for _, i := range chunk {
				r := batch[i]
				args = appendLog(args, r)
				k := cardKey{r.Season, r.Player, r.QuestionID}
				if j, ok := newest[k]; !ok || r.After.NewerThan(batch[j].After) {
					newest[k] = i
				}
			}
			query := "INSERT INTO " + partitions.QuoteIdent(table) + " (" + logColumns + ") VALUES " +
				placeholders(logPlaceholders, len(chunk))
			if _, err := tx.ExecContext(ctx, query, args...); err != nil {
				return err
			}
		}
	}

	// One row per card, in primary-key order so that concurrent drainers lock
	// rows in the same order.
	cards := make([]srs.Card, 0, len(newest))
	for _, i := range newest {
		cards = append(cards, batch[i].Card())
	}
	slices.SortFunc(cards, func(a, b srs.Card) int {
		return cmp.Or(cmp.Compare(a.Season, b.Season), cmp.Compare(a.Player, b.Player),
			cmp.Compare(a.QuestionID, b.QuestionID))
	})
	cardTables, cardGroups := byTable(cards, func(c srs.Card) string { return routes[c.Season].cards })
	for _, table := range cardTables {
		for chunk := range slices.Chunk(cardGroups[table], chunkRows) {
			args := make([]any, 0, len(chunk)*14)
			for _, c := range chunk {
				args = appendCard(args, c)
			}
			query := fmt.Sprintf(upsertCard, partitions.QuoteIdent(table), placeholders(cardPlaceholders, len(chunk)))
			if _, err := tx.ExecContext(ctx, query, args...); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// loggedIDs adds to logged which reviews of todo are already in the log
// table: one primary-key range read per chunk, WHERE (season = ? AND
// review_id IN (…)) OR … with one term per season (a batch rarely spans more
// than one). This form reads about a third faster than a (season, review_id)
// IN row list.
func loggedIDs(ctx context.Context, tx *sql.Tx, table string, batch []srs.Review, todo []int, logged map[logKey]bool) error {
	for chunk := range slices.Chunk(todo, chunkRows) {
		ids := map[string][]any{}
		var seasons []string
		for _, i := range chunk {
			r := batch[i]
			if ids[r.Season] == nil {
				seasons = append(seasons, r.Season)
			}
			ids[r.Season] = append(ids[r.Season], r.ID)
		}
		var (
			terms []string
			args  = make([]any, 0, len(chunk)+len(seasons))
		)
		for _, season := range seasons {
			terms = append(terms, "(season = ? AND review_id IN ("+placeholders("?", len(ids[season]))+"))")
			args = append(append(args, season), ids[season]...)
		}
		rows, err := tx.QueryContext(ctx, "SELECT season, review_id FROM "+partitions.QuoteIdent(table)+
			" WHERE "+strings.Join(terms, " OR "), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k logKey
			if err := rows.Scan(&k.season, &k.id); err != nil {
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

// LoggedReview returns the logged review (season, reviewID) and whether it
// exists. It returns the database error.
func (s *Store) LoggedReview(ctx context.Context, season, reviewID string) (srs.Review, bool, error) {
	r, err := scanReview(s.db.QueryRowContext(ctx, "SELECT "+logColumns+
		" FROM review_log WHERE season = ? AND review_id = ?", season, reviewID))
	if errors.Is(err, sql.ErrNoRows) {
		return srs.Review{}, false, nil
	}
	if err != nil {
		return srs.Review{}, false, fmt.Errorf("review %s in %s: %w", reviewID, season, err)
	}
	return r, true, nil
}

// ReviewLog returns every logged review of one card in the order they apply:
// by reviewed_at, then by the reps they leave behind. It returns the database
// error.
func (s *Store) ReviewLog(ctx context.Context, season, player, question string) ([]srs.Review, error) {
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

// ReviewIDs returns, for each of ids found in the review log of season, the
// number of rows that carry it (the audit proves each is exactly 1); ids not
// logged are absent from the map. It returns the database error.
func (s *Store) ReviewIDs(ctx context.Context, season string, ids []string) (map[string]int, error) {
	counts := make(map[string]int, len(ids))
	for chunk := range slices.Chunk(ids, chunkRows) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, season)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.db.QueryContext(ctx, "SELECT review_id, COUNT(*) FROM review_log WHERE season = ? AND review_id IN ("+
			placeholders("?", len(chunk))+") GROUP BY review_id", args...)
		if err != nil {
			return nil, fmt.Errorf("review ids of %s: %w", season, err)
		}
		for rows.Next() {
			var (
				id string
				n  int
			)
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("review ids of %s: %w", season, err)
			}
			counts[id] += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("review ids of %s: %w", season, err)
		}
	}
	return counts, nil
}
