package mariadb

import (
	"context"
	"database/sql"
	"fmt"
)

// Collation: every string column is utf8mb4 with utf8mb4_nopad_bin.
//   - bin: player and question ids are Redis strings, byte-exact and case
//     sensitive; "Q1" and "q1" are two cards there and must be two rows here.
//   - nopad: MariaDB's utf8mb4_bin (and ascii_bin) are PAD SPACE, so "q1" and
//     "q1 " would collide on the primary key and merge two cards.
//   - one charset for the whole schema: no column is ever converted to match
//     a literal, which would silently stop index use and partition pruning.
//
// The cards and review_log tables start with one placeholder partition for
// the impossible empty season name (LIST partitioning needs at least one); seasons get
// theirs from partitions.Ensure. No DEFAULT partition: MariaDB would never
// move rows out of it when a season's partition is added later.
const tableOptions = `ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin`

const partitioning = `PARTITION BY LIST COLUMNS(season) (PARTITION p_placeholder VALUES IN (''))`

// migration is one schema version: its statements, then its function (nil
// for none), which runs the DDL that depends on what is there.
type migration struct {
	stmts []string
	fn    func(ctx context.Context, conn *sql.Conn, schema string) error
}

// migrations are applied in order; migrations[i] brings the schema to version i+1.
// Statements are idempotent so a half-applied migration can run again.
var migrations = []migration{
	{stmts: []string{
		`CREATE TABLE IF NOT EXISTS seasons (
			name              VARCHAR(48) NOT NULL,
			start_date        DATE NULL,
			end_date          DATE NULL,
			is_active         BOOL NOT NULL DEFAULT FALSE,
			partition_created BOOL NOT NULL DEFAULT FALSE,
			enable_cache      BOOL NOT NULL DEFAULT TRUE,
			auto_archive      BOOL NOT NULL DEFAULT FALSE,
			archived_at       DATETIME(3) NULL,
			created_at        DATETIME(3) NOT NULL,
			scheduler         JSON NOT NULL,
			PRIMARY KEY (name)
		) ` + tableOptions,

		`CREATE TABLE IF NOT EXISTS cards (
			season      VARCHAR(48)  NOT NULL,
			player      VARCHAR(191) NOT NULL,
			question_id VARCHAR(191) NOT NULL,
			subject     VARCHAR(191) NOT NULL DEFAULT '',
			topic       VARCHAR(191) NOT NULL DEFAULT '',
			stage       VARCHAR(191) NOT NULL DEFAULT '',
			state       TINYINT  NOT NULL,
			step        SMALLINT NOT NULL,
			stability   DOUBLE   NOT NULL,
			difficulty  DOUBLE   NOT NULL,
			due         BIGINT   NOT NULL,
			last_review BIGINT   NOT NULL,
			reps        INT      NOT NULL,
			lapses      INT      NOT NULL,
			updated_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
			PRIMARY KEY (season, player, question_id),
			KEY due_idx (season, player, due)
		) ` + tableOptions + ` ` + partitioning,

		`CREATE TABLE IF NOT EXISTS review_log (
			season             VARCHAR(48)  NOT NULL,
			review_id          VARCHAR(191) NOT NULL,
			player             VARCHAR(191) NOT NULL,
			question_id        VARCHAR(191) NOT NULL,
			grade              TINYINT NOT NULL,
			reviewed_at        BIGINT  NOT NULL,
			elapsed_days       INT     NOT NULL,
			duration_ms        BIGINT  NOT NULL,
			subject            VARCHAR(191) NOT NULL DEFAULT '',
			topic              VARCHAR(191) NOT NULL DEFAULT '',
			stage              VARCHAR(191) NOT NULL DEFAULT '',
			before_state       TINYINT  NOT NULL,
			before_step        SMALLINT NOT NULL,
			before_stability   DOUBLE   NOT NULL,
			before_difficulty  DOUBLE   NOT NULL,
			before_due         BIGINT   NOT NULL,
			before_last_review BIGINT   NOT NULL,
			before_reps        INT      NOT NULL,
			before_lapses      INT      NOT NULL,
			after_state        TINYINT  NOT NULL,
			after_step         SMALLINT NOT NULL,
			after_stability    DOUBLE   NOT NULL,
			after_difficulty   DOUBLE   NOT NULL,
			after_due          BIGINT   NOT NULL,
			after_last_review  BIGINT   NOT NULL,
			after_reps         INT      NOT NULL,
			after_lapses       INT      NOT NULL,
			sidecar            VARCHAR(191) NOT NULL DEFAULT '',
			logged_at          TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
			PRIMARY KEY (season, review_id),
			KEY card_idx (season, player, question_id, reviewed_at)
		) ` + tableOptions + ` ` + partitioning,
	}},
	{stmts: []string{
		// Version 2: the archive lifecycle of a season, and background jobs.
		`ALTER TABLE seasons
			ADD COLUMN IF NOT EXISTS archive_state  VARCHAR(16) NOT NULL DEFAULT '' AFTER archived_at,
			ADD COLUMN IF NOT EXISTS purge_eligible BOOL NOT NULL DEFAULT FALSE AFTER archive_state`,

		// jobs are the background jobs that must survive a restart: a job
		// resumes from (cursor_player, cursor_question). result is free-form
		// JSON text; not a JSON column, so an empty result needs no '{}'.
		`CREATE TABLE IF NOT EXISTS jobs (
			id              VARCHAR(64)  NOT NULL,
			kind            VARCHAR(32)  NOT NULL,
			season          VARCHAR(48)  NOT NULL DEFAULT '',
			state           VARCHAR(16)  NOT NULL,
			processed       BIGINT       NOT NULL DEFAULT 0,
			total           BIGINT       NOT NULL DEFAULT 0,
			cursor_player   VARCHAR(191) NOT NULL DEFAULT '',
			cursor_question VARCHAR(191) NOT NULL DEFAULT '',
			owner           VARCHAR(191) NOT NULL DEFAULT '',
			started_at      DATETIME(3)  NOT NULL,
			updated_at      DATETIME(3)  NOT NULL,
			finished_at     DATETIME(3)  NULL,
			error           TEXT         NOT NULL DEFAULT '',
			result          MEDIUMTEXT   NOT NULL DEFAULT '',
			PRIMARY KEY (id),
			KEY state_idx (state, started_at)
		) ` + tableOptions,
	}},
	// Version 3 (core v2): the card record's last_id and recall, on cards and
	// on both schedules of review_log, and review ids unique per card.
	{fn: migrate3},
	// Version 4: review_log loses card_idx (see migrate4).
	{fn: migrate4},
	// Version 5: a season's day rule, timezone and day_start (see migrate5).
	{fn: migrate5},
}

// migrate brings the schema to the latest version. A named lock serialises
// sidecars starting at the same time; it is held on one connection.
func migrate(ctx context.Context, db *sql.DB, schema string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	lock := "srsproxy.migrate." + schema
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", lock).Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return fmt.Errorf("lock %s not granted within 60s", lock)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", lock)

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INT NOT NULL PRIMARY KEY,
		applied_at DATETIME(3) NOT NULL DEFAULT UTC_TIMESTAMP(3)
	) `+tableOptions); err != nil {
		return err
	}
	var version int
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&version); err != nil {
		return err
	}
	for v := version; v < len(migrations); v++ {
		for _, stmt := range migrations[v].stmts {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("version %d: %w", v+1, err)
			}
		}
		if fn := migrations[v].fn; fn != nil {
			if err := fn(ctx, conn, schema); err != nil {
				return fmt.Errorf("version %d: %w", v+1, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (?)", v+1); err != nil {
			return fmt.Errorf("version %d: %w", v+1, err)
		}
	}
	return nil
}
