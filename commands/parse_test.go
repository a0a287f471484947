package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/srs"
)

// argv renders a command the way go-redis sends it, so the tests parse what a
// real client puts on the wire.
func argv(args ...any) [][]byte {
	cmd := goredis.NewCmd(context.Background(), args...)
	out := make([][]byte, len(cmd.Args()))
	for i, a := range cmd.Args() {
		out[i] = []byte(fmt.Sprint(a))
	}
	return out
}

func ptr(s string) *string { return &s }

func TestParseReviewRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []any
		want engine.ReviewRequest
	}{
		{[]any{"SRS.REVIEW", "alice", "SEASON-2026", "q1", 3},
			engine.ReviewRequest{Player: "alice", Season: "SEASON-2026", Question: "q1", Grade: srs.Good}},
		{[]any{"srs.review", "alice", "SEASON-2026-A_1", "q1", "1", "at", int64(1764000000000), "Id", "r-1",
			"SUBJECT", "math", "TOPIC", "algebra", "STAGE", "s1", "DURATION", 4200},
			engine.ReviewRequest{Player: "alice", Season: "SEASON-2026-A_1", Question: "q1", Grade: srs.Again,
				At: 1764000000000, ID: "r-1", Subject: ptr("math"), Topic: ptr("algebra"), Stage: ptr("s1"), DurationMS: 4200}},
		{[]any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 1500},
			engine.ReviewRequest{Player: "p", Season: "SEASON-2026", Question: "q", Grade: srs.Easy, DurationMS: 1500}},
		{[]any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 3000, "ATTEMPTS", 1, "SUBJECT", ""},
			engine.ReviewRequest{Player: "p", Season: "SEASON-2026", Question: "q", Grade: srs.Good, DurationMS: 3000, Subject: ptr("")}},
		{[]any{"SRS.REVIEW", "p", "SEASON-2026", "q", "correct", 1, "ms", 3000, "attempts", 2},
			engine.ReviewRequest{Player: "p", Season: "SEASON-2026", Question: "q", Grade: srs.Again, DurationMS: 3000}},
		{[]any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 9000, "DURATION", 10},
			engine.ReviewRequest{Player: "p", Season: "SEASON-2026", Question: "q", Grade: srs.Hard, DurationMS: 10}},
	} {
		got, err := ParseReview(argv(tc.args...))
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if fmt.Sprintf("%+v", deref(got)) != fmt.Sprintf("%+v", deref(tc.want)) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.args, deref(got), deref(tc.want))
		}
	}
}

// deref makes optional labels comparable in test output.
func deref(r engine.ReviewRequest) map[string]any {
	m := map[string]any{"player": r.Player, "season": r.Season, "q": r.Question, "grade": r.Grade, "at": r.At, "id": r.ID, "dur": r.DurationMS}
	for k, p := range map[string]*string{"subject": r.Subject, "topic": r.Topic, "stage": r.Stage} {
		if p != nil {
			m[k] = *p
		}
	}
	return m
}

func TestParseErrorsNameTheArgument(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		parse func([][]byte) error
		args  []any
		want  string
	}{
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 0}, "grade"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", "x"}, "grade"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q"}, "missing grade"},
		{review, []any{"SRS.REVIEW", "", "SEASON-2026", "q", 3}, "player must not be empty"},
		{review, []any{"SRS.REVIEW", "p\n", "SEASON-2026", "q", 3}, "player must not contain control"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", strings.Repeat("q", 129), 3}, "question is longer than 128"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-26", "q", 3}, "invalid season name"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026 ", "q", 3}, "invalid season name"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026-`x`", "q", 3}, "invalid season name"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "AT"}, "missing AT"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "AT", -5}, "AT must be an integer"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "DURATION", 1e12}, "DURATION must be"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "SUBJECT", strings.Repeat("s", 129)}, "SUBJECT is longer"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "COLOR", "red"}, `unknown option "COLOR"`},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 2, "MS", 5}, "CORRECT must be"},
		{review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 5, "ATTEMPTS", 0}, "ATTEMPTS must be"},
		{due, []any{"SRS.DUE", "p", "SEASON-2026", "LIMIT", 0}, "LIMIT must be an integer in [1, 50]"},
		{due, []any{"SRS.DUE", "p", "SEASON-2026", "LIMIT"}, "missing LIMIT"},
		{due, []any{"SRS.DUE", "p", "SEASON-2026", "FOO", 1}, "unknown option"},
		{card, []any{"SRS.CARD", "p", "SEASON-2026", "q", "extra"}, "unexpected argument"},
		{season, []any{"SRS.SEASON", "DROP", "SEASON-2026"}, "unknown subcommand"},
		{season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "START", "2026-13-01"}, "START must be a date"},
		{season, []any{"SRS.SEASON", "SET", "SEASON-2026"}, "nothing to set"},
		{season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "1,x"}, "LEARNING must be minutes"},
		{season, []any{"SRS.SEASON", "SET", "SEASON-2026", "FUZZ", "maybe"}, "FUZZ must be ON or OFF"},
		{season, []any{"SRS.SEASON", "SET", "SEASON-2026", "MAXIVL", 0}, "MAXIVL must be"},
		{season, []any{"SRS.SEASON", "INFO", "SEASON-2026", "x"}, "unexpected argument"},
	} {
		err := tc.parse(argv(tc.args...))
		var arg *ArgError
		if !errors.As(err, &arg) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an argument error containing %q", tc.args, err, tc.want)
		}
	}
}

func review(a [][]byte) error { _, err := ParseReview(a); return err }
func due(a [][]byte) error    { _, err := ParseDue(a); return err }
func card(a [][]byte) error   { _, err := ParseCard(a); return err }
func season(a [][]byte) error { _, err := ParseSeason(a); return err }

func TestParseDueAndSeason(t *testing.T) {
	t.Parallel()
	d, err := ParseDue(argv("SRS.DUE", "p", "SEASON-2026", "subject", "math", "limit", 7, "AT", 99))
	if err != nil || d != (engine.DueRequest{Player: "p", Season: "SEASON-2026", Subject: "math", Limit: 7, At: 99}) {
		t.Fatalf("due: %+v %v", d, err)
	}
	d, _ = ParseDue(argv("SRS.DUE", "p", "SEASON-2026"))
	if d.Limit != DefaultDueLimit {
		t.Fatalf("default limit: %d", d.Limit)
	}
	s, err := ParseSeason(argv("SRS.SEASON", "set", "SEASON-2026", "RETENTION", 0.85, "PARAMS",
		0.212, 1.2931, 2.3065, 8.2956, 6.4133, 0.8334, 3.0194, 0.001, 1.8722, 0.1666, 0.796, 1.4835, 0.0614, 0.2629, 1.6483, 0.6014, 1.8729, 0.5425, 0.0912,
		"LEARNING", "1,10,60", "RELEARNING", "NONE", "MAXIVL", 365, "FUZZ", "ON", "SHORTTERM", "off", "CACHE", "OFF"))
	if err != nil {
		t.Fatal(err)
	}
	ch := s.Change
	if s.Verb != "SET" || *ch.Retention != 0.85 || len(ch.Params) != 19 || len(*ch.LearningSteps) != 3 ||
		(*ch.LearningSteps)[2] != time.Hour || len(*ch.RelearningSteps) != 0 || *ch.MaxInterval != 365 ||
		!*ch.Fuzz || *ch.ShortTerm || *ch.Cache || !s.Admin() {
		t.Fatalf("season set: %+v", s)
	}
	s, err = ParseSeason(argv("SRS.SEASON", "CREATE", "SEASON-2026", "END", "2027-06-30"))
	if err != nil || s.End.Format(time.DateOnly) != "2027-06-30" || !s.Start.IsZero() {
		t.Fatalf("create: %+v %v", s, err)
	}
	if s, _ := ParseSeason(argv("SRS.SEASON", "list")); s.Verb != "LIST" || s.Admin() {
		t.Fatalf("list: %+v", s)
	}
}

// FuzzParse feeds arbitrary argument vectors to every parser: they must
// return a request or an error, never panic.
func FuzzParse(f *testing.F) {
	f.Add("SRS.REVIEW\x00p\x00SEASON-2026\x00q\x003\x00AT\x001")
	f.Add("SRS.REVIEW\x00p\x00SEASON-2026\x00q\x00CORRECT\x001\x00MS\x0010\x00ATTEMPTS")
	f.Add("SRS.DUE\x00p\x00SEASON-2026\x00LIMIT\x0050\x00SUBJECT\x00")
	f.Add("SRS.SEASON\x00SET\x00SEASON-2026\x00PARAMS\x001\x002\x00LEARNING\x00NONE")
	f.Add("SRS.CARD\x00p\x00SEASON-2026")
	f.Fuzz(func(t *testing.T, s string) {
		parts := strings.Split(s, "\x00")
		args := make([][]byte, len(parts))
		for i, p := range parts {
			args[i] = []byte(p)
		}
		for _, parse := range []func([][]byte) error{review, due, card, season} {
			if err := parse(args); err == nil && len(args) < 2 {
				t.Fatalf("parsed %q with no arguments", s)
			}
		}
	})
}
