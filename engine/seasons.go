package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// SeasonChange lists the settings SRS.SEASON SET changes; nil fields stay.
type SeasonChange struct {
	Retention       *float64
	Params          []float64 // nil: unchanged
	LearningSteps   *[]time.Duration
	RelearningSteps *[]time.Duration
	MaxInterval     *int
	Fuzz            *bool
	ShortTerm       *bool
	Cache           *bool
	AutoArchive     *bool
	Confirm         bool // CONFIRM given: needed to switch auto-archive on for an active season
}

// CreateSeason creates a season (inactive) with the default scheduler and its
// partitions. Errors: srs.ErrInvalidSeasonName, srs.ErrSeasonExists, a store error.
func (e *Engine) CreateSeason(ctx context.Context, name string, start, end time.Time) (srs.Season, error) {
	if !srs.ValidSeasonName(name) {
		return srs.Season{}, srs.ErrInvalidSeasonName
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return srs.Season{}, fmt.Errorf("END %s is before START %s", end.Format(time.DateOnly), start.Format(time.DateOnly))
	}
	s := srs.Season{Name: name, Start: start, End: end, EnableCache: true, Scheduler: srs.DefaultSchedulerConfig()}
	return e.store.CreateSeason(ctx, s)
}

// SetActive activates or deactivates a season.
func (e *Engine) SetActive(ctx context.Context, name string, active bool) (srs.Season, error) {
	return e.updateSeason(ctx, name, func(s *srs.Season) error {
		if s.Archive != srs.ArchiveNone {
			return &srs.SeasonArchivedError{Season: s.Name, ArchivedAt: s.ArchivedAt}
		}
		if active && !s.PartitionCreated {
			return fmt.Errorf("season %s has no partition yet", s.Name)
		}
		s.IsActive = active
		return nil
	})
}

// ChangeSeason applies SRS.SEASON SET. The new scheduler configuration is
// validated as a whole before anything is stored.
func (e *Engine) ChangeSeason(ctx context.Context, name string, ch SeasonChange) (srs.Season, error) {
	return e.updateSeason(ctx, name, func(s *srs.Season) error {
		sc := &s.Scheduler
		if ch.Retention != nil {
			sc.DesiredRetention = *ch.Retention
		}
		if ch.Params != nil {
			sc.Params = ch.Params
		}
		if ch.LearningSteps != nil {
			sc.LearningSteps = *ch.LearningSteps
		}
		if ch.RelearningSteps != nil {
			sc.RelearningSteps = *ch.RelearningSteps
		}
		if ch.MaxInterval != nil {
			sc.MaximumInterval = *ch.MaxInterval
		}
		if ch.Fuzz != nil {
			sc.EnableFuzz = *ch.Fuzz
		}
		if ch.ShortTerm != nil {
			sc.EnableShortTerm = *ch.ShortTerm
		}
		if ch.Cache != nil {
			s.EnableCache = *ch.Cache
		}
		if ch.AutoArchive != nil {
			if *ch.AutoArchive && s.IsActive && !ch.Confirm {
				return fmt.Errorf("%w: %s is active; AUTOARCHIVE ON makes the nightly job archive it once it is inactive and past its end date — repeat with CONFIRM", ErrNeedConfirmation, s.Name)
			}
			s.AutoArchive = *ch.AutoArchive
		}
		sched, err := fsrs.New(*sc)
		if err != nil {
			return err
		}
		*sc = sched.Config()
		return nil
	})
}

func (e *Engine) updateSeason(ctx context.Context, name string, change func(*srs.Season) error) (srs.Season, error) {
	if !srs.ValidSeasonName(name) {
		return srs.Season{}, srs.ErrInvalidSeasonName
	}
	s, err := e.store.Season(ctx, name)
	if err != nil {
		return srs.Season{}, err
	}
	if err := change(&s); err != nil {
		return srs.Season{}, err
	}
	if err := e.store.UpdateSeason(ctx, s); err != nil {
		return srs.Season{}, err
	}
	e.forgetSeason(name)
	return s, nil
}

// SeasonInfo is a season with its card count.
type SeasonInfo struct {
	Season srs.Season
	Cards  int64
}

// SeasonInfo returns a season's settings and card count.
func (e *Engine) SeasonInfo(ctx context.Context, name string) (SeasonInfo, error) {
	if !srs.ValidSeasonName(name) {
		return SeasonInfo{}, srs.ErrInvalidSeasonName
	}
	s, err := e.store.Season(ctx, name)
	if err != nil {
		return SeasonInfo{}, err
	}
	// Show the effective scheduler: defaults filled, weights migrated.
	if sched, err := fsrs.New(s.Scheduler); err == nil {
		s.Scheduler = sched.Config()
	}
	n, err := e.store.CountCards(ctx, name)
	return SeasonInfo{Season: s, Cards: n}, err
}

// Seasons lists every season.
func (e *Engine) Seasons(ctx context.Context) ([]srs.Season, error) { return e.store.Seasons(ctx) }

// seasonFor returns a season's settings and scheduler, cached for SeasonTTL so
// a change made through another sidecar is seen within that time.
func (e *Engine) seasonFor(ctx context.Context, name string) (srs.Season, *fsrs.Scheduler, error) {
	e.mu.Lock()
	ent, ok := e.season[name]
	e.mu.Unlock()
	if ok && e.cfg.Now().Sub(ent.fetched) < e.cfg.SeasonTTL {
		return ent.season, ent.sched, nil
	}
	s, err := e.store.Season(ctx, name)
	if err != nil {
		if ok && !errors.Is(err, srs.ErrUnknownSeason) {
			// MariaDB is unreachable: keep serving with the settings we have.
			e.log.Warn("season refresh failed; using cached settings", "season", name, "err", err)
			return ent.season, ent.sched, nil
		}
		return srs.Season{}, nil, err
	}
	sched, err := fsrs.New(s.Scheduler)
	if err != nil {
		return srs.Season{}, nil, fmt.Errorf("season %s scheduler: %w", name, err)
	}
	e.mu.Lock()
	e.season[name] = seasonEntry{season: s, sched: sched, fetched: e.cfg.Now()}
	e.mu.Unlock()
	return s, sched, nil
}

// forgetSeason drops the cached settings after a local change.
func (e *Engine) forgetSeason(name string) {
	e.mu.Lock()
	delete(e.season, name)
	e.mu.Unlock()
}

// servingSeason returns a season that accepts reviews and due reads.
func (e *Engine) servingSeason(ctx context.Context, name string) (srs.Season, *fsrs.Scheduler, error) {
	s, sched, err := e.seasonFor(ctx, name)
	if err != nil {
		return s, nil, err
	}
	if s.Archive != srs.ArchiveNone {
		return s, nil, &srs.SeasonArchivedError{Season: s.Name, ArchivedAt: s.ArchivedAt}
	}
	if !s.IsActive {
		return s, nil, fmt.Errorf("%w: %s", srs.ErrSeasonInactive, s.Name)
	}
	return s, sched, nil
}
