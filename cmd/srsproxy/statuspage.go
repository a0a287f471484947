package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/commands"
	"github.com/srsproxy/srsproxy/internal/statuspage"
	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// statusJobs is how many jobs the status page lists: the running ones,
// then the most recently updated.
const statusJobs = 10

// exactCardsBelow: a season whose partition InnoDB estimates below this
// many rows is counted exactly (COUNT(*)); a larger one shows the estimate,
// so an open status page never scans a big partition every few seconds.
const exactCardsBelow = 1_000_000

// newStatusPage wires the status page (internal/statuspage) to this
// sidecar: SRS.STATUS, the seasons with their live card counts, the jobs
// and the metrics registry. It is served once the admin listener starts.
func (m *Main) newStatusPage() *statuspage.Page {
	return statuspage.New(statuspage.Config{
		Logger:   m.Log,
		Gatherer: m.tel.Gatherer,
		Status: func(ctx context.Context, io bool) commands.Status {
			if !io {
				return m.localStatus()
			}
			st, _ := m.status(ctx) // always answers; failed parts are in st.Errors
			return st
		},
		Seasons: m.statusSeasons,
		Jobs:    m.statusJobs,
	})
}

func (m *Main) statusSeasons(ctx context.Context) ([]statuspage.Season, error) {
	if m.engine.Degraded().MariaDB {
		return nil, errors.New("MariaDB is unavailable")
	}
	seasons, err := m.store.Seasons(ctx)
	if err != nil {
		return nil, err
	}
	estimates, err := m.cardEstimates(ctx)
	out := make([]statuspage.Season, 0, len(seasons))
	errs := []error{err}
	for _, s := range seasons {
		row := statuspage.Season{Name: s.Name, State: string(s.Archive), Cards: -1}
		if s.Archive == srs.ArchiveNone {
			row.State = "inactive"
			if s.IsActive {
				row.State = "active"
			}
			part, _ := partitions.Name(s.Name)
			if est, ok := estimates[part]; ok && est >= exactCardsBelow {
				row.Cards, row.Approx = est, true
			} else {
				n, err := m.store.CountCards(ctx, s.Name)
				if err == nil {
					row.Cards = n
				}
				errs = append(errs, err)
			}
		}
		out = append(out, row)
	}
	return out, errors.Join(errs...)
}

// cardEstimates is InnoDB's row estimate of each partition of cards.
func (m *Main) cardEstimates(ctx context.Context) (map[string]int64, error) {
	rows, err := m.store.DB().QueryContext(ctx, `SELECT PARTITION_NAME, COALESCE(TABLE_ROWS, 0)
		FROM information_schema.PARTITIONS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'cards' AND PARTITION_NAME IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("card estimates: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("card estimates: %w", err)
		}
		out[name] = n
	}
	return out, rows.Err()
}

func (m *Main) statusJobs(ctx context.Context) ([]statuspage.Job, error) {
	if m.engine.Degraded().MariaDB {
		return nil, errors.New("MariaDB is unavailable")
	}
	jobs, err := m.store.Jobs(ctx, "")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b mariadb.Job) int {
		if ra, rb := a.State == mariadb.JobRunning, b.State == mariadb.JobRunning; ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		return cmp.Or(b.Updated.Compare(a.Updated), cmp.Compare(a.ID, b.ID))
	})
	out := make([]statuspage.Job, 0, min(len(jobs), statusJobs))
	for _, j := range jobs[:min(len(jobs), statusJobs)] {
		out = append(out, statuspage.Job{ID: j.ID, Kind: j.Kind, Season: j.Season, State: j.State,
			Processed: j.Processed, Total: j.Total, Owner: j.Owner, Updated: j.Updated.UnixMilli(), Error: j.Error})
	}
	return out, nil
}
