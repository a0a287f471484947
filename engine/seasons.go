package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// SeasonChange lists the settings SRS.SEASON SET changes; nil fields stay.
type SeasonChange struct {
	Retention       *float64
	Params          []float64 // nil: unchanged
	ParamsFromJob   string    // PARAMS FROM JOB id: the weights an SRS.OPTIMIZE job fitted
	LearningSteps   *[]time.Duration
	RelearningSteps *[]time.Duration
	MaxInterval     *int
	Fuzz            *bool
	ShortTerm       *bool
	Timezone        *string // IANA zone whose day boundaries count elapsed days
	DayStart        *int    // hour 0–23 a new day starts, or srs.DayStartLegacy
	Cache           *bool
	AutoArchive     *bool
	Confirm         bool // CONFIRM given: needed to switch auto-archive on for an active season
}

// CreateSeason creates a season (inactive) with the default scheduler and its
// partitions. Errors: srs.ErrInvalidSeasonName, *srs.InvalidError (END
// before START), srs.ErrSeasonExists, a store error.
func (e *Engine) CreateSeason(ctx context.Context, name string, start, end time.Time) (srs.Season, error) {
	if !srs.ValidSeasonName(name) {
		return srs.Season{}, srs.ErrInvalidSeasonName
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return srs.Season{}, &srs.InvalidError{Field: "END", Msg: fmt.Sprintf("%s is before START %s", end.Format(time.DateOnly), start.Format(time.DateOnly))}
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
	if ch.ParamsFromJob != "" {
		w, err := e.OptimizedParams(ctx, name, ch.ParamsFromJob)
		if err != nil {
			return srs.Season{}, err
		}
		ch.Params = w
	}
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
		if ch.Timezone != nil {
			sc.Timezone = *ch.Timezone
		}
		if ch.DayStart != nil {
			sc.DayStart = *ch.DayStart
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
			return &srs.InvalidError{Field: "scheduler", Msg: err.Error()}
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

// SeasonReadTimeout bounds one read of a season's settings from the store,
// in the background refresh as on the first sight of a season.
const SeasonReadTimeout = 2 * time.Second

// seasonKey is a season's key in e.loads (user-season keys hold a NUL
// between season and player, and season names hold no NUL).
func seasonKey(name string) string { return "season\x00" + name }

// seasonFor returns a season's settings and scheduler. A season seen before
// is answered from memory at once, however old its settings: when they are
// older than SeasonTTL a refresh starts in the background (one at a time
// per season, bounded by SeasonReadTimeout), so a change made through
// another sidecar is seen within about SeasonTTL while MariaDB answers, and
// no request waits on MariaDB for a season it has seen — a hung MariaDB
// only makes the settings stale. The first sight of a season reads the
// store, shared by concurrent callers and bounded by SeasonReadTimeout (or
// ctx); it fails with srs.ErrUnknownSeason, or wraps
// srs.ErrStoreUnavailable when MariaDB does not answer.
func (e *Engine) seasonFor(ctx context.Context, name string) (srs.Season, *fsrs.Scheduler, error) {
	now := e.cfg.Now()
	e.mu.Lock()
	ent, ok := e.season[name]
	token := ent.sched // nil, a cached entry's, or a tombstone's: what a read may replace
	ok = ok && !ent.tombstone()
	refresh := ok && now.Sub(ent.fetched) >= e.cfg.SeasonTTL
	if refresh {
		// A lease: later callers see the entry fresh until this refresh has
		// had its whole deadline, so refreshes of a season never overlap
		// and a failing MariaDB is asked once per SeasonTTL, not per request.
		leased := ent
		leased.fetched = now.Add(max(0, SeasonReadTimeout-e.cfg.SeasonTTL))
		e.season[name] = leased
	}
	e.mu.Unlock()
	if ok {
		if refresh {
			e.refreshSeason(name, ent.sched)
		}
		return ent.season, ent.sched, nil
	}
	if down, err := e.storeDown(); down {
		if ent, ok := e.snapshotSeason(ctx, name, token); ok {
			return ent.season, ent.sched, nil
		}
		return srs.Season{}, nil, fmt.Errorf("%w: season %s settings: %v", srs.ErrStoreUnavailable, name, err)
	}
	ch := e.loads.DoChan(seasonKey(name), func() (any, error) { return e.fetchSeason(name, token) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return srs.Season{}, nil, r.Err
		}
		ent := r.Val.(seasonEntry)
		return ent.season, ent.sched, nil
	case <-ctx.Done():
		return srs.Season{}, nil, ctx.Err()
	}
}

// refreshSeason reads a season's settings again in the background. token
// is the scheduler of the entry being refreshed: the result replaces only
// that entry, never the tombstone of a local change (forgetSeason) or the
// result of a newer read.
func (e *Engine) refreshSeason(name string, token *fsrs.Scheduler) {
	e.jobs.Add(1)
	go func() {
		defer e.jobs.Done()
		r := <-e.loads.DoChan(seasonKey(name), func() (any, error) { return e.fetchSeason(name, token) })
		if r.Err != nil {
			e.rateLog().Warn(e.log, "season settings refresh failed; serving the cached settings", "season", name, "err", r.Err)
		}
	}()
}

// fetchSeason reads a season from the store with SeasonReadTimeout, under
// a context that ends when the engine stops (never a request's: callers
// that give up do not cancel it for the others). It caches the result only
// if the season's entry is still the one the read started from (token: its
// scheduler, nil for none), so a read that began before a local change
// never caches what it read; a season the store no longer knows is
// forgotten. A panic is returned as an error.
func (e *Engine) fetchSeason(name string, token *fsrs.Scheduler) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("season %s read panicked: %v", name, r)
			e.log.Error("season read panicked; recovered", "season", name, "panic", fmt.Sprint(r))
		}
	}()
	ctx, cancel := e.untilStop(context.Background())
	defer cancel()
	ctx, cancelRead := context.WithTimeout(ctx, SeasonReadTimeout)
	defer cancelRead()
	s, err := e.store.Season(ctx, name)
	if errors.Is(err, srs.ErrUnknownSeason) {
		e.mu.Lock()
		if cur := e.season[name]; cur.sched == token {
			delete(e.season, name)
		}
		e.mu.Unlock()
		return nil, err
	}
	if err != nil {
		if p := e.safe.store.Load(); p != nil {
			p.Kick() // let the health probe confirm it
		}
		e.mu.Lock()
		_, known := e.season[name]
		e.mu.Unlock()
		if !known {
			if ent, ok := e.snapshotSeason(ctx, name, token); ok {
				return ent, nil
			}
		}
		return nil, fmt.Errorf("%w: season %s settings: %v", srs.ErrStoreUnavailable, name, err)
	}
	ent, err := e.cacheSeason(name, token, s)
	if err != nil {
		return nil, err
	}
	// Archived seasons keep no cache keys (invariant 5), snapshots included.
	if s.Archive == srs.ArchiveNone && !sameSettings(e.seasonSnapshotOf(name), s) {
		// Best effort: the snapshot only serves starts during an outage.
		if err := e.safe.call(func() error { return e.cache.PutSeasonSnapshot(ctx, s) }); err != nil {
			e.rateLog().Warn(e.log, "store the season settings snapshot in the cache", "season", name, "err", err)
		} else {
			e.mu.Lock()
			e.snapshots[name] = s
			e.mu.Unlock()
		}
	}
	return ent, nil
}

// cacheSeason builds a season's entry and caches it if the season's entry
// is still the one the read started from (token).
func (e *Engine) cacheSeason(name string, token *fsrs.Scheduler, s srs.Season) (seasonEntry, error) {
	sched, err := fsrs.New(s.Scheduler)
	if err != nil {
		return seasonEntry{}, fmt.Errorf("season %s scheduler: %w", name, err)
	}
	ent := seasonEntry{season: s, sched: sched, fetched: e.cfg.Now()}
	e.mu.Lock()
	if cur := e.season[name]; cur.sched == token {
		e.season[name] = ent
	}
	e.mu.Unlock()
	return ent, nil
}

// snapshotSeason serves a season this sidecar has not read yet from the
// cache's snapshot while MariaDB cannot answer (a start during an outage).
// The entry is cached like a read one, so the store is asked again after
// SeasonTTL.
func (e *Engine) snapshotSeason(ctx context.Context, name string, token *fsrs.Scheduler) (seasonEntry, bool) {
	var s srs.Season
	var ok bool
	if err := e.safe.call(func() (err error) {
		s, ok, err = e.cache.SeasonSnapshot(ctx, name)
		return err
	}); err != nil || !ok {
		return seasonEntry{}, false
	}
	ent, err := e.cacheSeason(name, token, s)
	if err != nil {
		return seasonEntry{}, false
	}
	e.rateLog().Warn(e.log, "MariaDB unavailable: serving season settings from the cache's snapshot", "season", name)
	return ent, true
}

// seasonSnapshotOf is the snapshot this sidecar last stored for a season.
func (e *Engine) seasonSnapshotOf(name string) srs.Season {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.snapshots[name]
}

// sameSettings reports whether two reads of a season are equal.
func sameSettings(a, b srs.Season) bool {
	return reflect.DeepEqual(a, b)
}

// forgetSeason drops the cached settings after a local change. It leaves a
// tombstone (an entry with no season, whose scheduler is a fresh token), so
// a read in flight, which started from an older entry, does not cache what
// it read; and later callers do not join that read.
func (e *Engine) forgetSeason(name string) {
	e.mu.Lock()
	e.season[name] = seasonEntry{sched: new(fsrs.Scheduler)}
	e.mu.Unlock()
	e.loads.Forget(seasonKey(name))
}

// tombstone reports whether the entry only marks forgotten settings.
func (ent seasonEntry) tombstone() bool { return ent.season.Name == "" }

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
