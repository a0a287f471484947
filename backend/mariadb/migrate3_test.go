package mariadb

import (
	"context"
	"database/sql"
	"reflect"
	"testing"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// TestMigrateFromVersion2 opens a database left at schema version 2 by
// release 1, with a live season and a season archived under the old key
// (archive tables made by CONVERT PARTITION carry the table's structure of
// then): migration 3 brings the live tables and both archive tables to the
// new columns and the per-card key, the rows stay, and late entries of the
// archived season are routed to its archive tables and keyed per card there
// too. A second run of the migration changes nothing.
func TestMigrateFromVersion2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, schema := testDSN(t)
	raw := rawDB(t, dsn, schema)
	for _, stmt := range append(append(append([]string{}, migrations[0].stmts...), migrations[1].stmts...),
		"CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL DEFAULT UTC_TIMESTAMP(3))",
		"INSERT INTO schema_version (version) VALUES (1), (2)") {
		if _, err := raw.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	const old, cur = "SEASON-2024", "SEASON-2025"
	for _, se := range []struct {
		name  string
		state srs.ArchiveState
	}{{old, srs.ArchiveDone}, {cur, srs.ArchiveNone}} {
		for _, table := range partitionedTables {
			if _, err := partitions.Ensure(ctx, raw, schema, table, se.name); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO seasons (name, is_active, partition_created, created_at, scheduler, archive_state)
			VALUES (?, TRUE, TRUE, UTC_TIMESTAMP(3), '{}', ?)`, se.name, se.state); err != nil {
			t.Fatal(err)
		}
		// Release 1's rows: no hash, no recall.
		if _, err := raw.ExecContext(ctx, `INSERT INTO cards (season, player, question_id, subject, topic, stage,
			state, step, stability, difficulty, due, last_review, reps, lapses)
			VALUES (?, 'alice', 'q1', 'math', '', '', 2, 0, 1.5, 5, 2000000, 1000000, 1, 0)`, se.name); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, `INSERT INTO review_log (season, review_id, player, question_id, grade,
			reviewed_at, elapsed_days, duration_ms, subject, topic, stage,
			before_state, before_step, before_stability, before_difficulty, before_due, before_last_review, before_reps, before_lapses,
			after_state, after_step, after_stability, after_difficulty, after_due, after_last_review, after_reps, after_lapses, sidecar)
			VALUES (?, 'r1', 'alice', 'q1', 3, 1000000, 0, 900, 'math', '', '', 0, 0, 0, 0, 0, 0, 0, 0,
			2, 0, 1.5, 5, 2000000, 1000000, 1, 0, 'node-1')`, se.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range partitionedTables {
		if _, _, err := partitions.Convert(ctx, raw, schema, table, old); err != nil {
			t.Fatal(err)
		}
	}
	logArchive, _ := partitions.ArchiveTable("review_log", old)
	cardsArchive, _ := partitions.ArchiveTable("cards", old)
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if key, err := primaryKey(ctx, conn, schema, logArchive); err != nil || key != "season,review_id" {
		t.Fatalf("archive key before = %q, %v; the test needs the old key", key, err)
	}

	s := openStore(t, dsn, nil)
	var versions int
	if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_version").Scan(&versions); err != nil || versions != len(migrations) {
		t.Errorf("schema_version rows = %d, %v; want %d", versions, err, len(migrations))
	}
	checkV3 := func() {
		t.Helper()
		for _, table := range []string{"review_log", logArchive} {
			if key, err := primaryKey(ctx, conn, schema, table); err != nil || key != logKeyV3 {
				t.Errorf("%s primary key = %q, %v; want %s", table, key, err, logKeyV3)
			}
			// card_idx: dropped by version 4.
			for index, want := range map[string]string{"card_idx": "", "review_id_idx": "season,review_id"} {
				if key, err := indexColumns(ctx, raw, schema, table, index); err != nil || key != want {
					t.Errorf("%s %s = %q, %v; want %s", table, index, key, err, want)
				}
			}
			for _, col := range []string{"before_review_hash", "before_recall", "recall"} {
				if !hasColumn(t, raw, schema, table, col) {
					t.Errorf("%s has no %s", table, col)
				}
			}
		}
		for _, table := range []string{"cards", cardsArchive} {
			for _, col := range []string{"last_review_hash", "last_recall"} {
				if !hasColumn(t, raw, schema, table, col) {
					t.Errorf("%s has no %s", table, col)
				}
			}
		}
	}
	checkV3()

	want := srs.Card{Season: cur, Player: "alice", QuestionID: "q1", Subject: "math",
		Schedule: srs.Schedule{State: srs.StateReview, Stability: 1.5, Difficulty: 5, Due: 2_000_000, LastReview: 1_000_000, Reps: 1}}
	if c := mustCard(t, s, cur, "alice", "q1"); !reflect.DeepEqual(c, want) {
		t.Errorf("live card = %+v, want %+v", c, want)
	}
	want.Season = old
	if c := mustArchivedCard(t, s, old, "alice", "q1"); !reflect.DeepEqual(c, want) {
		t.Errorf("archived card = %+v, want %+v", c, want)
	}
	if r, ok, err := s.LoggedReview(ctx, cur, "alice", "q1", "r1"); err != nil || !ok || r.After.LastID != srs.ReviewHash("r1") || r.Before.LastID != 0 {
		t.Errorf("LoggedReview of a release-1 row = %+v, %v, %v", r, ok, err)
	}

	// Late entries of the archived season: the same id on another card is
	// another review now, also in the archive table made under the old key;
	// a review built on alice's row (last_id unknown) continues it.
	bob := review("r1", old, "bob", "q1", 3_000_000, 1)
	alice := review("r2", old, "alice", "q1", 4_000_000, 2)
	alice.Before = want.Schedule
	if rejected := apply(t, s, bob, alice); rejected != nil {
		t.Fatalf("rejected %v", rejected)
	}
	if got := archivedLog(t, s, old); !reflect.DeepEqual(got, map[string]int{"r1": 2, "r2": 1}) {
		t.Errorf("archived log = %v", got)
	}
	for _, r := range []srs.Review{bob, alice} {
		if c := mustArchivedCard(t, s, old, r.Player, r.QuestionID); !reflect.DeepEqual(c, r.Card()) {
			t.Errorf("archived %s = %+v, want %+v", r.Player, c, r.Card())
		}
	}

	// The migration is idempotent (a crash halfway runs it again).
	if err := migrate3(ctx, conn, schema); err != nil {
		t.Fatalf("second run: %v", err)
	}
	checkV3()
}

// rawDB opens dsn's database without migrating it, closed after the test.
func rawDB(tb testing.TB, dsn, schema string) *sql.DB {
	tb.Helper()
	admin, err := sql.Open("mysql", dsn[:len(dsn)-len(schema)])
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + schema); err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func indexColumns(ctx context.Context, db *sql.DB, schema, table, index string) (string, error) {
	var cols sql.NullString
	err := db.QueryRowContext(ctx, `SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = ?`,
		schema, table, index).Scan(&cols)
	return cols.String, err
}

func hasColumn(tb testing.TB, db *sql.DB, schema, table, column string) bool {
	tb.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?`, schema, table, column).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n == 1
}
