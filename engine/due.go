package engine

import (
	"context"
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
		return e.dueFromStore(ctx, req)
	}
	for range 2 {
		res, err := e.cache.Due(ctx, req.Season, req.Player, req.Subject, req.At, req.Limit)
		if err != nil {
			return DueResult{}, err
		}
		if res.Loaded {
			return DueResult{Season: req.Season, Total: res.Total, Cards: res.Cards}, nil
		}
		if err := e.load(ctx, req.Season, req.Player); err != nil {
			return DueResult{}, err
		}
	}
	return DueResult{}, ErrContention
}

// dueFromStore answers from the (season, player, due) index. When this
// sidecar still holds undrained reviews of the user, it merges them over the
// user's cards instead, so the list is exact.
func (e *Engine) dueFromStore(ctx context.Context, req DueRequest) (DueResult, error) {
	res := DueResult{Season: req.Season}
	pending := e.journal.Pending(req.Season, req.Player)
	if len(pending) == 0 {
		cards, err := e.store.DueCards(ctx, req.Season, req.Player, req.Subject, req.At, req.Limit)
		if err != nil {
			return res, err
		}
		res.Total, err = e.store.CountDue(ctx, req.Season, req.Player, req.Subject, req.At)
		res.Cards = cards
		return res, err
	}
	cards, err := e.store.UserCards(ctx, req.Season, req.Player)
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
}

// Card returns one card's full state; found is false for an unknown card.
func (e *Engine) Card(ctx context.Context, season, player, question string) (CardInfo, bool, error) {
	s, sched, err := e.seasonFor(ctx, season)
	if err != nil {
		return CardInfo{}, false, err
	}
	card, found, err := e.readCard(ctx, s, player, question)
	if err != nil || !found {
		return CardInfo{}, found, err
	}
	return CardInfo{Card: card, Retrievability: sched.Retrievability(card.Schedule, e.now())}, true, nil
}

func (e *Engine) readCard(ctx context.Context, s srs.Season, player, question string) (srs.Card, bool, error) {
	if !s.EnableCache || !s.IsActive || !s.ArchivedAt.IsZero() {
		return e.storeCard(ctx, s.Name, player, question)
	}
	for range 2 {
		rd, err := e.cache.Read(ctx, s.Name, player, question, "")
		if err != nil {
			return srs.Card{}, false, err
		}
		if rd.Loaded {
			return rd.Card, rd.Found, nil
		}
		if err := e.load(ctx, s.Name, player); err != nil {
			return srs.Card{}, false, err
		}
	}
	return srs.Card{}, false, ErrContention
}
