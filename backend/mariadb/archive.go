package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// ArchiveResult is what ArchiveSeason did.
type ArchiveResult struct {
	Cards, LogRows int64    // rows in the season's archive tables afterwards (exact counts)
	MoveSeconds    float64  // time spent in the partition moves only, not in the counts
	Statements     []string // the DDL issued, in order; empty when a rerun found nothing to move
}

// ArchiveSeason moves the season's partitions of cards and review_log out of
// the live tables into their archive tables (partitions.Convert on both,
// cards first): a metadata-only operation whose cost does not grow with the
// season. It then counts the rows now in the archive tables.
//
// It does not touch the seasons row: the caller marks the season archiving
// before and archived after. It is idempotent and resumable: a rerun after a
// crash between the two moves moves only what is left, and a rerun after
// both reports the counts with no statements. The whole call runs under the
// long timeout, on the pool without socket timeouts (the moves wait for
// metadata locks, the counts read the tables through).
// It returns srs.ErrInvalidSeasonName (before any SQL), srs.ErrUnknownSeason,
// partitions.ErrNotFound when a partition is neither live nor archived (a
// purged season), or the database error.
func (s *Store) ArchiveSeason(ctx context.Context, season string) (ArchiveResult, error) {
	if !srs.ValidSeasonName(season) {
		return ArchiveResult{}, fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season)
	}
	ctx, cancel := s.bound(ctx, longCall)
	defer cancel()
	var one int
	err := s.db.QueryRowContext(ctx, "SELECT 1 FROM seasons WHERE name = ?", season).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ArchiveResult{}, fmt.Errorf("archive season: %w: %s", srs.ErrUnknownSeason, season)
	}
	if err != nil {
		return ArchiveResult{}, fmt.Errorf("archive season %s: %w", season, err)
	}
	defer s.forgetRoute(season)

	var res ArchiveResult
	start := time.Now() // a duration to report, not a clock the logic reads
	for _, table := range partitionedTables {
		moved, stmts, err := partitions.Convert(ctx, s.slow, s.schema, table, season)
		res.Statements = append(res.Statements, stmts...)
		if err != nil {
			return res, fmt.Errorf("archive season %s: %w", season, err)
		}
		if moved {
			s.log.InfoContext(ctx, "season partition archived", "season", season, "table", table)
		}
	}
	res.MoveSeconds = time.Since(start).Seconds()

	cards, logRows, ok, err := s.ArchiveInfo(ctx, season)
	if err != nil {
		return res, fmt.Errorf("archive season %s: %w", season, err)
	}
	if !ok { // purged between the moves and the counts
		return res, fmt.Errorf("archive season %s: %w", season, partitions.ErrNotFound)
	}
	res.Cards, res.LogRows = cards, logRows
	return res, nil
}

// archiveTables returns the archive table names of a season, cards first.
func archiveTables(season string) (cards, log string, err error) {
	if cards, err = partitions.ArchiveTable("cards", season); err != nil {
		return "", "", err
	}
	if log, err = partitions.ArchiveTable("review_log", season); err != nil {
		return "", "", err
	}
	return cards, log, nil
}

// ArchiveInfo counts the rows in a season's archive tables (exact counts, so
// it reads them through). ok is false when either table does not exist: the
// season is not (fully) archived, or it was purged. It runs under the long
// timeout.
// It returns srs.ErrInvalidSeasonName (before any SQL) or the database error.
func (s *Store) ArchiveInfo(ctx context.Context, season string) (cards, logRows int64, ok bool, err error) {
	if !srs.ValidSeasonName(season) {
		return 0, 0, false, fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season)
	}
	ctx, cancel := s.bound(ctx, longCall)
	defer cancel()
	cardsTable, logTable, err := archiveTables(season)
	if err != nil {
		return 0, 0, false, err
	}
	for _, c := range []struct {
		table string
		n     *int64
	}{{cardsTable, &cards}, {logTable, &logRows}} {
		err := s.slow.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+partitions.QuoteIdent(c.table)).Scan(c.n)
		if errNumber(err) == errNoSuchTable {
			return 0, 0, false, nil
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("archive info %s: %w", season, err)
		}
	}
	return cards, logRows, true, nil
}

// ArchivedCard returns one card of an archived season from its archive table
// and whether it exists there; ok is false too when there is no archive table
// (the season is not archived, or was purged). It runs under the read
// timeout.
// It returns srs.ErrInvalidSeasonName (before any SQL) or the database error.
func (s *Store) ArchivedCard(ctx context.Context, season, player, question string) (srs.Card, bool, error) {
	if !srs.ValidSeasonName(season) {
		return srs.Card{}, false, fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season)
	}
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	table, _, err := archiveTables(season)
	if err != nil {
		return srs.Card{}, false, err
	}
	c, err := scanCard(s.db.QueryRowContext(ctx, "SELECT "+cardColumns+" FROM "+partitions.QuoteIdent(table)+
		" WHERE season = ? AND player = ? AND question_id = ?", season, player, question))
	if errors.Is(err, sql.ErrNoRows) || errNumber(err) == errNoSuchTable {
		return srs.Card{}, false, nil
	}
	if err != nil {
		return srs.Card{}, false, fmt.Errorf("archived card %s/%s in %s: %w", player, question, season, err)
	}
	return c, true, nil
}

// PurgeArchive drops the season's archive tables (one DROP TABLE IF EXISTS,
// O(1) whatever their size). It does not check retention: the caller checks
// that the archive is eligible, and marks the season purged afterwards.
// Reviews of the season still queued are rejected from then on. Purging an
// archive that does not exist is no error. It runs under the long timeout.
// It returns srs.ErrInvalidSeasonName (before any SQL) or the database error.
func (s *Store) PurgeArchive(ctx context.Context, season string) error {
	if !srs.ValidSeasonName(season) {
		return fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season)
	}
	ctx, cancel := s.bound(ctx, longCall)
	defer cancel()
	cards, log, err := archiveTables(season)
	if err != nil {
		return err
	}
	defer s.forgetRoute(season)
	if _, err := s.slow.ExecContext(ctx, "DROP TABLE IF EXISTS "+partitions.QuoteIdent(cards)+", "+
		partitions.QuoteIdent(log)); err != nil {
		return fmt.Errorf("purge archive %s: %w", season, err)
	}
	s.log.InfoContext(ctx, "season archive purged", "season", season)
	return nil
}
