package engine

import (
	"context"
	"fmt"
	"math"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// MaxFutureMS is how far in the future a review's AT may lie (clock skew between app nodes).
const MaxFutureMS = 5 * 60 * 1000

// swapAttempts bounds the compare-and-set retries of one review.
const swapAttempts = 8

// ReviewRequest is one answer to apply.
type ReviewRequest struct {
	Player, Season, Question string
	Grade                    srs.Grade
	At                       int64  // unix ms; 0 means now
	ID                       string // review id; empty means a new one is generated
	Subject, Topic, Stage    *string
	DurationMS               int64
}

// ReviewResult is the applied (or, for a repeated id, the stored) review.
type ReviewResult struct {
	Review         srs.Review
	IntervalDays   int
	Retrievability float64 // recall probability at the time of the review, before it
	Duplicate      bool    // the id was seen before; nothing was applied
	// Wait blocks until the review is durable; the reply must not be sent
	// before it returns nil.
	Wait func(context.Context) error
}

// Review applies one answer: current state (cache, else store + local queue),
// FSRS next state, compare-and-set in the cache, append to the durable queue.
//
// Errors: srs.ErrUnknownSeason, srs.ErrSeasonInactive, *srs.SeasonArchivedError,
// srs.ErrReviewInFuture, srs.ErrReviewTooOld, srs.ErrQueueFull, or a wrapped
// cache, store or disk error.
func (e *Engine) Review(ctx context.Context, req ReviewRequest) (ReviewResult, error) {
	season, sched, err := e.servingSeason(ctx, req.Season)
	if err != nil {
		return ReviewResult{}, err
	}
	now := e.now()
	if req.At == 0 {
		req.At = now
	}
	if req.At > now+MaxFutureMS {
		return ReviewResult{}, srs.ErrReviewInFuture
	}
	if req.ID != "" {
		if r, ok, err := e.knownReview(ctx, req); ok || err != nil {
			return e.replay(sched, r, err)
		}
	} else {
		req.ID = uuid.Must(uuid.NewV7()).String()
	}
	if !season.EnableCache {
		return e.reviewInStore(ctx, sched, req)
	}
	for range swapAttempts {
		rd, err := e.cache.Read(ctx, req.Season, req.Player, req.Question, req.ID)
		if err != nil {
			return ReviewResult{}, err
		}
		if !rd.Loaded {
			if err := e.load(ctx, req.Season, req.Player); err != nil {
				return ReviewResult{}, err
			}
			continue
		}
		if rd.Dup != nil {
			return e.replay(sched, *rd.Dup, nil)
		}
		res, err := e.next(sched, req, rd.Card, rd.Found)
		if err != nil {
			return ReviewResult{}, err
		}
		switch swapped, err := e.cache.Swap(ctx, rd.Raw, res.Review); {
		case err != nil:
			return ReviewResult{}, err
		case swapped != 1:
			continue // changed or evicted since the read: read again
		}
		res.Wait, err = e.journal.Append(res.Review)
		if err != nil {
			// Not acknowledged: drop the cached state that got ahead of the queue.
			if ierr := e.cache.Invalidate(ctx, req.Season, req.Player); ierr != nil {
				e.log.Error("invalidate after failed append", "season", req.Season, "player", req.Player, "err", ierr)
			}
			return ReviewResult{}, err
		}
		return res, nil
	}
	return ReviewResult{}, ErrContention
}

// knownReview finds a review id in the local queue, then in the review log.
func (e *Engine) knownReview(ctx context.Context, req ReviewRequest) (srs.Review, bool, error) {
	if r, ok := e.journal.PendingReview(req.Season, req.ID); ok {
		return r, true, nil
	}
	r, ok, err := e.store.LoggedReview(ctx, req.Season, req.ID)
	if err != nil {
		return srs.Review{}, false, fmt.Errorf("review id lookup: %w", err)
	}
	return r, ok, nil
}

// replay answers a repeated review id with the stored result. The review is
// appended again (the drainer ignores logged ids) so the reply still implies
// durability even if the first attempt crashed before its fsync.
func (e *Engine) replay(sched *fsrs.Scheduler, r srs.Review, err error) (ReviewResult, error) {
	if err != nil {
		return ReviewResult{}, err
	}
	res := e.result(sched, r)
	res.Duplicate = true
	res.Wait, err = e.journal.Append(r)
	return res, err
}

// next computes the review a grade produces on a card.
func (e *Engine) next(sched *fsrs.Scheduler, req ReviewRequest, card srs.Card, found bool) (ReviewResult, error) {
	if !found {
		card = srs.Card{Season: req.Season, Player: req.Player, QuestionID: req.Question}
	}
	if req.At < card.LastReview {
		return ReviewResult{}, fmt.Errorf("%w (at %d, last review %d)", srs.ErrReviewTooOld, req.At, card.LastReview)
	}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&card.Subject, req.Subject}, {&card.Topic, req.Topic}, {&card.Stage, req.Stage}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	out := sched.Next(card.Schedule, req.Grade, req.At, fsrs.Seed(req.Season, req.Player, req.Question))
	r := srs.Review{
		ID: req.ID, Season: req.Season, Player: req.Player, QuestionID: req.Question,
		Subject: card.Subject, Topic: card.Topic, Stage: card.Stage,
		Grade: req.Grade, ReviewedAt: req.At, DurationMS: req.DurationMS,
		ElapsedDays: out.ElapsedDays, Before: card.Schedule, After: out.Schedule,
		Sidecar: e.cfg.Sidecar,
	}
	return e.result(sched, r), nil
}

// result derives the reply fields of a review.
func (e *Engine) result(sched *fsrs.Scheduler, r srs.Review) ReviewResult {
	res := ReviewResult{Review: r, Retrievability: sched.Retrievability(r.Before, r.ReviewedAt)}
	if r.After.State == srs.StateReview {
		res.IntervalDays = int(math.Round(float64(r.After.Due-r.ReviewedAt) / 86400000))
	}
	return res
}

// reviewInStore is the review path without the cache (season cache off, or
// Safe Mode): the card state comes from the store plus the local queue, and
// reviews of one card are serialised in this sidecar.
func (e *Engine) reviewInStore(ctx context.Context, sched *fsrs.Scheduler, req ReviewRequest) (ReviewResult, error) {
	mu := e.cardLock(req.Season, req.Player, req.Question)
	mu.Lock()
	defer mu.Unlock()
	card, found, err := e.storeCard(ctx, req.Season, req.Player, req.Question)
	if err != nil {
		return ReviewResult{}, err
	}
	res, err := e.next(sched, req, card, found)
	if err != nil {
		return ReviewResult{}, err
	}
	res.Wait, err = e.journal.Append(res.Review)
	return res, err
}
