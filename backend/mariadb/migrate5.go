package mariadb

import (
	"context"
	"database/sql"
	"fmt"
)

// seasonsV5 are the day-rule columns of schema version 5 (srs.SchedulerConfig
// Timezone and DayStart). They are columns rather than keys of the scheduler
// JSON so that a sidecar of the previous release, which rewrites that JSON
// on SRS.SEASON SET during a rolling upgrade, cannot drop them. ADD COLUMN
// IF NOT EXISTS with a constant default is instant in MariaDB 10.11.
//
// Every season that exists when the migration runs gets day_start −1
// (srs.DayStartLegacy): its cards were scheduled counting whole 24-hour
// periods, and switching them to day boundaries would move the elapsed days
// of every review after the upgrade — and of every replay of an older one —
// without anyone asking. An admin switches a season with SRS.SEASON SET
// name DAYSTART h. Seasons created by this release are inserted with the
// defaults of srs.DefaultSchedulerConfig (UTC, 4 am); the column default
// −1 only serves rows inserted by the previous release during an upgrade,
// which that release schedules by 24-hour periods.
const seasonsV5 = `ADD COLUMN IF NOT EXISTS timezone VARCHAR(64) NOT NULL DEFAULT 'UTC' AFTER scheduler,
	ADD COLUMN IF NOT EXISTS day_start TINYINT NOT NULL DEFAULT -1 AFTER timezone`

// migrate5 adds the seasons' day rule. The statement is idempotent, so a rerun
// after a crash changes nothing; archive tables are not involved (seasons is
// not partitioned).
func migrate5(ctx context.Context, conn *sql.Conn, _ string) error {
	if _, err := conn.ExecContext(ctx, "ALTER TABLE seasons "+seasonsV5); err != nil {
		return fmt.Errorf("seasons: %w", err)
	}
	return nil
}
