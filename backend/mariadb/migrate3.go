package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/srsproxy/srsproxy/partitions"
)

// The columns of schema version 3, by table kind. ADD COLUMN IF NOT EXISTS
// with a constant default is instant in MariaDB 10.11.
const (
	cardsV3 = `ADD COLUMN IF NOT EXISTS last_review_hash BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER lapses,
		ADD COLUMN IF NOT EXISTS last_recall DOUBLE NOT NULL DEFAULT 0 AFTER last_review_hash`
	// review_id_idx keeps release 1 working during a rolling upgrade: its
	// drainer and LoggedReview look ids up by (season, review_id), which
	// the new primary key no longer serves, and would otherwise scan the
	// season's whole log per batch. Release 2 does not use it; a later
	// migration drops it once release 1 is retired.
	logV3 = `ADD COLUMN IF NOT EXISTS before_review_hash BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER before_lapses,
		ADD COLUMN IF NOT EXISTS before_recall DOUBLE NOT NULL DEFAULT 0 AFTER before_review_hash,
		ADD COLUMN IF NOT EXISTS recall DOUBLE NOT NULL DEFAULT 0 AFTER after_lapses,
		ADD INDEX IF NOT EXISTS review_id_idx (season, review_id)`
	// logKeyV3 is the review log's primary key from version 3 on: a review id
	// is unique per card, not per season.
	logKeyV3 = "season,player,question_id,review_id"
)

// migrate3 brings cards and review_log to version 3, and with them every
// archive table already made from them: CONVERT PARTITION copies a table's
// structure as it is at the move, so the archives of seasons archived before
// version 3 have the old columns and key, and late entries routed to them
// would fail (unknown column). Each step looks first, so a rerun after a
// crash does only what is left:
//   - cards and cards_archive_*: last_review_hash, last_recall;
//   - review_log and review_log_archive_*: before_review_hash, before_recall,
//     recall, and the primary key (season, player, question_id, review_id)
//     instead of (season, review_id), and a secondary index on (season,
//     review_id) for release 1 (logV3), in one ALTER so that the table is
//     rebuilt once. That rebuild copies the table: its cost grows with the
//     log (card_idx stays as it is).
func migrate3(ctx context.Context, conn *sql.Conn, schema string) error {
	for _, kind := range []struct {
		table, alter string
		key          bool
	}{{"cards", cardsV3, false}, {"review_log", logV3, true}} {
		tables, err := archiveTablesOf(ctx, conn, schema, kind.table)
		if err != nil {
			return err
		}
		for _, table := range append([]string{kind.table}, tables...) {
			ddl := "ALTER TABLE " + partitions.QuoteIdent(table) + " " + kind.alter
			if kind.key {
				key, err := primaryKey(ctx, conn, schema, table)
				if err != nil {
					return err
				}
				if key != logKeyV3 {
					ddl += ", DROP PRIMARY KEY, ADD PRIMARY KEY (" + logKeyV3 + ")"
				}
			}
			if _, err := conn.ExecContext(ctx, ddl); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
	}
	return nil
}

// archiveTablesOf lists the archive tables made from table
// (partitions.ArchiveTable names: table + "_archive_" + season).
func archiveTablesOf(ctx context.Context, conn *sql.Conn, schema, table string) ([]string, error) {
	like := strings.ReplaceAll(table, "_", `\_`) + `\_archive\_%`
	rows, err := conn.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE ? ORDER BY TABLE_NAME`, schema, like)
	if err != nil {
		return nil, fmt.Errorf("archive tables of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("archive tables of %s: %w", table, err)
		}
		if partitions.ValidIdent(name) { // archive names always are; anything else is not ours
			out = append(out, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("archive tables of %s: %w", table, err)
	}
	return out, nil
}

// primaryKey returns the primary key columns of schema.table joined by
// commas, "" when it has none.
func primaryKey(ctx context.Context, conn *sql.Conn, schema, table string) (string, error) {
	var key sql.NullString
	err := conn.QueryRowContext(ctx, `SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)
		FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'`, schema, table).Scan(&key)
	if err != nil {
		return "", fmt.Errorf("%s: primary key: %w", table, err)
	}
	return key.String, nil
}

// migrate4 drops card_idx (season, player, question_id, reviewed_at) from
// review_log and its archive tables. Since version 3 the primary key starts
// with (season, player, question_id), so it serves every read of one
// card's log (ApplyReviews' replay, ReviewLog; release 1's reads too, which
// name no index) and card_idx only costs: it is a second random insert per
// drained review into an index as large as the log. Measured with
// BenchmarkDrainSustained on this machine (128 MB buffer pool, log beyond
// it), dropping it took the server's CPU per drained row from 138 to 84 µs
// and batches of 2000 from 4,365 to 7,841 rows/s. DROP INDEX IF EXISTS is
// in place and idempotent.
func migrate4(ctx context.Context, conn *sql.Conn, schema string) error {
	tables, err := archiveTablesOf(ctx, conn, schema, "review_log")
	if err != nil {
		return err
	}
	for _, table := range append([]string{"review_log"}, tables...) {
		if _, err := conn.ExecContext(ctx, "ALTER TABLE "+partitions.QuoteIdent(table)+" DROP INDEX IF EXISTS card_idx"); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
	}
	return nil
}
