package core

import (
	"testing"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

func testScheduler(t testing.TB) *fsrs.Scheduler {
	t.Helper()
	s, err := fsrs.New(srs.DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const t0 = 1_790_000_000_000

// reviewed is a card whose last review was id at t0.
func reviewed(id string) srs.Card {
	return srs.Card{Season: "S", Player: "p", QuestionID: "q", Subject: "math", Schedule: srs.Schedule{
		State: srs.StateReview, Stability: 3, Difficulty: 5, Due: t0 + 3*86_400_000, LastReview: t0, Reps: 4,
		LastID: srs.ReviewHash(id), Recall: 0.875}}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	sched := testScheduler(t)
	unknownID := reviewed("x")
	unknownID.LastID = 0
	req := func(id string, at int64, atGiven bool) Request {
		return Request{Season: "S", Player: "p", Question: "q", Grade: srs.Good, ID: id, IDGiven: id != "", At: at, AtGiven: atGiven}
	}
	for _, tc := range []struct {
		name  string
		card  srs.Card
		found bool
		req   Request
		want  Verdict
	}{
		{"new card", srs.Card{}, false, req("a", t0, true), Apply},
		{"new card, no id", srs.Card{}, false, req("", t0, true), Apply},
		{"same id, same AT", reviewed("a"), true, req("a", t0, true), Duplicate},
		{"same id, no AT", reviewed("a"), true, req("a", t0+5000, false), Duplicate},
		{"same id, another AT: still the same review", reviewed("a"), true, req("a", t0+5000, true), Duplicate},
		{"after the last review", reviewed("a"), true, req("b", t0+1, true), Apply},
		{"offline sync hours later, new id", reviewed("a"), true, req("b", t0+3*3_600_000, true), Apply},
		{"no AT: now", reviewed("a"), true, req("b", t0+1000, false), Apply},
		{"no AT, clock behind the last review", reviewed("a"), true, req("b", t0-1000, false), Apply},
		{"same ms, other id: a retry of the ms's earlier review, or a second answer", reviewed("a"), true, req("b", t0, true), AskLog},
		{"same ms, no id", reviewed("a"), true, req("", t0, true), Apply},
		{"same ms, id, last id unknown", unknownID, true, req("b", t0, true), AskLog},
		{"older, with id: maybe a retry", reviewed("a"), true, req("b", t0-1, true), AskLog},
		{"older, no id", reviewed("a"), true, req("", t0-1, true), TooOld},
		{"older on a never-reviewed card", srs.Card{Schedule: srs.Schedule{LastReview: t0}}, true, req("b", t0-1, true), Apply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(sched, tc.card, tc.found, tc.req)
			if d.Verdict != tc.want {
				t.Fatalf("verdict %v, want %v", d.Verdict, tc.want)
			}
			switch d.Verdict {
			case Apply:
				r := d.Review
				if r.After.LastID != srs.ReviewHash(tc.req.ID) || r.After.Reps != tc.card.Reps+1 || r.Before != tc.card.Schedule && tc.found {
					t.Fatalf("applied review: %+v", r)
				}
				if r.ReviewedAt < tc.card.LastReview && !tc.req.AtGiven {
					t.Fatalf("a review without AT went before the card's last review: %d < %d", r.ReviewedAt, tc.card.LastReview)
				}
				if float64(float32(r.After.Recall)) != r.After.Recall {
					t.Fatalf("recall %v is not a float32", r.After.Recall)
				}
			case Duplicate:
				if d.Review.After != tc.card.Schedule || d.Review.ID != tc.req.ID || d.Review.QuestionID != "q" {
					t.Fatalf("duplicate answer: %+v", d.Review)
				}
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	sched := testScheduler(t)
	before := reviewed("a")
	r := Next(sched, before, Request{Season: "S", Player: "p", Question: "q", Grade: srs.Good, ID: "b", IDGiven: true, At: t0 + 86_400_000, AtGiven: true})
	other := Next(sched, before, Request{Season: "S", Player: "p", Question: "q", Grade: srs.Again, ID: "c", IDGiven: true, At: t0 + 86_400_000, AtGiven: true})
	cached := func(c srs.Card, token string) srs.CardRead {
		return srs.CardRead{Loaded: true, Found: true, CachedCard: srs.CachedCard{Card: c, Token: token}}
	}
	for _, tc := range []struct {
		name     string
		expected string
		rd       srs.CardRead
		want     Resolution
	}{
		{"landed", "tok-a", cached(r.Card(), "tok-b"), CASLanded},
		{"unchanged", "tok-a", cached(before, "tok-a"), CASUnchanged},
		{"absent and expected absent", "", srs.CardRead{Loaded: true}, CASUnchanged},
		{"another review won", "tok-a", cached(other.Card(), "tok-c"), CASSuperseded},
		{"evicted", "tok-a", srs.CardRead{}, CASUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Resolve(r, tc.expected, tc.rd); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	t.Parallel()
	sched := testScheduler(t)
	before := reviewed("a")
	r := Next(sched, before, Request{Season: "S", Player: "p", Question: "q", Grade: srs.Good, ID: "b", IDGiven: true, At: t0 + 86_400_000, AtGiven: true})
	first := Next(sched, srs.Card{Season: "S", Player: "p", QuestionID: "q"}, Request{Season: "S", Player: "p", Question: "q", Grade: srs.Good, ID: "n", IDGiven: true, At: t0, AtGiven: true})
	moved := Next(sched, r.Card(), Request{Season: "S", Player: "p", Question: "q", Grade: srs.Easy, ID: "z", IDGiven: true, At: t0 + 2*86_400_000, AtGiven: true})
	cached := func(c srs.Card) srs.CardRead {
		return srs.CardRead{Loaded: true, Found: true, CachedCard: srs.CachedCard{Card: c, Token: "t"}}
	}
	for _, tc := range []struct {
		name   string
		entry  srs.Review
		sameID bool
		rd     srs.CardRead
		readOK bool
		want   Settlement
	}{
		{"a later attempt of the same review exists", r, true, cached(r.Card()), true, Drop},
		{"landed", r, false, cached(r.Card()), true, Keep},
		{"still at Before", r, false, cached(before), true, Complete},
		{"first review, card absent", first, false, srs.CardRead{Loaded: true}, true, Complete},
		{"moved on past it", r, false, cached(moved.Card()), true, KeepDirty},
		{"cache down", r, false, srs.CardRead{}, false, KeepDirty},
		{"user not cached", r, false, srs.CardRead{}, true, KeepDirty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Settle(tc.entry, tc.sameID, tc.rd, tc.readOK); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOverlay(t *testing.T) {
	t.Parallel()
	sched := testScheduler(t)
	stored := reviewed("a")
	newer := Next(sched, stored, Request{Season: "S", Player: "p", Question: "q", Grade: srs.Good, ID: "b", IDGiven: true, At: t0 + 1, AtGiven: true})
	fresh := Next(sched, srs.Card{Season: "S", Player: "p", QuestionID: "q2"}, Request{Season: "S", Player: "p", Question: "q2", Grade: srs.Good, ID: "c", At: t0, AtGiven: true})
	older := newer
	older.After.LastReview, older.After.Reps = t0-1, 1
	got := Overlay([]srs.Card{stored}, []srs.Review{older, newer, fresh})
	if len(got) != 2 || got[0].Schedule != newer.After || got[1].Schedule != fresh.After {
		t.Fatalf("overlay: %+v", got)
	}
}
