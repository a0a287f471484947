package mariadb

import (
	"context"
	"fmt"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
)

func importedCard(season, player, question string, lastReview int64) srs.Card {
	return srs.Card{Season: season, Player: player, QuestionID: question, Subject: "math",
		Schedule: srs.Schedule{State: srs.StateReview, Stability: 7, Difficulty: 5.3,
			Due: lastReview + 7*86_400_000, LastReview: lastReview, Reps: 3}}
}

// TestImportGuard: the import inserts, rewrites its own rows with newer
// source data, leaves equal rows alone, never overwrites a card reviewed
// through srsproxy after the pass started, and lets a newer source win over
// a review from before the pass.
func TestImportGuard(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	const season = "SEASON-2026-IMP"
	newSeason(t, s, season)

	// A card reviewed through srsproxy before the pass starts.
	early := review("early-1", season, "p1", "q-early", 1_700_000_000_000, 1)
	apply(t, s, early)

	run, err := s.BeginImport(ctx, "test-import", "test")
	if err != nil {
		t.Fatal(err)
	}
	if run.Pass != 1 || run.Resumed || run.StartedMS == 0 {
		t.Fatalf("first BeginImport = %+v", run)
	}
	base := int64(1_750_000_000_000)
	cards := []srs.Card{
		importedCard(season, "p1", "q1", base),
		importedCard(season, "p1", "q2", base),
		importedCard(season, "p1", "q-early", early.ReviewedAt+1), // newer than the early review
	}
	w, err := s.WriteImported(ctx, run, cards)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportWrite{Inserted: 2, Updated: 1}); w != want {
		t.Fatalf("first write: %+v, want %+v", w, want)
	}
	if got := mustCard(t, s, season, "p1", "q-early"); got.LastID != 0 || got.LastReview != early.ReviewedAt+1 {
		t.Fatalf("newer source did not win over an older review: %+v", got)
	}

	// q1 is reviewed through srsproxy after the pass started.
	r := review("after-1", season, "p1", "q1", base+86_400_000, 4)
	r.Before = cards[0].Schedule
	apply(t, s, r)
	reviewed := mustCard(t, s, season, "p1", "q1")

	// The source moves on: everything newer.
	newer := []srs.Card{
		importedCard(season, "p1", "q1", base+2*86_400_000),
		importedCard(season, "p1", "q2", base+2*86_400_000),
		importedCard(season, "p1", "q-early", early.ReviewedAt+1),
	}
	w, err = s.WriteImported(ctx, run, newer)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportWrite{Updated: 1, Unchanged: 1, Kept: 1}); w != want {
		t.Fatalf("second write: %+v, want %+v", w, want)
	}
	if got := mustCard(t, s, season, "p1", "q1"); got != reviewed {
		t.Fatalf("a card reviewed after the import started was overwritten:\n got %+v\nwant %+v", got, reviewed)
	}
	if got := mustCard(t, s, season, "p1", "q2"); got != newer[1] {
		t.Fatalf("imported row not caught up: %+v", got)
	}

	// An older source never moves an imported row back.
	w, err = s.WriteImported(ctx, run, []srs.Card{importedCard(season, "p1", "q2", base)})
	if err != nil || w != (ImportWrite{Kept: 1}) {
		t.Fatalf("older source: %+v, %v", w, err)
	}

	// The SQL guard alone (the counting read bypassed): a statement built
	// from a stale view must still keep the reviewed card.
	started := float64(run.StartedMS) / 1000
	args := appendCard(nil, newer[0])
	for range importGuards {
		args = append(args, started)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf(importUpsert, cardPlaceholders), args...); err != nil {
		t.Fatal(err)
	}
	if got := mustCard(t, s, season, "p1", "q1"); got != reviewed {
		t.Fatalf("the statement's guard let the import overwrite a reviewed card: %+v", got)
	}
}

// TestImportRuns: a pass resumes with its start and cursor; a finished one
// is followed by a new pass that keeps the import's start; a superseded pass
// cannot save progress.
func TestImportRuns(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	run, err := s.BeginImport(ctx, "runs", "opts")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceImport(ctx, run, "player-0500", `{"rows":500}`, false); err != nil {
		t.Fatal(err)
	}
	again, err := s.BeginImport(ctx, "runs", "opts")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Resumed || again.Pass != 1 || again.StartedMS != run.StartedMS || again.Cursor != "player-0500" || again.Counts != `{"rows":500}` {
		t.Fatalf("resume = %+v (first %+v)", again, run)
	}
	if err := s.AdvanceImport(ctx, again, "player-0900", `{"rows":900}`, true); err != nil {
		t.Fatal(err)
	}
	next, err := s.BeginImport(ctx, "runs", "opts")
	if err != nil {
		t.Fatal(err)
	}
	if next.Resumed || next.Pass != 2 || next.Cursor != "" || next.Counts != "{}" || next.StartedMS != run.StartedMS {
		t.Fatalf("after done = %+v", next)
	}
	if err := s.AdvanceImport(ctx, again, "x", "{}", false); err == nil {
		t.Fatal("a superseded pass saved its progress")
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE import_runs SET format = 99 WHERE id = 'runs'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginImport(ctx, "runs", "opts"); err == nil {
		t.Fatal("a row of an unknown format was read")
	}
}
