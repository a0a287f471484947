package mariadb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/srs"
)

// testDSN returns the DSN of a fresh database name (not yet created) and
// drops that database when the test ends.
func testDSN(tb testing.TB) (dsn, schema string) {
	tb.Helper()
	base := os.Getenv("SRS_TEST_MYSQL")
	if base == "" {
		base = "root@tcp(127.0.0.1:3306)/"
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema = "srs_test_" + hex.EncodeToString(b)
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + schema); err != nil {
			tb.Errorf("drop %s: %v", schema, err)
		}
		admin.Close()
	})
	cfg.DBName = schema
	return cfg.FormatDSN(), schema
}

// newStore opens a store on a database of its own, dropped after the test.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	dsn, _ := testDSN(tb)
	s, err := Open(context.Background(), dsn, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() }) // runs before the drop registered by testDSN
	return s
}

// newSeason creates an active season with its partitions.
func newSeason(tb testing.TB, s *Store, name string) {
	tb.Helper()
	if _, err := s.CreateSeason(context.Background(), srs.Season{
		Name: name, IsActive: true, Scheduler: srs.DefaultSchedulerConfig(),
	}); err != nil {
		tb.Fatal(err)
	}
}

// review builds a review of card (season, player, question) leaving the card
// at version (lastReview, reps); the other fields derive from those two so
// tests can tell versions apart by any column. Its Before names no review
// (LastID 0): on a card row whose last_id is known it does not continue the
// row (see then).
func review(id, season, player, question string, lastReview int64, reps int) srs.Review {
	return srs.Review{
		ID: id, Season: season, Player: player, QuestionID: question,
		Subject: "math", Topic: "algebra", Stage: "s1", Grade: srs.Good,
		ReviewedAt: lastReview, DurationMS: 1234, ElapsedDays: 3, Sidecar: "node-1",
		Before: srs.Schedule{State: srs.StateLearning, Step: 1, Stability: 0.4, Difficulty: 6.5,
			Due: lastReview - 1000, LastReview: lastReview - 60_000, Reps: reps - 1, Lapses: 1},
		After: srs.Schedule{State: srs.StateReview, Step: 0, Stability: float64(reps) + 0.123456789,
			Difficulty: 5.0 + float64(reps)/10, Due: lastReview + int64(reps)*86_400_000,
			LastReview: lastReview, Reps: reps, Lapses: reps / 3,
			LastID: srs.ReviewHash(id), Recall: 0.5 + float64(reps%40)/100},
	}
}

// then returns r built on prev, as the engine builds a review on the card
// state it read: r's Before is prev's After, so r continues prev's card row.
func then(prev, r srs.Review) srs.Review {
	r.Before = prev.After
	return r
}

// keys returns the review keys of reviews.
func keys(reviews ...srs.Review) []ReviewKey {
	var out []ReviewKey
	for _, r := range reviews {
		out = append(out, ReviewKey{r.Player, r.QuestionID, r.ID})
	}
	return out
}

func apply(tb testing.TB, s *Store, batch ...srs.Review) []int {
	tb.Helper()
	rejected, err := s.ApplyReviews(context.Background(), batch)
	if err != nil {
		tb.Fatal(err)
	}
	return rejected
}

func mustCard(tb testing.TB, s *Store, season, player, question string) srs.Card {
	tb.Helper()
	c, ok, err := s.Card(context.Background(), season, player, question)
	if err != nil || !ok {
		tb.Fatalf("Card(%s, %s, %s) = %v, %v", season, player, question, ok, err)
	}
	return c
}
