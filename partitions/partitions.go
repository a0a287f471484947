// Package partitions holds the DDL helpers for season partitions: the live
// tables are LIST COLUMNS(season) partitioned, one partition per season.
//
// Every identifier and season value that reaches DDL is checked against a
// whitelist first (invariant 6): season names with srs.ValidSeasonName, schema
// and table names with ValidIdent. Nothing unvalidated is ever spliced into SQL.
package partitions

import (
	"context"
	"database/sql"
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
