package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/srsproxy/srsproxy/srs"
)

// cardColumns are the columns of a card row, in srs.Card order:
// last_review_hash is Schedule.LastID, last_recall Schedule.Recall.
const cardColumns = `season, player, question_id, subject, topic, stage,
	state, step, stability, difficulty, due, last_review, reps, lapses, last_review_hash, last_recall`

func scanCard(row interface{ Scan(...any) error }) (srs.Card, error) {
	var c srs.Card
	err := row.Scan(&c.Season, &c.Player, &c.QuestionID, &c.Subject, &c.Topic, &c.Stage,
		&c.State, &c.Step, &c.Stability, &c.Difficulty, &c.Due, &c.LastReview, &c.Reps, &c.Lapses,
		&c.LastID, &c.Recall)
	return c, err
}

// queryCards runs a card query under the read timeout and collects its rows.
func (s *Store) queryCards(ctx context.Context, query string, args ...any) ([]srs.Card, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	return collectCards(ctx, s.db, query, args...)
}

// querier is a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// collectCards runs a card query on q and collects its rows.
func collectCards(ctx context.Context, q querier, query string, args ...any) ([]srs.Card, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	return scanCards(rows, err)
}

// collectStmt runs a prepared card query and collects its rows.
func collectStmt(ctx context.Context, st *sql.Stmt, args ...any) ([]srs.Card, error) {
	rows, err := st.QueryContext(ctx, args...)
	return scanCards(rows, err)
}

// scanCards collects the cards of a query's rows (or returns its error).
func scanCards(rows *sql.Rows, err error) ([]srs.Card, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []srs.Card
	for rows.Next() {
		c, err := scanCard(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UserCards returns every card of one player in one season, ordered by
// question id: the whole user-season a cache miss loads. It returns the
// database error (context.DeadlineExceeded in its chain after the read
// timeout).
func (s *Store) UserCards(ctx context.Context, season, player string) ([]srs.Card, error) {
	cards, err := s.queryCards(ctx, "SELECT "+cardColumns+
		" FROM cards WHERE season = ? AND player = ? ORDER BY question_id", season, player)
	if err != nil {
		return nil, fmt.Errorf("cards of %s in %s: %w", player, season, err)
	}
	return cards, nil
}

// Card returns one card and whether it exists. It returns the database error
// (context.DeadlineExceeded in its chain after the read timeout).
func (s *Store) Card(ctx context.Context, season, player, question string) (srs.Card, bool, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	c, err := scanCard(s.db.QueryRowContext(ctx, "SELECT "+cardColumns+
		" FROM cards WHERE season = ? AND player = ? AND question_id = ?", season, player, question))
	if errors.Is(err, sql.ErrNoRows) {
		return srs.Card{}, false, nil
	}
	if err != nil {
		return srs.Card{}, false, fmt.Errorf("card %s/%s in %s: %w", player, question, season, err)
	}
	return c, true, nil
}

// dueQuery is the Safe Mode read. FORCE INDEX keeps it on (season, player,
// due) whatever the statistics say: the optimizer prefers the primary key for
// small players and then sorts, which costs all of a player's cards instead of
// the first LIMIT entries of the index. ORDER BY due alone lets the index give
// the order (ties come in question_id order, the index's implicit suffix).
const dueQuery = "SELECT " + cardColumns + ` FROM cards FORCE INDEX (due_idx)
	WHERE season = ? AND player = ? AND due <= ?%s ORDER BY due LIMIT ?`

// DueCards returns up to limit cards of a player due at or before now (unix
// ms), most overdue first, read through the (season, player, due) index.
// A non-empty subject keeps exactly that subject: it filters while walking the
// index, so it is not a filter applied to an overall top-N. A limit below 1
// returns nothing. It runs under the read timeout and returns the database
// error.
func (s *Store) DueCards(ctx context.Context, season, player, subject string, now int64, limit int) ([]srs.Card, error) {
	if limit < 1 {
		return nil, nil
	}
	var (
		cards []srs.Card
		err   error
	)
	if subject == "" {
		cards, err = s.queryCards(ctx, fmt.Sprintf(dueQuery, ""), season, player, now, limit)
	} else {
		cards, err = s.queryCards(ctx, fmt.Sprintf(dueQuery, " AND subject = ?"), season, player, now, subject, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("due cards of %s in %s: %w", player, season, err)
	}
	return cards, nil
}

// CountDue returns how many cards of a player are due at or before now (unix
// ms), of one subject when subject is not empty. It runs under the read
// timeout and returns the database error.
func (s *Store) CountDue(ctx context.Context, season, player, subject string, now int64) (int64, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	query := "SELECT COUNT(*) FROM cards FORCE INDEX (due_idx) WHERE season = ? AND player = ? AND due <= ?"
	args := []any{season, player, now}
	if subject != "" {
		query += " AND subject = ?"
		args = append(args, subject)
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count due of %s in %s: %w", player, season, err)
	}
	return n, nil
}

// pageSize is the keyset page of CardsWithReviews.
const pageSize = 1000

// CardsWithReviews calls fn for every card of every season in primary-key
// order (season, player, question_id). It pages by keyset, never by OFFSET,
// and calls fn between queries, so fn may use the store; each page has the
// read timeout, the whole walk only ctx's deadline. It stops at and
// returns fn's first error, or the database error.
func (s *Store) CardsWithReviews(ctx context.Context, fn func(c srs.Card) error) error {
	// The expanded OR form, unlike a row comparison, is a range scan in MariaDB.
	const next = "SELECT " + cardColumns + ` FROM cards
		WHERE season > ? OR (season = ? AND (player > ? OR (player = ? AND question_id > ?)))
		ORDER BY season, player, question_id LIMIT ?`
	page, err := s.queryCards(ctx, "SELECT "+cardColumns+
		" FROM cards ORDER BY season, player, question_id LIMIT ?", pageSize)
	for {
		if err != nil {
			return fmt.Errorf("stream cards: %w", err)
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		k := page[len(page)-1]
		page, err = s.queryCards(ctx, next, k.Season, k.Season, k.Player, k.Player, k.QuestionID, pageSize)
	}
}

// cardsPageFirst and cardsPageNext are the keyset pages of CardsPage: a range
// read of the primary key from the last key seen, never an OFFSET, so a page
// deep into a 100-million-card season costs what the first one does. The
// expanded OR form, unlike a row comparison, is a range scan in MariaDB.
const (
	cardsPageFirst = "SELECT " + cardColumns + ` FROM cards
		WHERE season = ? ORDER BY player, question_id LIMIT ?`
	cardsPageNext = "SELECT " + cardColumns + ` FROM cards
		WHERE season = ? AND (player > ? OR (player = ? AND question_id > ?))
		ORDER BY player, question_id LIMIT ?`
)

// CardsPage returns up to limit cards of a season in primary-key order
// (player, question_id) strictly after (afterPlayer, afterQuestion); ("", "")
// starts at the beginning. Pass the last card of a page to get the next; a
// page shorter than limit is the last. Cache rebuilds stream a season with
// it. A limit below 1 returns nothing. It runs under the read timeout.
// It returns srs.ErrInvalidSeasonName (before any SQL) or the database error.
func (s *Store) CardsPage(ctx context.Context, season, afterPlayer, afterQuestion string, limit int) ([]srs.Card, error) {
	if !srs.ValidSeasonName(season) {
		return nil, fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season)
	}
	if limit < 1 {
		return nil, nil
	}
	var (
		cards []srs.Card
		err   error
	)
	if afterPlayer == "" && afterQuestion == "" {
		cards, err = s.queryCards(ctx, cardsPageFirst, season, limit)
	} else {
		cards, err = s.queryCards(ctx, cardsPageNext, season, afterPlayer, afterPlayer, afterQuestion, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("cards page of %s after %q/%q: %w", season, afterPlayer, afterQuestion, err)
	}
	return cards, nil
}
