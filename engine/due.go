package engine

import (
	"context"
	"errors"
	"sort"

	"github.com/srsproxy/srsproxy/srs"
)

// DueRequest asks for a user's due cards.
type DueRequest struct {
	Player, Season string
	Subject        string // "" for all subjects; otherwise an exact match
	Limit          int
	At             int64 // unix ms; 0 means now
}

// DueResult is a user's due list.
type DueResult struct {
	Season   string
	Total    int64      // all due cards matching the filter
	Degraded bool       // served from the store in Safe Mode
	Cards    []srs.Card // most overdue first, at most the limit
	// Cached: read from the cache, as of its current version, so a change
	// made through any sidecar shows in the cache (client tracking relies
	// on it). NextDue is then the page's srs.DuePage.NextDue.
	Cached  bool
	NextDue int64
}

// Due lists a user's due cards, most overdue first.
//
// Errors: srs.ErrUnknownSeason, srs.ErrSeasonInactive, *srs.SeasonArchivedError,
// or a wrapped cache or store error.
func (e *Engine) Due(ctx context.Context, req DueRequest) (DueResult, error) {
	season, _, err := e.servingSeason(ctx, req.Season)
	if err != nil {
		return DueResult{}, err
	}
	if req.At == 0 {
		req.At = e.now()
	}
	if !season.EnableCache {
		return e.dueFromStore(ctx, e.store, req)
	}
	res, err := e.dueCached(ctx, req)
	if errors.Is(err, errBypass) {
		return e.dueSafe(ctx, req)
	}
	return res, err
}

func (e *Engine) dueCached(ctx context.Context, req DueRequest) (DueResult, error) {
	if err := e.ensureClean(ctx, req.Season, req.Player); err != nil {
		return DueResult{}, err
	}
	for range 2 {
		var res srs.DuePage
		err := e.safe.call(func() (err error) {
			res, err = e.cache.Due(ctx, req.Season, req.Player, req.Subject, req.At, req.Limit)
			return err
		})
		if err != nil {
			return DueResult{}, err
		}
		if res.Loaded {
			e.metrics.cacheReads.Add(ctx, 1, e.metrics.hit)
			return DueResult{Season: req.Season, Total: res.Total, Cards: res.Cards, Cached: true, NextDue: res.NextDue}, nil
		}
		e.metrics.cacheReads.Add(ctx, 1, e.metrics.miss)
		if err := e.load(ctx, req.Season, req.Player); err != nil {
			return DueResult{}, err
		}
	}
	return DueResult{}, ErrContention
}

// dueSafe serves Safe Mode: the most urgent cards only, from the store's
// (season, player, due) index, under the in-memory rate limits. It reads the
// replica when one is configured (a degraded list may lag by the replication
// delay; this sidecar's undrained reviews are still merged in), and the
// primary if the replica fails.
func (e *Engine) dueSafe(ctx context.Context, req DueRequest) (DueResult, error) {
	if l := e.cfg.SafeMode.Limiter; l != nil {
		if err := l.Admit(ctx, req.Player); err != nil {
			e.metrics.safeRejections.Add(ctx, 1)
			return DueResult{}, err
		}
	}
	e.metrics.safeServed.Add(ctx, 1)
	req.Limit = min(req.Limit, e.safe.cfg.Top)
	res, err := e.dueFromStore(ctx, e.replica, req)
	if err != nil && e.cfg.Replica != nil && ctx.Err() == nil {
		e.log.Warn("safe mode: replica read failed; reading the primary", "season", req.Season, "player", req.Player, "err", err)
		res, err = e.dueFromStore(ctx, e.store, req)
	}
	res.Degraded = true
	return res, err
}

// dueFromStore answers from the (season, player, due) index of db (the
// store, or its replica in Safe Mode). When this sidecar still holds
// undrained reviews of the user, it merges them over the user's cards
// instead, so the list is exact.
func (e *Engine) dueFromStore(ctx context.Context, db Replica, req DueRequest) (DueResult, error) {
	res := DueResult{Season: req.Season}
	pending := e.journal.Pending(req.Season, req.Player)
	if len(pending) == 0 {
		cards, err := db.DueCards(ctx, req.Season, req.Player, req.Subject, req.At, req.Limit)
		if err != nil {
			return res, err
		}
		res.Total, err = db.CountDue(ctx, req.Season, req.Player, req.Subject, req.At)
		res.Cards = cards
		return res, err
	}
	cards, err := db.UserCards(ctx, req.Season, req.Player)
	if err != nil {
		return res, err
	}
	var due []srs.Card
	for _, c := range overlay(cards, pending) {
		if c.Due <= req.At && (req.Subject == "" || c.Subject == req.Subject) {
			due = append(due, c)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].Due != due[j].Due {
			return due[i].Due < due[j].Due
		}
		return due[i].QuestionID < due[j].QuestionID
	})
	res.Total = int64(len(due))
	res.Cards = due[:min(len(due), req.Limit)]
	return res, nil
}

// CardInfo is one card with its current recall probability.
type CardInfo struct {
	Card           srs.Card
	Retrievability float64
	// Cached: read from the cache, as of its current version (see DueResult).
	Cached bool
}

// Card returns one card's full state; found is false for an unknown card.
func (e *Engine) Card(ctx context.Context, season, player, question string) (CardInfo, bool, error) {
	s, sched, err := e.seasonFor(ctx, season)
	if err != nil {
		return CardInfo{}, false, err
	}
	card, found, cached, err := e.readCard(ctx, s, player, question)
	if err != nil || !found {
		return CardInfo{}, found, err
	}
	return CardInfo{Card: card, Retrievability: sched.Retrievability(card.Schedule, e.now()), Cached: cached}, true, nil
}

func (e *Engine) readCard(ctx context.Context, s srs.Season, player, question string) (card srs.Card, found, cached bool, err error) {
	switch s.Archive {
	case srs.ArchiveDone:
		// Archived for good: nothing writes it any more, a replica will do.
		return noCache(e.replica.ArchivedCard(ctx, s.Name, player, question))
	case srs.ArchivePurged:
		return srs.Card{}, false, false, &srs.SeasonArchivedError{Season: s.Name, ArchivedAt: s.ArchivedAt}
	case srs.ArchiveInProgress:
		if c, ok, err := e.storeCard(ctx, s.Name, player, question); ok || err != nil {
			return c, ok, false, err
		}
		return noCache(e.store.ArchivedCard(ctx, s.Name, player, question))
	}
	if !s.EnableCache || !s.IsActive {
		return noCache(e.storeCard(ctx, s.Name, player, question))
	}
	if err := e.ensureClean(ctx, s.Name, player); errors.Is(err, errBypass) {
		return noCache(e.storeCard(ctx, s.Name, player, question))
	} else if err != nil {
		return srs.Card{}, false, false, err
	}
	for range 2 {
		var rd srs.CardRead
		err := e.safe.call(func() (err error) {
			rd, err = e.cache.Read(ctx, s.Name, player, question)
			return err
		})
		if errors.Is(err, errBypass) {
			return noCache(e.storeCard(ctx, s.Name, player, question))
		}
		if err != nil {
			return srs.Card{}, false, false, err
		}
		if rd.Loaded {
			return rd.Card, rd.Found, true, nil
		}
		if err := e.load(ctx, s.Name, player); errors.Is(err, errBypass) {
			return noCache(e.storeCard(ctx, s.Name, player, question))
		} else if err != nil {
			return srs.Card{}, false, false, err
		}
	}
	return srs.Card{}, false, false, ErrContention
}

// noCache passes on a card read from the store or a replica: not cached.
func noCache(c srs.Card, found bool, err error) (srs.Card, bool, bool, error) {
	return c, found, false, err
}
