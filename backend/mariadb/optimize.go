package mariadb

import (
	"context"
	"fmt"

	"github.com/srsproxy/srsproxy/srs"
)

// LogEntry is what the parameter optimiser reads of one review-log row.
type LogEntry struct {
	Player, Question, ID string
	Grade                int
	ReviewedAt           int64 // unix ms
	ElapsedDays          int   // days since the card's previous review, as the season counted them
	BeforeState          srs.State
	AfterReps            int
}

const (
	logPageFirst = `SELECT player, question_id, review_id, grade, reviewed_at, elapsed_days, before_state, after_reps
		FROM review_log FORCE INDEX (PRIMARY) WHERE season = ?
		ORDER BY player, question_id, review_id LIMIT ?`
	logPageNext = `SELECT player, question_id, review_id, grade, reviewed_at, elapsed_days, before_state, after_reps
		FROM review_log FORCE INDEX (PRIMARY) WHERE season = ? AND (player > ? OR (player = ? AND
		(question_id > ? OR (question_id = ? AND review_id > ?))))
		ORDER BY player, question_id, review_id LIMIT ?`
)

// ReviewLogPage returns up to limit rows of the season's live review log in
// primary-key order (player, question_id, review_id) strictly after the
// row after; the zero ReviewKey starts at the beginning. A page shorter
// than limit is the last. Each page is one query under the read timeout.
// It returns srs.ErrInvalidSeasonName or the database error.
func (s *Store) ReviewLogPage(ctx context.Context, season string, after ReviewKey, limit int) ([]LogEntry, error) {
	if !srs.ValidSeasonName(season) {
		return nil, fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season)
	}
	if limit < 1 {
		return nil, nil
	}
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	query, args := logPageFirst, []any{season, limit}
	if after != (ReviewKey{}) {
		query = logPageNext
		args = []any{season, after.Player, after.Player, after.Question, after.Question, after.ID, limit}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("review log page of %s after %v: %w", season, after, err)
	}
	defer rows.Close()
	out := make([]LogEntry, 0, limit)
	for rows.Next() {
		var e LogEntry
		if err := rows.Scan(&e.Player, &e.Question, &e.ID, &e.Grade, &e.ReviewedAt, &e.ElapsedDays, &e.BeforeState, &e.AfterReps); err != nil {
			return nil, fmt.Errorf("review log page of %s: %w", season, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("review log page of %s: %w", season, err)
	}
	return out, nil
}

// CountReviewLog returns the number of rows in the season's live review
// log, under the read timeout, or the database error.
func (s *Store) CountReviewLog(ctx context.Context, season string) (int64, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM review_log WHERE season = ?", season).Scan(&n); err != nil {
		return 0, fmt.Errorf("count review log of %s: %w", season, err)
	}
	return n, nil
}
