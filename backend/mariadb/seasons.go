package mariadb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// partitionedTables get one partition per season.
var partitionedTables = []string{"cards", "review_log"}

// schedulerJSON is the stored form of srs.SchedulerConfig but for its day
// rule, which has columns of its own (see seasonsV5). Steps are minutes;
// a nil slice is stored as null (defaults) and an empty one as [] (no steps),
// and encoding/json keeps that distinction in both directions.
type schedulerJSON struct {
	Params           []float64 `json:"params"`
	DesiredRetention float64   `json:"desired_retention"`
	LearningSteps    []float64 `json:"learning_steps"`
	RelearningSteps  []float64 `json:"relearning_steps"`
	MaximumInterval  int       `json:"maximum_interval"`
	Fuzz             bool      `json:"fuzz"`
	ShortTerm        bool      `json:"short_term"`
}

func minutes(ds []time.Duration) []float64 {
	if ds == nil {
		return nil
	}
	m := make([]float64, len(ds))
	for i, d := range ds {
		m[i] = d.Minutes()
	}
	return m
}

func durations(m []float64) []time.Duration {
	if m == nil {
		return nil
	}
	ds := make([]time.Duration, len(m))
	for i, v := range m {
		ds[i] = time.Duration(v * float64(time.Minute))
	}
	return ds
}

func encodeScheduler(c srs.SchedulerConfig) ([]byte, error) {
	return json.Marshal(schedulerJSON{
		Params:           c.Params,
		DesiredRetention: c.DesiredRetention,
		LearningSteps:    minutes(c.LearningSteps),
		RelearningSteps:  minutes(c.RelearningSteps),
		MaximumInterval:  c.MaximumInterval,
		Fuzz:             c.EnableFuzz,
		ShortTerm:        c.EnableShortTerm,
	})
}

func decodeScheduler(b []byte) (srs.SchedulerConfig, error) {
	var j schedulerJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return srs.SchedulerConfig{}, err
	}
	return srs.SchedulerConfig{
		Params:           j.Params,
		DesiredRetention: j.DesiredRetention,
		LearningSteps:    durations(j.LearningSteps),
		RelearningSteps:  durations(j.RelearningSteps),
		MaximumInterval:  j.MaximumInterval,
		EnableFuzz:       j.Fuzz,
		EnableShortTerm:  j.ShortTerm,
	}, nil
}

// checkArchiveState refuses a state outside the four srs.Archive* ones.
func checkArchiveState(st srs.ArchiveState) error {
	switch st {
	case srs.ArchiveNone, srs.ArchiveInProgress, srs.ArchiveDone, srs.ArchivePurged:
		return nil
	}
	return fmt.Errorf("unknown archive state %q", st)
}

// date is the DATE parameter of t: its calendar day, NULL when zero.
func date(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.DateOnly)
}

// instant is the DATETIME(3) parameter of t, NULL when zero.
func instant(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// CreateSeason creates a season and its partitions on cards and review_log,
// and returns it as stored (partition_created set, created_at filled in with
// the server's UTC time when zero). The partitions are ensured before the row
// is inserted, so a failure leaves no season row without partitions and the
// call can simply be repeated.
// It runs under the write timeout.
// It returns srs.ErrInvalidSeasonName (before any SQL), srs.ErrSeasonExists,
// an error for an unknown archive state, or the database error.
func (s *Store) CreateSeason(ctx context.Context, season srs.Season) (srs.Season, error) {
	if !srs.ValidSeasonName(season.Name) {
		return srs.Season{}, fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season.Name)
	}
	if err := checkArchiveState(season.Archive); err != nil {
		return srs.Season{}, fmt.Errorf("create season %s: %w", season.Name, err)
	}
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	for _, table := range partitionedTables {
		// DDL waits for metadata locks: the pool without socket timeouts.
		if _, err := partitions.Ensure(ctx, s.slow, s.schema, table, season.Name); err != nil {
			return srs.Season{}, fmt.Errorf("create season %s: %w", season.Name, err)
		}
	}
	sched, err := encodeScheduler(season.Scheduler)
	if err != nil {
		return srs.Season{}, fmt.Errorf("create season %s: %w", season.Name, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO seasons
		(name, start_date, end_date, is_active, partition_created, enable_cache, auto_archive,
		 archived_at, archive_state, purge_eligible, created_at, scheduler, timezone, day_start)
		VALUES (?, ?, ?, ?, TRUE, ?, ?, ?, ?, ?, COALESCE(?, UTC_TIMESTAMP(3)), ?, ?, ?)`,
		season.Name, date(season.Start), date(season.End), season.IsActive, season.EnableCache,
		season.AutoArchive, instant(season.ArchivedAt), string(season.Archive), season.PurgeEligible,
		instant(season.CreatedAt), sched, season.Scheduler.Timezone, season.Scheduler.DayStart)
	if errNumber(err) == errDupEntry {
		return srs.Season{}, fmt.Errorf("%w: %s", srs.ErrSeasonExists, season.Name)
	}
	if err != nil {
		return srs.Season{}, fmt.Errorf("create season %s: %w", season.Name, err)
	}
	s.log.InfoContext(ctx, "season created", "season", season.Name)
	return s.Season(ctx, season.Name)
}

const seasonColumns = `name, start_date, end_date, is_active, partition_created, enable_cache,
	auto_archive, archived_at, archive_state, purge_eligible, created_at, scheduler, timezone, day_start`

func scanSeason(row interface{ Scan(...any) error }) (srs.Season, error) {
	var (
		se                   srs.Season
		start, end, archived sql.NullTime
		sched                []byte
		tz                   string
		dayStart             int
	)
	err := row.Scan(&se.Name, &start, &end, &se.IsActive, &se.PartitionCreated, &se.EnableCache,
		&se.AutoArchive, &archived, &se.Archive, &se.PurgeEligible, &se.CreatedAt, &sched, &tz, &dayStart)
	if err != nil {
		return srs.Season{}, err
	}
	se.Start, se.End, se.ArchivedAt = start.Time, end.Time, archived.Time
	if se.Scheduler, err = decodeScheduler(sched); err != nil {
		return srs.Season{}, fmt.Errorf("season %s: scheduler: %w", se.Name, err)
	}
	se.Scheduler.Timezone, se.Scheduler.DayStart = tz, dayStart
	return se, nil
}

// Season returns the named season. Dates and times come back in UTC.
// It returns srs.ErrInvalidSeasonName (before any SQL), srs.ErrUnknownSeason,
// or the database error (context.DeadlineExceeded in its chain after the
// read timeout).
func (s *Store) Season(ctx context.Context, name string) (srs.Season, error) {
	if !srs.ValidSeasonName(name) {
		return srs.Season{}, fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, name)
	}
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	se, err := scanSeason(s.db.QueryRowContext(ctx,
		"SELECT "+seasonColumns+" FROM seasons WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return srs.Season{}, fmt.Errorf("%w: %s", srs.ErrUnknownSeason, name)
	}
	if err != nil {
		return srs.Season{}, fmt.Errorf("season %s: %w", name, err)
	}
	return se, nil
}

// Seasons returns every season ordered by name. It returns the database
// error (context.DeadlineExceeded in its chain after the read timeout).
func (s *Store) Seasons(ctx context.Context) ([]srs.Season, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, "SELECT "+seasonColumns+" FROM seasons ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("seasons: %w", err)
	}
	defer rows.Close()
	var out []srs.Season
	for rows.Next() {
		se, err := scanSeason(rows)
		if err != nil {
			return nil, fmt.Errorf("seasons: %w", err)
		}
		out = append(out, se)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seasons: %w", err)
	}
	return out, nil
}

// UpdateSeason writes every mutable field of season: dates, flags
// (including partition_created and purge_eligible), archived_at, the archive
// state and the scheduler config. The name and created_at never change.
// It runs under the write timeout.
// It returns srs.ErrInvalidSeasonName (before any SQL), srs.ErrUnknownSeason,
// an error for an unknown archive state, or the database error.
func (s *Store) UpdateSeason(ctx context.Context, season srs.Season) error {
	if !srs.ValidSeasonName(season.Name) {
		return fmt.Errorf("%w: %q", srs.ErrInvalidSeasonName, season.Name)
	}
	if err := checkArchiveState(season.Archive); err != nil {
		return fmt.Errorf("update season %s: %w", season.Name, err)
	}
	sched, err := encodeScheduler(season.Scheduler)
	if err != nil {
		return fmt.Errorf("update season %s: %w", season.Name, err)
	}
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `UPDATE seasons SET start_date = ?, end_date = ?,
		is_active = ?, partition_created = ?, enable_cache = ?, auto_archive = ?,
		archived_at = ?, archive_state = ?, purge_eligible = ?, scheduler = ?, timezone = ?,
		day_start = ? WHERE name = ?`,
		date(season.Start), date(season.End), season.IsActive, season.PartitionCreated,
		season.EnableCache, season.AutoArchive, instant(season.ArchivedAt), string(season.Archive),
		season.PurgeEligible, sched, season.Scheduler.Timezone, season.Scheduler.DayStart, season.Name)
	if err != nil {
		return fmt.Errorf("update season %s: %w", season.Name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	// Zero rows affected also means "nothing changed"; tell that from "no such row".
	var one int
	err = s.db.QueryRowContext(ctx, "SELECT 1 FROM seasons WHERE name = ?", season.Name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", srs.ErrUnknownSeason, season.Name)
	}
	if err != nil {
		return fmt.Errorf("update season %s: %w", season.Name, err)
	}
	return nil
}

// CountCards returns the number of cards of a season (an exact count over the
// season's partition, so it scans it, under the long timeout). It returns
// the database error.
func (s *Store) CountCards(ctx context.Context, season string) (int64, error) {
	ctx, cancel := s.bound(ctx, longCall)
	defer cancel()
	var n int64
	if err := s.slow.QueryRowContext(ctx, "SELECT COUNT(*) FROM cards WHERE season = ?", season).Scan(&n); err != nil {
		return 0, fmt.Errorf("count cards of %s: %w", season, err)
	}
	return n, nil
}
