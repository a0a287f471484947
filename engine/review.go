package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/engine/core"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// MaxFutureMS is how far in the future a review's AT may lie (clock skew between app nodes).
const MaxFutureMS = 5 * 60 * 1000

// swapAttempts bounds the compare-and-set retries of one review.
const swapAttempts = 8

// resendAttempts bounds how often an ambiguous compare-and-set is sent again.
const resendAttempts = 3

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
	// Wait, when not nil, blocks until the review is durable; the reply must
	// not be sent before it returns nil. It is nil when the review is durable
	// already (written ahead of the cache, or a duplicate the record shows).
	Wait func(context.Context) error
}

// Review applies one answer (docs/CORE.md §2): the card's record (cache,
// else store + local queue) decides whether it is new, a repeat or needs
// the review log; a new one is written ahead to the queue, fsynced, then
// compare-and-set into the cache.
//
// Errors: srs.ErrUnknownSeason, srs.ErrSeasonInactive, *srs.SeasonArchivedError,
// srs.ErrReviewInFuture, *srs.InvalidError (Field "AT": an AT given before
// the season's START), srs.ErrReviewTooOld, srs.ErrQueueFull,
// *srs.QueueDiskError, srs.ErrStoreUnavailable (the request needs MariaDB
// and it does not answer), ErrContention, or a wrapped cache error.
func (e *Engine) Review(ctx context.Context, req ReviewRequest) (ReviewResult, error) {
	season, sched, err := e.servingSeason(ctx, req.Season)
	if err != nil {
		return ReviewResult{}, err
	}
	now := e.now()
	cr := core.Request{
		Season: req.Season, Player: req.Player, Question: req.Question, Grade: req.Grade,
		At: req.At, AtGiven: req.At != 0, ID: req.ID, IDGiven: req.ID != "",
		Subject: req.Subject, Topic: req.Topic, Stage: req.Stage, DurationMS: req.DurationMS,
		Sidecar: e.cfg.Sidecar,
	}
	if !cr.AtGiven {
		cr.At = now
	}
	if cr.At > now+MaxFutureMS {
		return ReviewResult{}, srs.ErrReviewInFuture
	}
	if start := season.Start; cr.AtGiven && !start.IsZero() && cr.At < start.UnixMilli() {
		return ReviewResult{}, &srs.InvalidError{Field: "AT", Msg: fmt.Sprintf("%d (%s) is before the start of season %s (%s)",
			cr.At, time.UnixMilli(cr.At).UTC().Format(time.RFC3339), season.Name, start.Format(time.DateOnly))}
	}
	if !cr.IDGiven {
		cr.ID = uuid.Must(uuid.NewV7()).String()
	}
	// One review of a card at a time in this sidecar, whichever path it
	// takes: the cache's compare-and-set orders sidecars, this lock orders
	// the cache path against the store path within one.
	unlock := e.cards.Lock(req.Season + "\x00" + req.Player + "\x00" + req.Question)
	defer unlock()
	if cr.IDGiven {
		if r, ok := e.journal.PendingReview(req.Season, req.Player, req.Question, cr.ID); ok {
			return e.duplicate(sched, r, true), nil
		}
	}
	if !season.EnableCache {
		return e.reviewInStore(ctx, sched, cr)
	}
	res, err := e.reviewCached(ctx, sched, cr)
	if errors.Is(err, errBypass) {
		// Safe Mode: the cache is unavailable; the review still becomes
		// durable. The user is marked dirty durably before the append: a
		// crash after the reply must not forget that the cache is stale.
		e.metrics.safeServed.Add(ctx, 1)
		if e.cfg.Dirty != nil {
			if err := e.cfg.Dirty.Mark(req.Season, req.Player); err != nil {
				return ReviewResult{}, fmt.Errorf("safe mode: persist the dirty mark of %s/%s: %w", req.Season, req.Player, err)
			}
		}
		res, err = e.reviewInStore(ctx, sched, cr)
		if err == nil {
			// Marked after the append: any load that ran before it missed this
			// review, so the user's cache entry is invalidated before reuse.
			e.safe.markDirty(req.Season, req.Player)
		}
	}
	return res, err
}

// reviewCached is the review path through the cache. It returns errBypass
// when the cache is unavailable before anything was written.
func (e *Engine) reviewCached(ctx context.Context, sched *fsrs.Scheduler, req core.Request) (ReviewResult, error) {
	if err := e.ensureClean(ctx, req.Season, req.Player); err != nil {
		return ReviewResult{}, err
	}
	for attempt := range swapAttempts {
		// The first attempt builds on the near-cache's copy when there is
		// one (no round trip); a conflict makes the next one read Redis.
		rd, peeked := srs.CardRead{}, false
		if attempt == 0 && !e.safe.active() {
			rd, peeked = e.cache.Peek(req.Season, req.Player, req.Question)
		}
		if !peeked {
			err := e.safe.callCtx(ctx, func() (err error) {
				rd, err = e.cache.Read(ctx, req.Season, req.Player, req.Question)
				return err
			})
			if err != nil {
				return ReviewResult{}, err
			}
		}
		if !rd.Loaded {
			e.metrics.cacheReads.Add(ctx, 1, e.metrics.miss)
			if err := e.load(ctx, req.Season, req.Player); err != nil {
				return ReviewResult{}, err
			}
			continue
		}
		e.metrics.cacheReads.Add(ctx, 1, e.metrics.hit)
		d := core.Decide(sched, rd.Card, rd.Found, req)
		switch d.Verdict {
		case core.Duplicate:
			// The record only shows reviews written ahead to some queue.
			return e.duplicate(sched, d.Review, false), nil
		case core.AskLog:
			var res ReviewResult
			var err error
			if d, res, err = e.askLog(ctx, sched, req, rd.Card); d.Verdict != core.Apply {
				return res, err
			}
		case core.TooOld:
			return ReviewResult{}, tooOld(req, rd.Card)
		}
		res := e.result(d.Review)
		stored, err := e.writeAhead(ctx, rd.Token, d.Review)
		if err != nil {
			return ReviewResult{}, err
		}
		if stored {
			return res, nil
		}
	}
	return ReviewResult{}, ErrContention
}

// writeAhead holds r in the queue, waits for its fsync, then compare-and-sets
// it into the cache and settles the entry: Release when stored, Cancel when
// the card changed since it was read (stored false: read again). The user's
// shared lock keeps a load, which reads the queue, out of the window between
// the swap and the release.
func (e *Engine) writeAhead(ctx context.Context, expected string, r srs.Review) (stored bool, err error) {
	unlock := e.users.RLock(r.Season + "\x00" + r.Player)
	defer unlock()
	ticket, err := e.journal.Hold(r)
	if err != nil {
		return false, err
	}
	if err := e.journal.Wait(ctx, ticket); err != nil {
		_ = e.journal.Cancel(ticket)
		return false, err
	}
	var lastErr error
	resent := false
	for range resendAttempts {
		var out srs.SwapOutcome
		err := e.safe.callCommitted(ctx, func() (err error) {
			out, err = e.cache.Swap(ctx, expected, r.Card())
			return err
		})
		switch {
		case err == nil && out == srs.SwapStored:
			return true, e.journal.Release(ticket)
		case err == nil && !resent:
			// Conflict, or no longer loaded: nothing of this review can land.
			return false, e.journal.Cancel(ticket)
		case err != nil:
			lastErr = err
		}
		// Ambiguous (or a conflict after an ambiguous copy, which may be the
		// copy landing): read back; never redo elsewhere.
		var rd srs.CardRead
		if err := e.safe.callCommitted(ctx, func() (err error) {
			rd, err = e.cache.Read(ctx, r.Season, r.Player, r.QuestionID)
			return err
		}); err != nil {
			lastErr = err
			break
		}
		resolution := core.Resolve(r, expected, rd)
		switch resolution {
		case core.CASLanded:
			return true, e.journal.Release(ticket)
		case core.CASSuperseded:
			return false, e.journal.Cancel(ticket)
		case core.CASUnknown:
			lastErr = fmt.Errorf("the user-season left the cache during the swap (%v)", lastErr)
		}
		if resolution == core.CASUnknown {
			break
		}
		resent = true // CASUnchanged: send the identical swap again
	}
	// Redis cannot tell. Keep the review (a retry of its id is answered
	// from the queue) and reload the user before the cache serves it again.
	markErr := e.markDirty(r.Season, r.Player)
	if err := e.journal.Release(ticket); err != nil {
		return false, errors.Join(lastErr, markErr, err)
	}
	if markErr == nil && errors.Is(lastErr, errBypass) {
		// The cache went away under the swap. The review is durable and the
		// user is reloaded before the cache serves it again: what a Safe
		// Mode review guarantees, so it is acknowledged as one (a review
		// that built on the near-cache meets an outage first at its swap).
		e.metrics.safeServed.Add(ctx, 1)
		return true, nil
	}
	lastErr = errors.Join(lastErr, markErr)
	return false, fmt.Errorf("%w: review %s is kept, but the cache did not confirm it; retry with the same ID: %v",
		ErrUnconfirmed, r.ID, lastErr)
}

// ErrUnconfirmed is a review that was written to the queue (and will be
// drained) whose compare-and-set the cache never confirmed; a retry with the
// same id is answered as a duplicate.
var ErrUnconfirmed = errors.New("review queued but not confirmed by the cache")

// askLog answers a review that is not after its card's last review: the
// review log says whether its id was applied (then it is a duplicate). If
// not, one given in the same millisecond as the last review is a new answer
// (Apply, with the review to write); an older one is too old. Only this rare
// case needs MariaDB on the review path.
func (e *Engine) askLog(ctx context.Context, sched *fsrs.Scheduler, req core.Request, card srs.Card) (core.Decision, ReviewResult, error) {
	r, ok, err := e.store.LoggedReview(ctx, req.Season, req.Player, req.Question, req.ID)
	switch {
	case err != nil:
		return core.Decision{Verdict: core.AskLog}, ReviewResult{}, fmt.Errorf("%w: review %s (AT %d) is not after its card's last review, and only the review log can tell whether it was applied: %v",
			srs.ErrStoreUnavailable, req.ID, req.At, err)
	case ok:
		return core.Decision{Verdict: core.Duplicate}, e.duplicate(sched, r, false), nil
	case req.At == card.LastReview:
		return core.Decision{Verdict: core.Apply, Review: core.Next(sched, card, req)}, ReviewResult{}, nil
	}
	return core.Decision{Verdict: core.TooOld}, ReviewResult{}, fmt.Errorf("%w (at %d, last review %d; review %s is not in the review log)", srs.ErrReviewTooOld, req.At, card.LastReview, req.ID)
}

func tooOld(req core.Request, card srs.Card) error {
	return fmt.Errorf("%w (at %d, last review %d)", srs.ErrReviewTooOld, req.At, card.LastReview)
}

// duplicate answers a repeated review id with the stored result. A review
// from this sidecar's queue may not be fsynced yet (its first attempt is
// still in flight): the reply then waits for the queue's fsync.
func (e *Engine) duplicate(sched *fsrs.Scheduler, r srs.Review, queued bool) ReviewResult {
	if r.After.Recall == 0 && r.Before.Reps > 0 {
		// A review logged by release 1 carries no recall.
		r.After.Recall = float64(float32(sched.Retrievability(r.Before, r.ReviewedAt)))
	}
	res := e.result(r)
	res.Duplicate = true
	if queued {
		res.Wait = e.journal.Sync
	}
	return res
}

// result derives the reply fields of a review.
func (e *Engine) result(r srs.Review) ReviewResult {
	res := ReviewResult{Review: r, Retrievability: r.After.Recall}
	if r.After.State == srs.StateReview {
		res.IntervalDays = int(math.Round(float64(r.After.Due-r.ReviewedAt) / 86400000))
	}
	return res
}

// reviewInStore is the review path without the cache (season cache off, or
// Safe Mode): the record comes from the store plus the local queue, and the
// decided review is appended. The caller holds the card's lock; the user's
// shared lock keeps a load from reading the queue before this append and
// writing its older snapshot into the cache after it.
func (e *Engine) reviewInStore(ctx context.Context, sched *fsrs.Scheduler, req core.Request) (ReviewResult, error) {
	unlock := e.users.RLock(req.Season + "\x00" + req.Player)
	defer unlock()
	card, found, err := e.storeCard(ctx, req.Season, req.Player, req.Question)
	if err != nil {
		return ReviewResult{}, err
	}
	d := core.Decide(sched, card, found, req)
	switch d.Verdict {
	case core.Duplicate:
		return e.duplicate(sched, d.Review, false), nil
	case core.AskLog:
		var res ReviewResult
		if d, res, err = e.askLog(ctx, sched, req, card); d.Verdict != core.Apply {
			return res, err
		}
	case core.TooOld:
		return ReviewResult{}, tooOld(req, card)
	}
	t, err := e.journal.Append(d.Review)
	if err != nil {
		return ReviewResult{}, err
	}
	res := e.result(d.Review)
	res.Wait = func(ctx context.Context) error { return e.journal.Wait(ctx, t) }
	return res, nil
}
