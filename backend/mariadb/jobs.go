package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Job states.
const (
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Errors of the jobs table.
var (
	ErrJobExists  = errors.New("job already exists")
	ErrUnknownJob = errors.New("unknown job")
)

// Job is a background job that must survive a restart (cache rebuild,
// reconciliation, the nightly jobs): a sidecar that takes one over resumes
// after (CursorPlayer, CursorQuestion).
type Job struct {
	ID, Kind, Season, State      string // State: running | done | failed | cancelled
	Processed, Total             int64
	CursorPlayer, CursorQuestion string // resume point: the last card done
	Owner                        string // id of the sidecar running it
	Started, Updated, Finished   time.Time
	Error                        string
	Result                       string // JSON text of the job's result, free-form
}

const jobColumns = `id, kind, season, state, processed, total, cursor_player, cursor_question,
	owner, started_at, updated_at, finished_at, error, result`

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var (
		j        Job
		finished sql.NullTime
	)
	err := row.Scan(&j.ID, &j.Kind, &j.Season, &j.State, &j.Processed, &j.Total, &j.CursorPlayer,
		&j.CursorQuestion, &j.Owner, &j.Started, &j.Updated, &finished, &j.Error, &j.Result)
	j.Finished = finished.Time
	return j, err
}

// CreateJob stores a new job. A zero Started takes the store's clock, an
// empty State is running, and Updated is always now (see SetClock); times
// are kept to the millisecond.
// It runs under the write timeout.
// It returns ErrJobExists for a taken id, an error for an empty id, or the
// database error (e.g. a field too long for its column).
func (s *Store) CreateJob(ctx context.Context, j Job) error {
	if j.ID == "" {
		return errors.New("create job: empty id")
	}
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	now := s.clock()
	if j.Started.IsZero() {
		j.Started = now
	}
	if j.State == "" {
		j.State = JobRunning
	}
	_, err := s.db.ExecContext(ctx, "INSERT INTO jobs ("+jobColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Kind, j.Season, j.State, j.Processed, j.Total, j.CursorPlayer, j.CursorQuestion,
		j.Owner, instant(j.Started), now, instant(j.Finished), j.Error, j.Result)
	if errNumber(err) == errDupEntry {
		return fmt.Errorf("%w: %s", ErrJobExists, j.ID)
	}
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

// UpdateJob writes every mutable field of a job: state, counts, cursor,
// owner, finished, error and result (id, kind, season and started never
// change), and sets Updated to now (see SetClock), under the write timeout.
// It returns ErrUnknownJob or the database error.
func (s *Store) UpdateJob(ctx context.Context, j Job) error {
	ctx, cancel := s.bound(ctx, writeCall)
	defer cancel()
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = ?, processed = ?, total = ?,
		cursor_player = ?, cursor_question = ?, owner = ?, updated_at = ?, finished_at = ?,
		error = ?, result = ? WHERE id = ?`,
		j.State, j.Processed, j.Total, j.CursorPlayer, j.CursorQuestion, j.Owner, s.clock(),
		instant(j.Finished), j.Error, j.Result, j.ID)
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	// Zero rows affected also means "nothing changed"; tell that from "no such row".
	if _, ok, err := s.Job(ctx, j.ID); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownJob, j.ID)
	}
	return nil
}

// Job returns the job with this id and whether it exists. Times come back
// in UTC. It runs under the read timeout and returns the database error.
func (s *Store) Job(ctx context.Context, id string) (Job, bool, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	j, err := scanJob(s.db.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("job %s: %w", id, err)
	}
	return j, true, nil
}

// Jobs returns the jobs in state (every job when state is ""), oldest first
// (by Started, then id). It runs under the read timeout and returns the
// database error.
func (s *Store) Jobs(ctx context.Context, state string) ([]Job, error) {
	ctx, cancel := s.bound(ctx, readCall)
	defer cancel()
	query := "SELECT " + jobColumns + " FROM jobs"
	var args []any
	if state != "" {
		query += " WHERE state = ?"
		args = append(args, state)
	}
	rows, err := s.db.QueryContext(ctx, query+" ORDER BY started_at, id", args...)
	if err != nil {
		return nil, fmt.Errorf("jobs %q: %w", state, err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("jobs %q: %w", state, err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("jobs %q: %w", state, err)
	}
	return out, nil
}
