package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// The bulk import of cards from another system (srsproxy import memora).
//
// An import is identified by an id its caller derives from what it reads.
// Its progress is one row of import_runs: the pass (a finished import run
// again starts a new pass, to catch up with a source that kept changing),
// when the import's first pass started by this server's clock, the cursor
// (the last source key whose cards are all written) and the pass's counters
// so far, as JSON text the caller owns. import_runs is created on first use rather than by a
// schema migration: a sidecar never reads it.

// importFormat is the version of the import_runs rows; a row of another
// format is refused rather than misread.
const importFormat = 1

const importRunsTable = `CREATE TABLE IF NOT EXISTS import_runs (
	id          VARCHAR(64)  NOT NULL,
	format      INT          NOT NULL,
	options     TEXT         NOT NULL,
	pass        INT          NOT NULL,
	started_ms  BIGINT       NOT NULL,
	cursor_key  VARCHAR(191) NOT NULL DEFAULT '',
	done        BOOL         NOT NULL DEFAULT FALSE,
	counts      MEDIUMTEXT   NOT NULL,
	updated_at  DATETIME(3)  NOT NULL,
	PRIMARY KEY (id)
) ` + tableOptions

// ImportRun is the progress of one import.
type ImportRun struct {
	ID      string
	Options string // what the import reads, for the operator
	Pass    int    // 1 for the first pass
	// StartedMS is when the import's first pass started (unix ms, the
	// database's clock): a card written through srsproxy from then on is
	// never overwritten by it, not when a pass is resumed, nor by a later
	// pass.
	StartedMS int64
	Cursor    string // the last source key fully written; "" before the first
	Done      bool
	Counts    string // the caller's counters (JSON) as of Cursor
	Resumed   bool   // BeginImport found this pass unfinished
}

// nowMS is the database's clock in unix ms: the clock of the cards'
// updated_at, which the import's guard compares with.
func nowMS(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int64, error) {
	var ms int64
	err := q.QueryRowContext(ctx, "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)").Scan(&ms)
	return ms, err
}

// BeginImport returns the run of import id: a new first pass, the
// unfinished pass it had (Resumed), or a new pass after a finished one. It
// returns an error for a row of another format or the database error.
func (s *Store) BeginImport(ctx context.Context, id, options string) (ImportRun, error) {
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, importRunsTable); err != nil {
		return ImportRun{}, fmt.Errorf("import %s: %w", id, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ImportRun{}, fmt.Errorf("import %s: %w", id, err)
	}
	defer tx.Rollback()
	run := ImportRun{ID: id, Options: options}
	var format int
	err = tx.QueryRowContext(ctx, `SELECT format, pass, started_ms, cursor_key, done, counts
		FROM import_runs WHERE id = ? FOR UPDATE`, id).
		Scan(&format, &run.Pass, &run.StartedMS, &run.Cursor, &run.Done, &run.Counts)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return ImportRun{}, fmt.Errorf("import %s: %w", id, err)
	case format != importFormat:
		return ImportRun{}, fmt.Errorf("import %s: its progress row has format %d, this release reads %d", id, format, importFormat)
	case !run.Done:
		run.Resumed = true
		return run, tx.Commit()
	}
	started := run.StartedMS // a later pass keeps the import's start
	if started == 0 {
		if started, err = nowMS(ctx, tx); err != nil {
			return ImportRun{}, fmt.Errorf("import %s: %w", id, err)
		}
	}
	run = ImportRun{ID: id, Options: options, Pass: run.Pass + 1, StartedMS: started, Counts: "{}"}
	_, err = tx.ExecContext(ctx, `INSERT INTO import_runs
		(id, format, options, pass, started_ms, cursor_key, done, counts, updated_at)
		VALUES (?, ?, ?, ?, ?, '', FALSE, '{}', UTC_TIMESTAMP(3))
		ON DUPLICATE KEY UPDATE format = VALUES(format), options = VALUES(options), pass = VALUES(pass),
			started_ms = VALUES(started_ms), cursor_key = '', done = FALSE, counts = '{}', updated_at = VALUES(updated_at)`,
		id, importFormat, options, run.Pass, run.StartedMS)
	if err != nil {
		return ImportRun{}, fmt.Errorf("import %s: %w", id, err)
	}
	return run, tx.Commit()
}

// AdvanceImport records that every card up to and including the source key
// cursor is written, with the counters as of then; done marks the pass
// finished. It returns an error when the pass is no longer the current one
// (another run of the same import took over), or the database error.
func (s *Store) AdvanceImport(ctx context.Context, run ImportRun, cursor, counts string, done bool) error {
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `UPDATE import_runs SET cursor_key = ?, counts = ?, done = ?,
		updated_at = UTC_TIMESTAMP(3) WHERE id = ? AND pass = ? AND started_ms = ?`,
		cursor, counts, done, run.ID, run.Pass, run.StartedMS)
	if err != nil {
		return fmt.Errorf("import %s: save progress: %w", run.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		// Zero also means "nothing changed": look.
		var pass int
		var started int64
		err := s.db.QueryRowContext(ctx, "SELECT pass, started_ms FROM import_runs WHERE id = ?", run.ID).Scan(&pass, &started)
		if err != nil || pass != run.Pass || started != run.StartedMS {
			return fmt.Errorf("import %s: pass %d is no longer current (another run took over)", run.ID, run.Pass)
		}
	}
	return nil
}

// ImportWrite is what WriteImported did with each card it was given.
type ImportWrite struct {
	Inserted  int // the card had no row
	Updated   int // the row was the import's own (or older) and changed
	Unchanged int // the row already held exactly this card
	// Kept are cards whose row was written through srsproxy after the
	// import started, or is newer than the source: never overwritten.
	Kept int
}

// Add adds o's counts to w.
func (w *ImportWrite) Add(o ImportWrite) {
	w.Inserted += o.Inserted
	w.Updated += o.Updated
	w.Unchanged += o.Unchanged
	w.Kept += o.Kept
}

// importColumns are the card columns the import writes.
const importColumns = cardColumns

// importUpsert writes imported cards, each only where the guard holds. The
// guard is the decision "the source may replace this row":
//   - the row holds no review taken by srsproxy (last_review_hash 0: only
//     imports write that; every review since format 2 records its id's
//     hash) and is not newer than the source; or
//   - the row's srsproxy review is older than the source's and was written
//     before the import's first pass started (updated_at, the database's
//     clock, against started_ms): newer wins for reviews from before the
//     import, and a card reviewed through srsproxy after the import started
//     is never overwritten, not across a resume nor by a later pass.
//
// MariaDB applies the assignments in order and later ones see the earlier
// ones' new values, so the columns the guard reads are assigned last, in the
// order last_review_hash, last_review, updated_at: once the guard held, the
// hash is 0 and last_review not above the source's, so it still holds; when
// it did not, nothing changed and it still does not.
var importUpsert = func() string {
	guard := `((VALUES(last_review) >= last_review AND last_review_hash = 0)
		OR (VALUES(last_review) > last_review AND updated_at < FROM_UNIXTIME(?)))`
	var set []string
	for _, c := range []string{"subject", "topic", "stage", "state", "step", "stability", "difficulty",
		"due", "reps", "lapses", "last_recall", "last_review_hash", "last_review"} {
		set = append(set, fmt.Sprintf("%s = IF(%s, VALUES(%s), %s)", c, guard, c, c))
	}
	set = append(set, "updated_at = IF("+guard+", CURRENT_TIMESTAMP(3), updated_at)")
	return "INSERT INTO cards (" + importColumns + ") VALUES %s ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}()

// importGuards is how many times the guard's parameter appears in importUpsert.
const importGuards = 14

// importChunk bounds the cards of one statement and of the lookup before it
// (keyChunk keeps that lookup a range read of the primary key).
const importChunk = keyChunk

// WriteImported writes imported cards (with LastID 0) into the live cards
// table in multi-row statements, under the guard of importUpsert, and says
// what it did with each; run's StartedMS guards. The cards'
// seasons must have their partitions (error 1526 otherwise). One
// transaction: all or nothing. It returns the database error.
func (s *Store) WriteImported(ctx context.Context, run ImportRun, cards []srs.Card) (ImportWrite, error) {
	var w ImportWrite
	if len(cards) == 0 {
		return w, nil
	}
	for i := range cards {
		if cards[i].LastID != 0 {
			return w, fmt.Errorf("import %s: card %s/%s has a review hash; imported cards have none", run.ID, cards[i].Player, cards[i].QuestionID)
		}
	}
	ctx, cancel := s.bound(ctx, longCall)
	defer cancel()
	for attempt := 1; ; attempt++ {
		var err error
		w, err = s.writeImportedOnce(ctx, run, cards)
		if err == nil || attempt == maxAttempts || !retryable(err) {
			if err != nil {
				return ImportWrite{}, fmt.Errorf("import %s: write cards: %w", run.ID, err)
			}
			return w, nil
		}
	}
}

// retryable reports a deadlock or a lock wait timeout: a drainer wrote the
// same cards at the same time; the transaction can simply run again.
func retryable(err error) bool {
	n := errNumber(err)
	return n == 1213 || n == 1205
}

func (s *Store) writeImportedOnce(ctx context.Context, run ImportRun, cards []srs.Card) (ImportWrite, error) {
	var w ImportWrite
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return w, err
	}
	defer tx.Rollback()
	// Primary-key order: neighbours in a statement are neighbours in the index.
	cards = slices.Clone(cards)
	slices.SortFunc(cards, func(a, b srs.Card) int {
		return compareCardKeys(cardKey{a.Season, a.Player, a.QuestionID}, cardKey{b.Season, b.Player, b.QuestionID})
	})
	known, err := playersWithCards(ctx, tx, cards)
	if err != nil {
		return w, err
	}
	var fresh, seen []srs.Card
	for _, c := range cards {
		if known[cardKey{season: c.Season, player: c.Player}] {
			seen = append(seen, c)
		} else {
			fresh = append(fresh, c)
		}
	}
	// Students without a card in the target (a first import): no row to
	// read first, larger statements.
	for chunk := range slices.Chunk(fresh, importFreshChunk) {
		got, err := s.upsertImported(ctx, tx, run, chunk)
		if err != nil {
			return w, err
		}
		// A row that appeared since (a review drained meanwhile) counts 2
		// when replaced, 0 when the guard kept it (without CLIENT_FOUND_ROWS).
		n := int64(len(chunk))
		switch {
		case got >= n:
			w.Updated += int(got - n)
			w.Inserted += int(n - (got - n))
		default:
			w.Inserted += int(got)
			w.Kept += int(n - got)
		}
	}
	for chunk := range slices.Chunk(seen, importChunk) {
		// What is there now, to count and to skip what needs no write
		// (the guard in the statement decides).
		rows, err := existingCards(ctx, tx, chunk, run.StartedMS)
		if err != nil {
			return w, err
		}
		todo := chunk[:0:0]
		expect := int64(0)
		updated := 0
		for _, c := range chunk {
			row, ok := rows[cardKey{c.Season, c.Player, c.QuestionID}]
			switch {
			case !ok:
				w.Inserted++
				expect++
			case row.card == c:
				w.Unchanged++
				continue
			case !row.replaceable(c.LastReview):
				w.Kept++
				continue
			default:
				updated++
				expect += 2
			}
			todo = append(todo, c)
		}
		if len(todo) == 0 {
			continue
		}
		got, err := s.upsertImported(ctx, tx, run, todo)
		if err != nil {
			return w, err
		}
		// A drainer that wrote one of these cards between the read and
		// the statement made the guard keep it: count it kept. Without
		// CLIENT_FOUND_ROWS an insert counts 1, a changed row 2, a kept 0.
		if got < expect && !s.foundRows {
			lost := min(int((expect-got+1)/2), updated)
			updated -= lost
			w.Kept += lost
		}
		w.Updated += updated
	}
	return w, tx.Commit()
}

// importFreshChunk bounds the cards of one statement for students new to
// the target (no lookup before it).
const importFreshChunk = 2000

// upsertImported runs importUpsert for cards and returns the rows
// affected. Statements of the sizes of preparedRows go as server-side
// prepared statements (the binary protocol halves the server's CPU per
// row; see preparedRows), the rest interpolated.
func (s *Store) upsertImported(ctx context.Context, tx *sql.Tx, run ImportRun, cards []srs.Card) (int64, error) {
	started := float64(run.StartedMS) / 1000
	sizes, prepared := splitRows(len(cards), s.chunks, importFreshChunk)
	args := make([]any, 0, importFreshChunk*cardWidth+importGuards)
	var affected int64
	for i, k := range sizes {
		args = args[:0]
		for _, c := range cards[:k] {
			args = appendCard(args, c)
		}
		cards = cards[k:]
		for range importGuards {
			args = append(args, started)
		}
		query := fmt.Sprintf(importUpsert, placeholders(cardPlaceholders, k))
		var (
			res sql.Result
			err error
		)
		if st := s.maybeStmt(ctx, tx, query, prepared[i]); st != nil {
			res, err = st.ExecContext(ctx, args...)
		} else {
			res, err = tx.ExecContext(ctx, query, args...)
		}
		if err != nil {
			return 0, err
		}
		if n, err := res.RowsAffected(); err == nil {
			affected += n
		}
	}
	return affected, nil
}

// playersWithCards returns the (season, player) pairs of cards that have
// any card row (cardKey with question ""): one index dive per student.
func playersWithCards(ctx context.Context, tx *sql.Tx, cards []srs.Card) (map[cardKey]bool, error) {
	bySeason := map[string][]any{}
	var seasons []string
	last := cardKey{}
	for _, c := range cards {
		k := cardKey{season: c.Season, player: c.Player}
		if k == last {
			continue
		}
		last = k
		if bySeason[c.Season] == nil {
			seasons = append(seasons, c.Season)
		}
		bySeason[c.Season] = append(bySeason[c.Season], c.Player)
	}
	out := map[cardKey]bool{}
	for _, season := range seasons {
		for chunk := range slices.Chunk(bySeason[season], keyChunk) {
			rows, err := tx.QueryContext(ctx, "SELECT DISTINCT player FROM cards WHERE season = ? AND player IN ("+
				placeholders("?", len(chunk))+")", append([]any{season}, chunk...)...)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var p string
				if err := rows.Scan(&p); err != nil {
					rows.Close()
					return nil, err
				}
				out[cardKey{season: season, player: p}] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// existingRow is a card row as the import's guard sees it.
type existingRow struct {
	card         srs.Card
	writtenSince bool // updated_at at or after the import started
}

// replaceable is importUpsert's guard for a source card last reviewed at
// lastReview.
func (r existingRow) replaceable(lastReview int64) bool {
	if r.card.LastID == 0 {
		return lastReview >= r.card.LastReview
	}
	return lastReview > r.card.LastReview && !r.writtenSince
}

// existingCards reads the rows of cards (one season or several) by primary key.
func existingCards(ctx context.Context, tx *sql.Tx, cards []srs.Card, startedMS int64) (map[cardKey]existingRow, error) {
	keys := make([]cardKey, len(cards))
	for i, c := range cards {
		keys[i] = cardKey{c.Season, c.Player, c.QuestionID}
	}
	where, args := cardTerms(keys)
	args = append([]any{float64(startedMS) / 1000}, args...)
	rows, err := tx.QueryContext(ctx, "SELECT "+cardColumns+", updated_at >= FROM_UNIXTIME(?) FROM cards WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[cardKey]existingRow, len(cards))
	for rows.Next() {
		var (
			c     srs.Card
			since bool
		)
		err := rows.Scan(&c.Season, &c.Player, &c.QuestionID, &c.Subject, &c.Topic, &c.Stage,
			&c.State, &c.Step, &c.Stability, &c.Difficulty, &c.Due, &c.LastReview, &c.Reps, &c.Lapses,
			&c.LastID, &c.Recall, &since)
		if err != nil {
			return nil, err
		}
		out[cardKey{c.Season, c.Player, c.QuestionID}] = existingRow{card: c, writtenSince: since}
	}
	return out, rows.Err()
}

// EnsureImportSeason returns the season name, creating it (active, with
// the default scheduler, its partitions included) when it does not exist.
// created reports a new season. It returns srs.ErrInvalidSeasonName (before
// any SQL) or the database error.
func (s *Store) EnsureImportSeason(ctx context.Context, name string, now time.Time) (season srs.Season, created bool, err error) {
	se, err := s.Season(ctx, name)
	if err == nil {
		return se, false, nil
	}
	if !errors.Is(err, srs.ErrUnknownSeason) {
		return srs.Season{}, false, err
	}
	se, err = s.CreateSeason(ctx, srs.Season{Name: name, IsActive: true, EnableCache: true,
		Scheduler: srs.DefaultSchedulerConfig(), CreatedAt: now})
	if errors.Is(err, srs.ErrSeasonExists) { // another import or an admin, just now
		se, err = s.Season(ctx, name)
		return se, false, err
	}
	return se, err == nil, err
}
