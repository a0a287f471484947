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
	s, err = ParseSeason(argv("SRS.SEASON", "SET", "SEASON-2026", "TIMEZONE", "Europe/Berlin", "daystart", 0))
	if err != nil || *s.Change.Timezone != "Europe/Berlin" || *s.Change.DayStart != 0 {
		t.Fatalf("season set day rule: %+v %v", s, err)
	}
	s, err = ParseSeason(argv("SRS.SEASON", "SET", "SEASON-2026", "DAYSTART", "legacy"))
	if err != nil || *s.Change.DayStart != srs.DayStartLegacy || s.Change.Timezone != nil {
		t.Fatalf("season set legacy days: %+v %v", s, err)
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

// Bad input that used to reach the engine, or the client as "ERR internal
// error", or win silently (issue 12): each is refused with the exact message
// naming the argument.
func TestParseRefusesBadInput(t *testing.T) {
	t.Parallel()
	reconcile := func(a [][]byte) error { _, err := ParseReconcile(a); return err }
	const steps = "must be minutes from 1/60 (1 second) to under 1440 (1 day) separated by commas, or NONE; got "
	weights := func(w ...any) []any {
		out := []any{"SRS.SEASON", "SET", "SEASON-2026", "PARAMS"}
		for range 18 {
			out = append(out, 0.5)
		}
		return append(out, w...)
	}
	for _, tc := range []struct {
		name  string
		parse func([][]byte) error
		args  []any
		want  string
	}{
		// 1. durations and numbers
		{"LEARNING NaN", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "NaN"}, `SRS.SEASON SET: LEARNING ` + steps + `"NaN"`},
		{"LEARNING 1e-300", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "1e-300"}, `SRS.SEASON SET: LEARNING ` + steps + `"1e-300"`},
		{"LEARNING Inf", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "1,+Inf"}, `SRS.SEASON SET: LEARNING ` + steps + `"1,+Inf"`},
		{"LEARNING negative", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "-1"}, `SRS.SEASON SET: LEARNING ` + steps + `"-1"`},
		{"LEARNING under a second", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "0.01"}, `SRS.SEASON SET: LEARNING ` + steps + `"0.01"`},
		{"LEARNING overflow", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "1e300"}, `SRS.SEASON SET: LEARNING ` + steps + `"1e300"`},
		{"LEARNING a day", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "1440"}, `SRS.SEASON SET: LEARNING ` + steps + `"1440"`},
		{"RELEARNING NaN", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "RELEARNING", "10,nan"}, `SRS.SEASON SET: RELEARNING ` + steps + `"10,nan"`},
		{"RELEARNING -Inf", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "RELEARNING", "-inf"}, `SRS.SEASON SET: RELEARNING ` + steps + `"-inf"`},
		{"RETENTION NaN", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "RETENTION", "NaN"}, `SRS.SEASON: RETENTION must be a number in [0.7, 0.99], got "NaN"`},
		{"RETENTION Inf", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "RETENTION", "Inf"}, `SRS.SEASON: RETENTION must be a number in [0.7, 0.99], got "Inf"`},
		{"TIMEZONE unknown", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "TIMEZONE", "Mars/Olympus"}, `SRS.SEASON SET: TIMEZONE must be an IANA time zone such as UTC or Europe/Berlin, got "Mars/Olympus"`},
		{"TIMEZONE Local", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "TIMEZONE", "Local"}, `SRS.SEASON SET: TIMEZONE must be an IANA time zone such as UTC or Europe/Berlin, got "Local"`},
		{"TIMEZONE empty", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "TIMEZONE", ""}, `SRS.SEASON SET: TIMEZONE must be an IANA time zone such as UTC or Europe/Berlin, got ""`},
		{"TIMEZONE path", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "TIMEZONE", "../../etc/passwd"}, `SRS.SEASON SET: TIMEZONE must be an IANA time zone such as UTC or Europe/Berlin, got "../../etc/passwd"`},
		{"TIMEZONE missing", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "TIMEZONE"}, `SRS.SEASON: missing TIMEZONE`},
		{"DAYSTART 24", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "DAYSTART", 24}, `SRS.SEASON SET: DAYSTART must be an hour 0–23 or LEGACY, got "24"`},
		{"DAYSTART -1", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "DAYSTART", -1}, `SRS.SEASON SET: DAYSTART must be an hour 0–23 or LEGACY, got "-1"`},
		{"DAYSTART 4.5", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "DAYSTART", "4.5"}, `SRS.SEASON SET: DAYSTART must be an hour 0–23 or LEGACY, got "4.5"`},
		{"DAYSTART missing", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "DAYSTART"}, `SRS.SEASON: missing DAYSTART`},
		{"DAYSTART twice", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "DAYSTART", 4, "DAYSTART", 5}, "SRS.SEASON SET: option DAYSTART given twice"},
		{"MAXIVL NaN", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "MAXIVL", "NaN"}, `SRS.SEASON: MAXIVL must be an integer in [1, 36500], got "NaN"`},
		{"MAXIVL overflow", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "MAXIVL", "99999999999999999999"}, `SRS.SEASON: MAXIVL must be an integer in [1, 36500], got "99999999999999999999"`},
		{"PARAMS NaN", season, weights("NaN"), `SRS.SEASON: PARAMS must be a number in [-1e+06, 1e+06], got "NaN"`},
		{"PARAMS Inf", season, weights("-Inf"), `SRS.SEASON: PARAMS must be a number in [-1e+06, 1e+06], got "-Inf"`},
		{"DURATION overflow", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "DURATION", "1e3"}, `SRS.REVIEW: DURATION must be an integer in [0, 86400000], got "1e3"`},
		// 2. season dates
		{"START 0001-01-01", season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "START", "0001-01-01"}, `SRS.SEASON CREATE: START must be a date from 1970-01-01 to 9999-12-31, got "0001-01-01"`},
		{"START 1969-12-31", season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "START", "1969-12-31"}, `SRS.SEASON CREATE: START must be a date from 1970-01-01 to 9999-12-31, got "1969-12-31"`},
		{"END 0000-01-01", season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "END", "0000-01-01"}, `SRS.SEASON CREATE: END must be a date from 1970-01-01 to 9999-12-31, got "0000-01-01"`},
		{"END 10000-01-01", season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "END", "10000-01-01"}, `SRS.SEASON CREATE: END must be a date yyyy-mm-dd, got "10000-01-01"`},
		// 3. options given twice
		{"AT twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "AT", 1, "AT", 2}, "SRS.REVIEW: option AT given twice"},
		{"SUBJECT twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "SUBJECT", "a", "subject", "b"}, "SRS.REVIEW: option SUBJECT given twice"},
		{"empty SUBJECT twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "SUBJECT", "", "SUBJECT", ""}, "SRS.REVIEW: option SUBJECT given twice"},
		{"ID twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "ID", "a", "ID", "a"}, "SRS.REVIEW: option ID given twice"},
		{"TOPIC twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "TOPIC", "a", "STAGE", "s", "TOPIC", "b"}, "SRS.REVIEW: option TOPIC given twice"},
		{"DURATION twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "DURATION", 1, "DURATION", 2}, "SRS.REVIEW: option DURATION given twice"},
		{"ATTEMPTS twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 5, "ATTEMPTS", 1, "ATTEMPTS", 2}, "SRS.REVIEW: option ATTEMPTS given twice"},
		{"MS twice", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 5, "MS", 6}, "SRS.REVIEW: option MS given twice"},
		{"ATTEMPTS late", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 5, "AT", 1, "ATTEMPTS", 2}, "SRS.REVIEW: ATTEMPTS must directly follow CORRECT 0|1 MS n"},
		{"ATTEMPTS with a grade", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "ATTEMPTS", 2}, "SRS.REVIEW: ATTEMPTS is only allowed in CORRECT 0|1 MS n [ATTEMPTS n], in place of the grade"},
		{"LIMIT twice", due, []any{"SRS.DUE", "p", "SEASON-2026", "LIMIT", 5, "LIMIT", 6}, "SRS.DUE: option LIMIT given twice"},
		{"due AT twice", due, []any{"SRS.DUE", "p", "SEASON-2026", "AT", 5, "SUBJECT", "m", "at", 6}, "SRS.DUE: option AT given twice"},
		{"START twice", season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "START", "2026-01-01", "START", "2026-02-01"}, "SRS.SEASON CREATE: option START given twice"},
		{"END twice", season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "END", "2027-01-01", "end", "2027-02-01"}, "SRS.SEASON CREATE: option END given twice"},
		{"RETENTION twice", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "RETENTION", 0.9, "RETENTION", 0.8}, "SRS.SEASON SET: option RETENTION given twice"},
		{"LEARNING twice", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "1", "FUZZ", "ON", "LEARNING", "NONE"}, "SRS.SEASON SET: option LEARNING given twice"},
		{"CONFIRM twice", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "AUTOARCHIVE", "ON", "CONFIRM", "CONFIRM"}, "SRS.SEASON SET: option CONFIRM given twice"},
		{"SAMPLE twice", reconcile, []any{"SRS.RECONCILE", "SEASON-2026", "SAMPLE", 100, "SAMPLE", 200}, "SRS.RECONCILE: option SAMPLE given twice"},
		// 4. C1 control characters
		{"C1 in player", review, []any{"SRS.REVIEW", "p\u0085", "SEASON-2026", "q", 3}, "player must not contain control characters"},
		{"C1 in question", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "\u0080q", 3}, "question must not contain control characters"},
		{"C1 in ID", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "ID", "r\u009f"}, "ID must not contain control characters"},
		{"C1 in SUBJECT", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "SUBJECT", "m\u009b"}, "SUBJECT must not contain control characters"},
		{"C1 in TOPIC", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "TOPIC", "\u0090"}, "TOPIC must not contain control characters"},
		{"C1 in STAGE", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", 3, "STAGE", "s\u0086"}, "STAGE must not contain control characters"},
		{"C1 in due player", due, []any{"SRS.DUE", "p\u0085", "SEASON-2026"}, "player must not contain control characters"},
		{"C1 in due SUBJECT", due, []any{"SRS.DUE", "p", "SEASON-2026", "SUBJECT", "\u0085"}, "SUBJECT must not contain control characters"},
		{"C1 in card question", card, []any{"SRS.CARD", "p", "SEASON-2026", "q\u0099"}, "question must not contain control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.parse(argv(tc.args...))
			var arg *ArgError
			if !errors.As(err, &arg) || err.Error() != tc.want {
				t.Errorf("%q:\n got %v\nwant argument error %q", tc.args, err, tc.want)
			}
		})
	}
}

// What stays accepted next to the refusals above: the edges of each range,
// text just outside C1, one of each option.
func TestParseAcceptsEdges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		parse func([][]byte) error
		args  []any
	}{
		{"LEARNING one second", season, []any{"SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "0.0166666666667,1439.99"}},
		{"START 1970-01-01, END 9999-12-31", season, []any{"SRS.SEASON", "CREATE", "SEASON-2026", "START", "1970-01-01", "END", "9999-12-31"}},
		{"every review option once", review, []any{"SRS.REVIEW", "p", "SEASON-2026", "q", "CORRECT", 1, "MS", 5, "ATTEMPTS", 2,
			"AT", 1, "ID", "r", "SUBJECT", "s", "TOPIC", "t", "STAGE", "st", "DURATION", 3}},
		{"U+007E and U+00A0 around DEL and C1", review, []any{"SRS.REVIEW", "p~", "SEASON-2026", "q\u00a0é", 3, "SUBJECT", "ÿ"}},
		{"every due option once", due, []any{"SRS.DUE", "p", "SEASON-2026", "SUBJECT", "", "LIMIT", 1, "AT", 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.parse(argv(tc.args...)); err != nil {
				t.Errorf("%q: %v", tc.args, err)
			}
		})
	}
	s, err := ParseSeason(argv("SRS.SEASON", "SET", "SEASON-2026", "LEARNING", "0.5,1.5", "RELEARNING", "10"))
	if err != nil || (*s.Change.LearningSteps)[0] != 30*time.Second || (*s.Change.LearningSteps)[1] != 90*time.Second ||
		(*s.Change.RelearningSteps)[0] != 10*time.Minute {
		t.Fatalf("steps: %+v %v", s.Change, err)
	}
}
