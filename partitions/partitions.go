// Package partitions holds the DDL helpers for season partitions: the live
// tables are LIST COLUMNS(season) partitioned, one partition per season.
// Archiving a season moves its partition out to a table of its own with a
// metadata-only operation (Convert); purging drops that table.
//
// Every identifier and season value that reaches DDL is checked against a
// whitelist first (invariant 6): season names with srs.ValidSeasonName, schema
// and table names with ValidIdent. Nothing unvalidated is ever spliced into SQL.
package partitions

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/srsproxy/srsproxy/srs"
)

// ErrInvalidIdent reports a schema or table name outside the whitelist.
var ErrInvalidIdent = errors.New("invalid SQL identifier: must match ^[A-Za-z0-9_]{1,64}$")

var ident = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// ValidIdent reports whether id may be used as a schema or table name.
func ValidIdent(id string) bool { return ident.MatchString(id) }

// Name returns the partition identifier of a season: "SEASON-2026-X" becomes
// "p_SEASON_2026_X". The mapping is one-to-one because a valid name has
// dashes only at its two fixed separator positions.
// It returns srs.ErrInvalidSeasonName for a name outside the whitelist.
func Name(season string) (string, error) {
	if !srs.ValidSeasonName(season) {
		return "", fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season)
	}
	return "p_" + strings.ReplaceAll(season, "-", "_"), nil
}

// QuoteIdent quotes id with backticks for use as an SQL identifier. Call it
// only on validated identifiers; the doubling of inner backticks is a second
// line of defence, not a licence to quote user text.
func QuoteIdent(id string) string {
	return "`" + strings.ReplaceAll(id, "`", "``") + "`"
}

// check validates every input before any SQL runs.
func check(schema, table, season string) (part string, err error) {
	if !ValidIdent(schema) || !ValidIdent(table) {
		return "", fmt.Errorf("%w: %q.%q", ErrInvalidIdent, schema, table)
	}
	return Name(season)
}

// Exists reports whether schema.table has the partition of season, asking
// information_schema.PARTITIONS. It returns srs.ErrInvalidSeasonName or
// ErrInvalidIdent before any SQL, or the database error.
func Exists(ctx context.Context, db *sql.DB, schema, table, season string) (bool, error) {
	part, err := check(schema, table, season)
	if err != nil {
		return false, err
	}
	return exists(ctx, db, schema, table, part)
}

func exists(ctx context.Context, db *sql.DB, schema, table, part string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_NAME = ?`,
		schema, table, part).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("partition %s of %s.%s: %w", part, schema, table, err)
	}
	return n > 0, nil
}

// Ensure adds the partition of season to schema.table unless it exists, and
// reports whether this call created it. Concurrent callers (two sidecars
// creating the same season) all succeed: when the ALTER fails, the partition
// is looked up again and a partition that now exists counts as success.
// It returns srs.ErrInvalidSeasonName or ErrInvalidIdent before any SQL, or
// the database error.
func Ensure(ctx context.Context, db *sql.DB, schema, table, season string) (created bool, err error) {
	part, err := check(schema, table, season)
	if err != nil {
		return false, err
	}
	if ok, err := exists(ctx, db, schema, table, part); err != nil || ok {
		return false, err
	}
	// The season value is spliced as a literal: DDL takes no placeholders, and
	// a valid name holds only [A-Z0-9_-].
	ddl := fmt.Sprintf("ALTER TABLE %s.%s ADD PARTITION (PARTITION %s VALUES IN ('%s'))",
		QuoteIdent(schema), QuoteIdent(table), QuoteIdent(part), season)
	if _, alterErr := db.ExecContext(ctx, ddl); alterErr != nil {
		if ok, err := exists(ctx, db, schema, table, part); err == nil && ok {
			return false, nil // another caller won the race
		}
		return false, fmt.Errorf("add partition %s to %s.%s: %w", part, schema, table, alterErr)
	}
	return true, nil
}

// ErrNotFound reports a season partition that is neither in its live table
// nor already moved to its archive table (never created, or purged).
var ErrNotFound = errors.New("partition not found in the live table and no archive table")

// archiveMarker joins a live table name to its season in archive table names.
const archiveMarker = "_archive_"

// ArchiveTable returns the name of the table that holds a season's partition
// of table once it is archived: ("cards", "SEASON-2026") gives
// "cards_archive_SEASON_2026". Like Name, the mapping is one-to-one.
//
// A name that would pass MariaDB's 64-character limit (a long table and a
// long season) is cut and ends in "_x" and 10 hex digits of the SHA-256 of
// the season instead: still deterministic, and distinct from every uncut name
// because valid season names hold no lower-case letter.
// It returns srs.ErrInvalidSeasonName or ErrInvalidIdent.
func ArchiveTable(table, season string) (string, error) {
	if !ValidIdent(table) {
		return "", fmt.Errorf("%w: %q", ErrInvalidIdent, table)
	}
	part, err := Name(season)
	if err != nil {
		return "", err
	}
	name := table + archiveMarker + strings.TrimPrefix(part, "p_")
	if len(name) <= 64 {
		return name, nil
	}
	sum := sha256.Sum256([]byte(season))
	suffix := "_x" + hex.EncodeToString(sum[:])[:10]
	keep := 64 - len(suffix)
	if keep <= len(table)+len(archiveMarker) {
		return "", fmt.Errorf("%w: table name %q too long for archive tables", ErrInvalidIdent, table)
	}
	return name[:keep] + suffix, nil
}

// TableExists reports whether schema.table exists, asking
// information_schema.TABLES. It returns ErrInvalidIdent before any SQL, or
// the database error.
func TableExists(ctx context.Context, db *sql.DB, schema, table string) (bool, error) {
	if !ValidIdent(schema) || !ValidIdent(table) {
		return false, fmt.Errorf("%w: %q.%q", ErrInvalidIdent, schema, table)
	}
	return tableExists(ctx, db, schema, table)
}

func tableExists(ctx context.Context, db *sql.DB, schema, table string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, schema, table).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("table %s.%s: %w", schema, table, err)
	}
	return n > 0, nil
}

// Convert moves the partition of season out of schema.table into its own
// table, ArchiveTable(table, season), with
//
//	ALTER TABLE t CONVERT PARTITION p TO TABLE a
//
// (MariaDB 10.7 and later). The operation is metadata only: InnoDB renames
// the partition's tablespace, no row is copied, so it costs the same for ten
// rows or a hundred million. It waits for transactions using the table to end
// (metadata lock), and statements that reach the season's partition after it
// fail with error 1526.
//
// It is idempotent: when the partition is already gone and the archive table
// exists, it returns moved=false and no error, as it does when a concurrent
// caller moved it first. stmts holds the DDL it issued, for the caller's log.
// It returns srs.ErrInvalidSeasonName or ErrInvalidIdent before any SQL,
// ErrNotFound when neither the partition nor the archive table exists, or the
// database error (e.g. 1050 when both exist).
func Convert(ctx context.Context, db *sql.DB, schema, table, season string) (moved bool, stmts []string, err error) {
	part, err := check(schema, table, season)
	if err != nil {
		return false, nil, err
	}
	archive, err := ArchiveTable(table, season)
	if err != nil {
		return false, nil, err
	}
	done := func() (bool, error) { // partition gone and archive present
		ok, err := exists(ctx, db, schema, table, part)
		if err != nil || ok {
			return false, err
		}
		ok, err = tableExists(ctx, db, schema, archive)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("convert %s of %s.%s: %w", part, schema, table, ErrNotFound)
		}
		return true, nil
	}
	if ok, err := done(); err != nil || ok {
		return false, nil, err
	}
	ddl := fmt.Sprintf("ALTER TABLE %s.%s CONVERT PARTITION %s TO TABLE %s.%s",
		QuoteIdent(schema), QuoteIdent(table), QuoteIdent(part), QuoteIdent(schema), QuoteIdent(archive))
	stmts = []string{ddl}
	if _, alterErr := db.ExecContext(ctx, ddl); alterErr != nil {
		if ok, err := done(); err == nil && ok {
			return false, stmts, nil // another caller moved it first
		}
		return false, stmts, fmt.Errorf("convert %s of %s.%s to %s: %w", part, schema, table, archive, alterErr)
	}
	return true, stmts, nil
}
