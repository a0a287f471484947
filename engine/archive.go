package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// Errors of the archive commands.
var (
	ErrSeasonActive     = errors.New("season is active; deactivate it before archiving")
	ErrNotArchived      = errors.New("season is not archived")
	ErrNotEligible      = errors.New("archive is not yet past retention; it cannot be purged")
	ErrNeedConfirmation = errors.New("confirmation required")
)

// ArchiveReport is the reply of SRS.ARCHIVE.
type ArchiveReport struct {
	Cards, LogRows int64
	CacheKeys      int64 // -1 when the cache could not be cleared (the keys expire by TTL)
	Seconds        float64
	MoveSeconds    float64 // the partition operations alone
	Statements     []string
}

// Archive moves an inactive season out of the live tables. It marks the
// season archiving first (from then on reviews and due reads answer
// SEASONARCHIVED; other sidecars see it within their season TTL), moves the
// cards and review-log partitions to archive tables with metadata-only
// partition operations, deletes the season's cache keys through the season
// registry, and marks it archived. Reviews still queued on any sidecar are
// routed to the archive tables by their drainers, so nothing is lost.
// It is resumable: archiving an "archiving" season finishes the job.
func (e *Engine) Archive(ctx context.Context, name string) (ArchiveReport, error) {
	start := e.cfg.Now()
	s, err := e.store.Season(ctx, name)
	if err != nil {
		return ArchiveReport{}, err
	}
	switch {
	case s.IsActive:
		return ArchiveReport{}, ErrSeasonActive
	case s.Archive == srs.ArchiveDone || s.Archive == srs.ArchivePurged:
		return ArchiveReport{}, &srs.SeasonArchivedError{Season: s.Name, ArchivedAt: s.ArchivedAt}
	case s.Archive == srs.ArchiveNone:
		s.Archive, s.ArchivedAt = srs.ArchiveInProgress, start
		if err := e.store.UpdateSeason(ctx, s); err != nil {
			return ArchiveReport{}, fmt.Errorf("mark %s archiving: %w", name, err)
		}
		e.forgetSeason(name)
	}
	res, err := e.store.ArchiveSeason(ctx, name)
	if err != nil {
		return ArchiveReport{}, fmt.Errorf("archive %s: %w", name, err)
	}
	rep := ArchiveReport{Cards: res.Cards, LogRows: res.LogRows, MoveSeconds: res.MoveSeconds, Statements: res.Statements}
	err = e.safe.call(func() (err error) {
		rep.CacheKeys, err = e.cache.ClearSeason(ctx, name)
		return err
	})
	if err != nil {
		rep.CacheKeys = -1
		e.log.Warn("archive: cache keys not cleared; they expire by TTL and are never served (the season refuses reads)", "season", name, "err", err)
	}
	s.Archive = srs.ArchiveDone
	if err := e.store.UpdateSeason(ctx, s); err != nil {
		return rep, fmt.Errorf("mark %s archived: %w", name, err)
	}
	e.forgetSeason(name)
	rep.Seconds = e.cfg.Now().Sub(start).Seconds()
	e.log.Info("season archived", "season", name, "cards", rep.Cards, "log_rows", rep.LogRows,
		"cache_keys", rep.CacheKeys, "seconds", rep.Seconds, "move_seconds", rep.MoveSeconds)
	return rep, nil
}

// ArchiveInfo describes an archived season.
type ArchiveInfo struct {
	Season         srs.Season
	Cards, LogRows int64
	EligibleAt     time.Time // when retention makes it purgeable
}

// ArchiveInfo reads an archived season's archive tables.
func (e *Engine) ArchiveInfo(ctx context.Context, name string) (ArchiveInfo, error) {
	s, err := e.store.Season(ctx, name)
	if err != nil {
		return ArchiveInfo{}, err
	}
	if s.Archive == srs.ArchiveNone {
		return ArchiveInfo{}, fmt.Errorf("%w: %s", ErrNotArchived, name)
	}
	info := ArchiveInfo{Season: s, EligibleAt: s.ArchivedAt.Add(e.cfg.Retention)}
	if s.Archive == srs.ArchivePurged {
		return info, nil
	}
	// Counts of finished archives come from the replica, unless it has not
	// replicated the archive tables yet; an archive in progress is still
	// moving on the primary.
	ok := false
	if s.Archive == srs.ArchiveDone {
		info.Cards, info.LogRows, ok, err = e.replica.ArchiveInfo(ctx, name)
	}
	if !ok {
		info.Cards, info.LogRows, _, err = e.store.ArchiveInfo(ctx, name)
	}
	return info, err
}

// Purge drops an archive that retention made eligible. Only an admin's
// explicit command calls it.
func (e *Engine) Purge(ctx context.Context, name string) error {
	s, err := e.store.Season(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case s.Archive == srs.ArchivePurged:
		return fmt.Errorf("%w: %s was already purged", ErrNotArchived, name)
	case s.Archive != srs.ArchiveDone:
		return fmt.Errorf("%w: %s", ErrNotArchived, name)
	case !s.PurgeEligible:
		return fmt.Errorf("%w (archived %s, eligible from %s)", ErrNotEligible,
			s.ArchivedAt.UTC().Format(time.DateOnly), s.ArchivedAt.Add(e.cfg.Retention).UTC().Format(time.DateOnly))
	}
	if err := e.store.PurgeArchive(ctx, name); err != nil {
		return err
	}
	s.Archive = srs.ArchivePurged
	e.log.Warn("archive purged on admin approval", "season", name)
	err = e.store.UpdateSeason(ctx, s)
	e.forgetSeason(name)
	return err
}

// FlagRetention marks archives older than the retention as eligible for
// deletion (the daily retention job). It returns the seasons it flagged.
func (e *Engine) FlagRetention(ctx context.Context) ([]string, error) {
	seasons, err := e.store.Seasons(ctx)
	if err != nil {
		return nil, err
	}
	var flagged []string
	now := e.cfg.Now()
	for _, s := range seasons {
		if s.Archive != srs.ArchiveDone || s.PurgeEligible || now.Before(s.ArchivedAt.Add(e.cfg.Retention)) {
			continue
		}
		s.PurgeEligible = true
		if err := e.store.UpdateSeason(ctx, s); err != nil {
			return flagged, err
		}
		flagged = append(flagged, s.Name)
		e.log.Warn("archive past retention: eligible for deletion on explicit admin approval (SRS.ARCHIVE PURGE)",
			"season", s.Name, "archived_at", s.ArchivedAt)
	}
	return flagged, nil
}

// AutoArchive archives the seasons with auto_archive on that are inactive and
// past their end date (the nightly job).
func (e *Engine) AutoArchive(ctx context.Context) ([]string, error) {
	seasons, err := e.store.Seasons(ctx)
	if err != nil {
		return nil, err
	}
	var done []string
	now := e.cfg.Now()
	for _, s := range seasons {
		if !s.AutoArchive || s.IsActive || s.Archive == srs.ArchiveDone || s.Archive == srs.ArchivePurged ||
			s.End.IsZero() || !now.After(s.End.Add(24*time.Hour)) {
			continue
		}
		if _, err := e.Archive(ctx, s.Name); err != nil {
			return done, fmt.Errorf("auto-archive %s: %w", s.Name, err)
		}
		done = append(done, s.Name)
	}
	return done, nil
}
