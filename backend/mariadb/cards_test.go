package mariadb

import (
	"cmp"
	"context"
	"database/sql"
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

// TestCardsPage pages through a season in keyset order: every card exactly
// once, in (player, question_id) order, other seasons left out, and the SQL a
// primary-key range read with no OFFSET.
func TestCardsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	newSeason(t, s, season)
	newSeason(t, s, "SEASON-2027")
	seed(t, s, season, 1000)
	seed(t, s, "SEASON-2027", 50)
	// Byte order, not collation folding: "P" < "p", "q1" < "q1 " < "q10".
	apply(t, s, review("x1", season, "P", "q1", 1, 1), review("x2", season, "p1", "q1 ", 1, 1),
		review("x3", season, "p1", "é", 1, 1), review("x4", season, "p0", "Q", 1, 1))

	var want []srs.Card
	if all, err := s.queryCards(ctx, "SELECT "+cardColumns+" FROM cards WHERE season = ?", season); err != nil {
		t.Fatal(err)
	} else {
		want = all
	}
	slices.SortFunc(want, func(a, b srs.Card) int {
		return cmp.Or(strings.Compare(a.Player, b.Player), strings.Compare(a.QuestionID, b.QuestionID))
	})
	if len(want) != 1004 {
		t.Fatalf("%d cards seeded", len(want))
	}
	for _, limit := range []int{1, 7, 1000, 1004, 5000} {
		var (
			got   []srs.Card
			after srs.Card
			pages int
		)
		for {
			page, err := s.CardsPage(ctx, season, after.Player, after.QuestionID, limit)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			after = page[len(page)-1]
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: %d cards in %d pages, want the %d in key order", limit, len(got), pages, len(want))
		}
	}
	if page, err := s.CardsPage(ctx, season, "", "", 0); err != nil || page != nil {
		t.Errorf("limit 0 = %v, %v", page, err)
	}

	for _, q := range []string{cardsPageFirst, cardsPageNext} {
		if strings.Contains(strings.ToUpper(q), "OFFSET") {
			t.Errorf("page query uses OFFSET: %s", q)
		}
	}
	// The optimizer reads the primary key from the last key: no sort, no scan from the start.
	rows, err := s.DB().QueryContext(ctx, "EXPLAIN "+cardsPageNext, season, "p5", "p5", "q55", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		plan := map[string]string{}
		for i, c := range cols {
			plan[c] = vals[i].String
		}
		if plan["key"] != "PRIMARY" || plan["type"] != "range" || strings.Contains(plan["Extra"], "filesort") {
			t.Errorf("EXPLAIN of the next page = %v; want a range read of PRIMARY without filesort", plan)
		}
	}
}
