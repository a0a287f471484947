package engine

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"

	rcache "github.com/srsproxy/srsproxy/backend/redis"
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

	atNow   bool  // At was not given: the answer is "now", never before the card's last review
	idGiven bool  // the client chose the id, so it may be a retry
	now     int64 // when the request arrived, unix ms
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
		req.At, req.atNow = now, true
	}
	if req.At > now+MaxFutureMS {
		return ReviewResult{}, srs.ErrReviewInFuture
	}
	req.now = now
	if req.ID != "" {
		req.idGiven = true
		if r, ok := e.journal.PendingReview(req.Season, req.ID); ok {
			return e.replay(sched, r)
		}
	} else {
		req.ID = uuid.Must(uuid.NewV7()).String()
	}
	// One review of a card at a time in this sidecar, whichever path it
	// takes: the cache path's compare-and-set orders sidecars, this lock
	// orders the cache path against the store path within one.
	mu := e.cardLock(req.Season, req.Player, req.Question)
	mu.Lock()
	defer mu.Unlock()
	if !season.EnableCache {
		return e.reviewInStore(ctx, sched, req)
	}
	res, err := e.reviewCached(ctx, sched, req)
	if errors.Is(err, errBypass) {
		// Safe Mode: the cache is unavailable; the review still becomes durable.
		e.metrics.safeServed.Add(ctx, 1)
		res, err = e.reviewInStore(ctx, sched, req)
		if err == nil {
			// Marked after the append: any load that ran before it missed this
			// review, so the user's cache entry is invalidated before reuse.
			e.safe.markDirty(req.Season, req.Player)
		}
	}
	return res, err
}

// reviewCached is the review path through the cache. It returns errBypass
// when the cache is unavailable.
func (e *Engine) reviewCached(ctx context.Context, sched *fsrs.Scheduler, req ReviewRequest) (ReviewResult, error) {
	if err := e.ensureClean(ctx, req.Season, req.Player); err != nil {
		return ReviewResult{}, err
	}
	for range swapAttempts {
		var rd rcache.ReadResult
		err := e.safe.call(func() (err error) {
			rd, err = e.cache.Read(ctx, req.Season, req.Player, req.Question, req.ID)
			return err
		})
		if err != nil {
			return ReviewResult{}, err
		}
		if !rd.Loaded {
			e.metrics.cacheReads.Add(ctx, 1, e.metrics.miss)
			if err := e.load(ctx, req.Season, req.Player); err != nil {
				return ReviewResult{}, err
			}
			continue
		}
		e.metrics.cacheReads.Add(ctx, 1, e.metrics.hit)
		if rd.Dup != nil {
			return e.replay(sched, *rd.Dup)
		}
		if req.idGiven && !e.inIDWindow(req) {
			// Older than the cache's review-id memory: only MariaDB knows.
			if r, ok, err := e.loggedReview(ctx, req); err != nil || ok {
				return e.replayLogged(sched, r, err)
			}
		}
		res, err := e.next(sched, req, rd.Card, rd.Found)
		if err != nil {
			return ReviewResult{}, err
		}
		ticket, stored, err := e.swapHeld(ctx, rd.Raw, res.Review)
		if err != nil {
			if errors.Is(err, errBypass) {
				// The swap may or may not have landed: invalidate the user
				// before the cache serves it again; the store path decides now.
				e.safe.markDirty(req.Season, req.Player)
			}
			return ReviewResult{}, err
		}
		if !stored {
			continue // changed or evicted since the read: read again
		}
		res.Wait = e.waiter(ticket)
		return res, nil
	}
	return ReviewResult{}, ErrContention
}

// swapHeld writes r to the queue first (held), then compare-and-sets it into
// the cache, then releases the entry (stored) or cancels it (not stored, or
// the cache failed). Queue before cache: a crash in between leaves an entry
// that recovery drains and whose user is reloaded, never a cached review the
// queue lacks. The user's read lock keeps lazy loads, which read the queue,
// out of the window between the swap and the release.
func (e *Engine) swapHeld(ctx context.Context, expected string, r srs.Review) (ticket uint64, stored bool, err error) {
	mu := e.userLock(r.Season, r.Player)
	mu.RLock()
	defer mu.RUnlock()
	if ticket, err = e.journal.Hold(r); err != nil {
		return 0, false, err
	}
	var swapped rcache.SwapResult
	err = e.safe.call(func() (err error) {
		swapped, err = e.cache.Swap(ctx, expected, r)
		return err
	})
	if err == nil && swapped == rcache.SwapStored {
		if rerr := e.journal.Release(ticket); rerr != nil {
			// The cache holds a review the queue cannot confirm: not acknowledged.
			e.safe.markDirty(r.Season, r.Player)
			return 0, false, rerr
		}
		return ticket, true, nil
	}
	if cerr := e.journal.Cancel(ticket); cerr != nil {
		return 0, false, cerr
	}
	return 0, false, err
}

// ensureClean invalidates a user's cache entry if this sidecar wrote the user
// without the cache (during an outage) and has not invalidated it since.
func (e *Engine) ensureClean(ctx context.Context, season, player string) error {
	if e.safe.dirtyGen(season, player) == 0 {
		return nil
	}
	return e.invalidate(ctx, season, player)
}

// inIDWindow reports whether a repeat of this review id would still be in
// the cache's review-id memory: the answer is "now" or recent enough. Then
// the cache's check is enough and MariaDB is not asked (no query on the hot
// path); a client retrying an id later than that without its original AT is
// taken as a new answer.
func (e *Engine) inIDWindow(req ReviewRequest) bool {
	return req.atNow || req.now-req.At <= e.cfg.ReviewIDWindow.Milliseconds()
}

// loggedReview asks the review log whether a review id was applied. When
// MariaDB cannot answer, a review in the cache's review-id window goes ahead
// (the queue exists to absorb the outage); an older one is refused with
// ErrUncheckable, because it may be a retry only MariaDB remembers
// (invariant 2).
func (e *Engine) loggedReview(ctx context.Context, req ReviewRequest) (srs.Review, bool, error) {
	r, ok, err := e.store.LoggedReview(ctx, req.Season, req.ID)
	if err == nil {
		return r, ok, nil
	}
	if !e.inIDWindow(req) {
		return srs.Review{}, false, fmt.Errorf("%w: review %s (AT %d) is older than the cache's review-id memory and MariaDB cannot be asked whether it was applied: %v",
			ErrUncheckable, req.ID, req.At, err)
	}
	e.log.Warn("review id lookup failed; accepting a recent review, the drainer dedupes", "season", req.Season, "id", req.ID, "err", err)
	return srs.Review{}, false, nil
}

// replayLogged is replay for a review the log knows, or the lookup's error.
func (e *Engine) replayLogged(sched *fsrs.Scheduler, r srs.Review, err error) (ReviewResult, error) {
	if err != nil {
		return ReviewResult{}, err
	}
	return e.replay(sched, r)
}

// replay answers a repeated review id with the stored result. The review is
// appended again (the drainer ignores logged ids) so the reply still implies
// durability even if the first attempt crashed before its fsync.
func (e *Engine) replay(sched *fsrs.Scheduler, r srs.Review) (ReviewResult, error) {
	res := e.result(sched, r)
	var err error
	res.Duplicate = true
	res.Wait, err = e.append(r)
	return res, err
}

// next computes the review a grade produces on a card.
func (e *Engine) next(sched *fsrs.Scheduler, req ReviewRequest, card srs.Card, found bool) (ReviewResult, error) {
	if !found {
		card = srs.Card{Season: req.Season, Player: req.Player, QuestionID: req.Question}
	}
	if req.atNow && req.At < card.LastReview {
		// Another sidecar's clock (or a review a moment ago) is slightly ahead.
		req.At = card.LastReview
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
// Safe Mode): the card state comes from the store plus the local queue.
// The caller holds the card's lock. The user's read lock keeps a lazy load
// from reading the queue before this append and writing its older snapshot
// into the cache after it.
func (e *Engine) reviewInStore(ctx context.Context, sched *fsrs.Scheduler, req ReviewRequest) (ReviewResult, error) {
	if req.idGiven {
		// No cache on this path: the review log is the only memory of ids.
		if r, ok, err := e.loggedReview(ctx, req); err != nil || ok {
			return e.replayLogged(sched, r, err)
		}
	}
	mu := e.userLock(req.Season, req.Player)
	mu.RLock()
	defer mu.RUnlock()
	card, found, err := e.storeCard(ctx, req.Season, req.Player, req.Question)
	if err != nil {
		return ReviewResult{}, err
	}
	res, err := e.next(sched, req, card, found)
	if err != nil {
		return ReviewResult{}, err
	}
	res.Wait, err = e.append(res.Review)
	return res, err
}
