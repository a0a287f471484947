package mariadb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
)

// cardAt is a review leaving card (player, question) of subject due at due.
func cardAt(id, player, question, subject string, due int64) srs.Review {
	r := review(id, season, player, question, 1_000_000, 1)
	r.Subject, r.After.Due = subject, due
	return r
}

func questions(cards []srs.Card) []string {
	var q []string
	for _, c := range cards {
		q = append(q, c.QuestionID)
	}
	return q
}

func TestCardReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	newSeason(t, s, "SEASON-2027")
	apply(t, s,
		cardAt("1", "eve", "q5", "math", 5_000),
		cardAt("2", "eve", "q1", "bio", 1_000),
		cardAt("3", "eve", "q3", "math", 3_000),
		cardAt("4", "eve", "q2", "math", 2_000),
		cardAt("5", "eve", "q4", "mathematics", 4_000), // a prefix of another subject is not that subject
		cardAt("6", "eve", "Q1", "math", 9_000),        // case matters: a different question
		cardAt("7", "eve", "q1 ", "math", 9_500),       // trailing space matters too (NO PAD)
		cardAt("8", "frank", "q1", "math", 500),        // another player
	)
	r := review("9", "SEASON-2027", "eve", "q1", 1_000_000, 1) // another season
	r.After.Due = 100
	apply(t, s, r)

	all, err := s.UserCards(ctx, season, "eve")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Q1", "q1", "q1 ", "q2", "q3", "q4", "q5"}; !slices.Equal(questions(all), want) {
		t.Errorf("UserCards = %v, want %v", questions(all), want)
	}
	if c, ok, err := s.Card(ctx, season, "eve", "q3"); err != nil || !ok || c.Due != 3_000 || c.Subject != "math" {
		t.Errorf("Card(q3) = %+v, %v, %v", c, ok, err)
	}
	if _, ok, err := s.Card(ctx, season, "eve", "q9"); ok || err != nil {
		t.Errorf("Card(missing) = %v, %v", ok, err)
	}

	for _, tc := range []struct {
		subject   string
		now       int64
		limit     int
		want      []string
		wantCount int64
	}{
		{"", 4_000, 10, []string{"q1", "q2", "q3", "q4"}, 4},
		{"", 10_000, 3, []string{"q1", "q2", "q3"}, 7},
		{"math", 10_000, 10, []string{"q2", "q3", "q5", "Q1", "q1 "}, 5},
		{"math", 10_000, 2, []string{"q2", "q3"}, 5},
		{"mathematics", 10_000, 10, []string{"q4"}, 1},
		{"bio", 999, 10, nil, 0},
		{"", 10_000, 0, nil, 7},
	} {
		t.Run(fmt.Sprintf("%s/%d/%d", tc.subject, tc.now, tc.limit), func(t *testing.T) {
			due, err := s.DueCards(ctx, season, "eve", tc.subject, tc.now, tc.limit)
			if err != nil || !slices.Equal(questions(due), tc.want) {
				t.Errorf("DueCards = %v, %v; want %v", questions(due), err, tc.want)
			}
			if n, err := s.CountDue(ctx, season, "eve", tc.subject, tc.now); err != nil || n != tc.wantCount {
				t.Errorf("CountDue = %d, %v; want %d", n, err, tc.wantCount)
			}
		})
	}
	if n, err := s.CountCards(ctx, season); err != nil || n != 8 {
		t.Errorf("CountCards = %d, %v; want 8", n, err)
	}
}

// TestDueCardsUsesDueIndex checks the plan of the Safe Mode read: a range on
// (season, player, due) that yields rows in due order, with no sort.
func TestDueCardsUsesDueIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	var batch []srs.Review
	for i := range 400 {
		batch = append(batch, cardAt(fmt.Sprint(i), fmt.Sprintf("p%d", i%4), fmt.Sprintf("q%d", i), "math", int64(i)))
	}
	apply(t, s, batch...)
	s.DB().ExecContext(ctx, "ANALYZE TABLE cards")

	for _, q := range []struct {
		query string
		args  []any
	}{
		{fmt.Sprintf(dueQuery, ""), []any{season, "p1", 300, 10}},
		{fmt.Sprintf(dueQuery, " AND subject = ?"), []any{season, "p1", 300, "math", 10}},
	} {
		rows, err := s.DB().QueryContext(ctx, "EXPLAIN "+q.query, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			n++
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			plan := map[string]string{}
			for i, c := range cols {
				if b, ok := vals[i].([]byte); ok {
					plan[c] = string(b)
				}
			}
			if plan["key"] != "due_idx" || plan["type"] != "range" {
				t.Errorf("plan %v: want a range on due_idx", plan)
			}
			if strings.Contains(plan["Extra"], "filesort") {
				t.Errorf("plan sorts: %v", plan)
			}
		}
		rows.Close()
		if n != 1 {
			t.Errorf("EXPLAIN gave %d rows, want 1", n)
		}
	}
}

func TestCardsWithReviewsStreamsInKeyOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	newSeason(t, s, "SEASON-2027")
	var want []srs.Card
	for _, se := range []string{season, "SEASON-2027"} {
		var batch []srs.Review
		for i := range 1_250 { // more than two pages per season
			r := review(fmt.Sprint(i), se, fmt.Sprintf("p%d", i%37), fmt.Sprintf("q%d", i), 1_000_000, 1)
			batch = append(batch, r)
			want = append(want, r.Card())
		}
		apply(t, s, batch...)
	}
	slices.SortFunc(want, func(a, b srs.Card) int {
		return cmp.Or(cmp.Compare(a.Season, b.Season), cmp.Compare(a.Player, b.Player), cmp.Compare(a.QuestionID, b.QuestionID))
	})
	var got []srs.Card
	if err := s.CardsWithReviews(ctx, func(c srs.Card) error { got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("streamed %d cards, want %d in key order", len(got), len(want))
	}

	stop := errors.New("stop")
	n := 0
	err := s.CardsWithReviews(ctx, func(srs.Card) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("CardsWithReviews stopped after %d with %v, want 3 and fn's error", n, err)
	}
}
