// Package core is the review transaction as pure functions (docs/CORE.md §2,
// §3): Decide says what a request does to a card record, Resolve reads an
// ambiguous compare-and-set back, Settle decides a held entry found after a
// crash, Overlay folds a sidecar's undrained reviews into cards read from the
// store. Nothing here does I/O or reads a clock: the engine moves bytes
// between these functions and its ports, and the simulation test drives the
// same functions through thousands of seeded fault schedules.
package core

import (
	"fmt"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// Request is one answer to a card.
type Request struct {
	Season, Player, Question string
	Grade                    srs.Grade
	// At is the answer time (unix ms). When AtGiven is false it is the time
	// the request arrived, and the review may be moved up to the card's last
	// review (another sidecar's clock may be slightly ahead).
	At      int64
	AtGiven bool
	// ID is the review id; IDGiven says the client chose it, so the request
	// may be a retry of one already applied.
	ID                    string
	IDGiven               bool
	Subject, Topic, Stage *string // nil: keep the card's label
	DurationMS            int64
	Sidecar               string // recorded with the review
}

// Verdict is what a request does to a card.
type Verdict int

// Verdicts of Decide.
const (
	// Apply: a new answer; Decision.Review is the review to write ahead and
	// compare-and-set.
	Apply Verdict = iota
	// Duplicate: the card's last review has this id; Decision.Review is that
	// review as far as the record tells (no Before, Grade or duration).
	Duplicate
	// AskLog: only the review log (and the sidecar's queue) can tell whether
	// this id was applied: the answer is not after the card's last review.
	// Not in the log, an answer in the same millisecond is new, an older one
	// too old.
	AskLog
	// TooOld: an answer older than the card's last review that carries no
	// id, so it cannot be a retry; refused.
	TooOld
)

func (v Verdict) String() string {
	switch v {
	case Apply:
		return "apply"
	case Duplicate:
		return "duplicate"
	case AskLog:
		return "ask-log"
	case TooOld:
		return "too-old"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Decision is the outcome of Decide.
type Decision struct {
	Verdict Verdict
	Review  srs.Review
}

// Decide says what req does to a card whose record is card (found false: the
// card has never been reviewed). It reads nothing but its arguments.
func Decide(sched *fsrs.Scheduler, card srs.Card, found bool, req Request) Decision {
	if !found {
		card = srs.Card{Season: req.Season, Player: req.Player, QuestionID: req.Question}
	}
	last := card.LastReview
	// The same id on the same card is the same review, whatever its AT
	// (a retry may carry the time the client first sent it).
	if req.IDGiven && card.LastID != 0 && card.LastID == srs.ReviewHash(req.ID) {
		return Decision{Verdict: Duplicate, Review: recorded(card, req.ID)}
	}
	switch {
	case !req.AtGiven || req.At > last || card.Reps == 0:
		// A new answer: nothing at or after this time has been applied.
	case req.At == last && !req.IDGiven:
		// Two answers in one millisecond; without an id this one cannot
		// be a retry.
	case req.IDGiven:
		// Older, or in the same millisecond with another id: a retry of an
		// earlier review of that millisecond looks the same as a second
		// answer in it (a session answering one question twice).
		return Decision{Verdict: AskLog}
	default:
		return Decision{Verdict: TooOld}
	}
	return Decision{Verdict: Apply, Review: Next(sched, card, req)}
}

// Next is the review req produces on card: FSRS's next state, the review's
// id hash and the recall the card had when it was answered. When the answer
// time was not given, it is moved up to the card's last review if earlier.
func Next(sched *fsrs.Scheduler, card srs.Card, req Request) srs.Review {
	at := req.At
	if !req.AtGiven && at < card.LastReview {
		at = card.LastReview
	}
	for _, f := range [...]struct{ dst, src *string }{
		{&card.Subject, req.Subject}, {&card.Topic, req.Topic}, {&card.Stage, req.Stage},
	} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	out := sched.Next(card.Schedule, req.Grade, at, fsrs.Seed(req.Season, req.Player, req.Question))
	after := out.Schedule
	after.LastID = srs.ReviewHash(req.ID)
	// Rounded to float32 here, where it is made: the cache record keeps 4
	// bytes of it, and every copy must answer a retry with the same digits.
	after.Recall = float64(float32(sched.Retrievability(card.Schedule, at)))
	return srs.Review{
		ID: req.ID, Season: req.Season, Player: req.Player, QuestionID: req.Question,
		Subject: card.Subject, Topic: card.Topic, Stage: card.Stage,
		Grade: req.Grade, ReviewedAt: at, DurationMS: req.DurationMS,
		ElapsedDays: out.ElapsedDays, Before: card.Schedule, After: after,
		Sidecar: req.Sidecar,
	}
}

// recorded is the last review of card as its record tells it.
func recorded(card srs.Card, id string) srs.Review {
	return srs.Review{
		ID: id, Season: card.Season, Player: card.Player, QuestionID: card.QuestionID,
		Subject: card.Subject, Topic: card.Topic, Stage: card.Stage,
		ReviewedAt: card.LastReview, After: card.Schedule,
	}
}

// Landed reports whether a cached card shows review r as its last review.
func Landed(r srs.Review, rd srs.CardRead) bool {
	return rd.Found && rd.Card.LastID == r.After.LastID && rd.Card.Reps == r.After.Reps &&
		rd.Card.LastReview == r.After.LastReview
}

// Resolution is what reading back an ambiguous compare-and-set tells.
type Resolution int

// Resolutions of Resolve.
const (
	// CASLanded: the card shows the review; release its entry.
	CASLanded Resolution = iota
	// CASUnchanged: the card is still the one the compare-and-set expected; a
	// copy of it may still be on its way, so send the identical one again.
	CASUnchanged
	// CASSuperseded: another review moved the card; no copy can land any more,
	// so cancel the entry and decide again from a fresh read.
	CASSuperseded
	// CASUnknown: the user-season is no longer cached; keep the entry and mark
	// the user dirty.
	CASUnknown
)

// Resolve reads back a compare-and-set of r whose outcome is unknown
// (timeout, broken connection), given the expected token it was sent with.
func Resolve(r srs.Review, expected string, rd srs.CardRead) Resolution {
	switch {
	case !rd.Loaded:
		return CASUnknown
	case Landed(r, rd):
		return CASLanded
	case rd.Found && rd.Token == expected, !rd.Found && expected == "":
		return CASUnchanged
	}
	return CASSuperseded
}

// Settlement is what recovery does with a held entry nobody settled.
type Settlement int

// Settlements of Settle.
const (
	// Keep: release the entry; the cache already shows it.
	Keep Settlement = iota
	// Drop: cancel the entry; a drainable entry of the same review exists.
	Drop
	// Complete: the card is still the entry's Before: compare-and-set the
	// entry's After now (expected: the read's token), then release.
	Complete
	// KeepDirty: release the entry and invalidate the user before the cache
	// serves it again (the cache cannot show whether it landed).
	KeepDirty
)

func (s Settlement) String() string {
	switch s {
	case Keep:
		return "keep"
	case Drop:
		return "drop"
	case Complete:
		return "complete"
	case KeepDirty:
		return "keep-dirty"
	}
	return fmt.Sprintf("settlement(%d)", int(s))
}

// Settle decides a recovered held entry r (docs/CORE.md §3). sameID says a
// drainable entry of the same card has the same id; rd is the cached card
// and readOK false means the cache did not answer.
func Settle(r srs.Review, sameID bool, rd srs.CardRead, readOK bool) Settlement {
	switch {
	case sameID:
		return Drop
	case !readOK || !rd.Loaded:
		return KeepDirty
	case Landed(r, rd):
		return Keep
	case rd.Found && rd.Card.Schedule == r.Before, !rd.Found && r.Before.Reps == 0:
		return Complete
	}
	return KeepDirty
}

// Overlay folds a sidecar's undrained reviews (in append order) into cards
// read from the store, so a student never sees an acknowledged answer
// disappear: a card takes a pending review's state when that is newer.
func Overlay(cards []srs.Card, pending []srs.Review) []srs.Card {
	if len(pending) == 0 {
		return cards
	}
	at := make(map[string]int, len(cards))
	for i, c := range cards {
		at[c.QuestionID] = i
	}
	for _, r := range pending {
		i, ok := at[r.QuestionID]
		switch {
		case !ok:
			at[r.QuestionID] = len(cards)
			cards = append(cards, r.Card())
		case r.After.NewerThan(cards[i].Schedule):
			cards[i] = r.Card()
		}
	}
	return cards
}
