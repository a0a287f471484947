package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

func card(q string, last int64, reps int) srs.Card {
	return srs.Card{Season: "S", Player: "p", QuestionID: q, Schedule: srs.Schedule{LastReview: last, Reps: reps}}
}

func review(q string, last int64, reps int) srs.Review {
	return srs.Review{Season: "S", Player: "p", QuestionID: q, After: srs.Schedule{LastReview: last, Reps: reps}}
}

// The overlay puts undrained reviews over store rows: newer ones win, older
// ones never move a card back, unknown cards are added.
func TestOverlay(t *testing.T) {
	t.Parallel()
	cards := []srs.Card{card("a", 100, 3), card("b", 200, 5)}
	got := overlay(cards, []srs.Review{
		review("a", 150, 4), // newer: wins
		review("b", 100, 2), // older (already drained, then superseded): ignored
		review("c", 50, 1),  // not in the store yet: added
		review("a", 160, 5), // newer still, later in the queue: wins
	})
	want := map[string]int{"a": 5, "b": 5, "c": 1}
	if len(got) != 3 {
		t.Fatalf("got %d cards", len(got))
	}
	for _, c := range got {
		if c.Reps != want[c.QuestionID] {
			t.Errorf("card %s: reps %d, want %d", c.QuestionID, c.Reps, want[c.QuestionID])
		}
	}
}

// A rebuild page's cursor is the greatest (player, question) loaded.
func TestLastKey(t *testing.T) {
	t.Parallel()
	p, q := lastKey(groupUsers([]srs.Card{
		{Player: "b", QuestionID: "2"}, {Player: "a", QuestionID: "9"}, {Player: "b", QuestionID: "10"},
	}))
	if p != "b" || q != "2" { // byte order, as MariaDB's binary collation
		t.Fatalf("lastKey = %s/%s", p, q)
	}
}

// An invalidation clears only the dirty marks it has seen: a write that
// marks the user while it runs keeps the user dirty.
func TestDirtyGenerations(t *testing.T) {
	t.Parallel()
	s := newSafeMode(SafeModeConfig{}, time.Now)
	if s.dirtyGen("S", "p") != 0 {
		t.Fatal("clean user reads dirty")
	}
	s.markDirty("S", "p")
	g := s.dirtyGen("S", "p")
	s.markDirty("S", "p") // a write during the invalidation
	s.clean("S", "p", g)
	if s.dirtyGen("S", "p") == 0 {
		t.Fatal("a mark made during the invalidation was cleared")
	}
	s.clean("S", "p", s.dirtyGen("S", "p"))
	if s.dirtyGen("S", "p") != 0 || s.nDirt.Load() != 0 {
		t.Fatal("the user stayed dirty after a complete invalidation")
	}
}

// Only availability failures open the breaker, and an open breaker bypasses
// the cache without calling it.
func TestBreakerCountsOnlyAvailability(t *testing.T) {
	t.Parallel()
	down := errors.New("connection refused")
	s := newSafeMode(SafeModeConfig{Failures: 3, Unavailable: func(err error) bool { return errors.Is(err, down) }}, time.Now)
	scriptErr := errors.New("ERR script")
	for range 10 {
		if err := s.call(func() error { return scriptErr }); !errors.Is(err, scriptErr) {
			t.Fatalf("a script error must pass through: %v", err)
		}
	}
	if s.active() {
		t.Fatal("script errors opened the breaker")
	}
	for range 3 {
		if err := s.call(func() error { return down }); !errors.Is(err, errBypass) {
			t.Fatalf("an availability error must bypass: %v", err)
		}
	}
	if !s.active() {
		t.Fatal("3 availability failures did not open the breaker")
	}
	called := false
	if err := s.call(func() error { called = true; return nil }); !errors.Is(err, errBypass) || called {
		t.Fatalf("open breaker: err %v, called %v", err, called)
	}
}
