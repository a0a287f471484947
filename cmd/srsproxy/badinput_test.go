package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBadInputNamesTheArgument sends the bad input of issue 12 to a real
// sidecar: each command is answered with an error that starts as expected
// and names the argument, never "ERR internal error", and the same
// connection still answers PING afterwards.
func TestBadInputNamesTheArgument(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e)
	admin := client(t, m.Addr(), 3)
	const season = "SEASON-2026-BAD" // START 2026-09-01
	createSeason(t, admin, season)
	beforeStart := time.Date(2026, 8, 31, 12, 0, 0, 0, time.UTC).UnixMilli()
	params := func(bad string) []any {
		out := []any{"SRS.SEASON", "SET", season, "PARAMS"}
		for range 18 {
			out = append(out, 0.5)
		}
		return append(out, bad)
	}
	const steps = "must be minutes from 1/60 (1 second) to under 1440 (1 day)"
	for _, tc := range []struct {
		name string
		args []any
		want []string // the reply starts with want[0] and contains the rest
	}{
		{"LEARNING NaN", []any{"SRS.SEASON", "SET", season, "LEARNING", "NaN"}, []string{"ERR SRS.SEASON SET: LEARNING " + steps, `"NaN"`}},
		{"LEARNING 1e-300", []any{"SRS.SEASON", "SET", season, "LEARNING", "1e-300"}, []string{"ERR SRS.SEASON SET: LEARNING " + steps, `"1e-300"`}},
		{"LEARNING Inf", []any{"SRS.SEASON", "SET", season, "LEARNING", "Inf"}, []string{"ERR SRS.SEASON SET: LEARNING " + steps}},
		{"RELEARNING negative", []any{"SRS.SEASON", "SET", season, "RELEARNING", "-5"}, []string{"ERR SRS.SEASON SET: RELEARNING " + steps}},
		{"RETENTION NaN", []any{"SRS.SEASON", "SET", season, "RETENTION", "NaN"}, []string{"ERR SRS.SEASON: RETENTION must be a number in [0.7, 0.99]"}},
		{"MAXIVL Inf", []any{"SRS.SEASON", "SET", season, "MAXIVL", "Inf"}, []string{"ERR SRS.SEASON: MAXIVL must be an integer in [1, 36500]"}},
		{"PARAMS NaN", params("NaN"), []string{"ERR SRS.SEASON: PARAMS must be a number"}},
		{"START 0001-01-01", []any{"SRS.SEASON", "CREATE", "SEASON-2028", "START", "0001-01-01"}, []string{"ERR SRS.SEASON CREATE: START must be a date from 1970-01-01 to 9999-12-31"}},
		{"END 1969-12-31", []any{"SRS.SEASON", "CREATE", "SEASON-2028", "END", "1969-12-31"}, []string{"ERR SRS.SEASON CREATE: END must be a date from 1970-01-01 to 9999-12-31"}},
		{"END before START", []any{"SRS.SEASON", "CREATE", "SEASON-2027", "START", "2027-01-01", "END", "2026-01-01"}, []string{"ERR END: 2026-01-01 is before START 2027-01-01"}},
		{"START twice", []any{"SRS.SEASON", "CREATE", "SEASON-2028", "START", "2028-01-01", "START", "2028-02-01"}, []string{"ERR SRS.SEASON CREATE: option START given twice"}},
		{"RETENTION twice", []any{"SRS.SEASON", "SET", season, "RETENTION", 0.9, "RETENTION", 0.8}, []string{"ERR SRS.SEASON SET: option RETENTION given twice"}},
		{"AT twice", []any{"SRS.REVIEW", "p", season, "q", 3, "AT", 1, "AT", 2}, []string{"ERR SRS.REVIEW: option AT given twice"}},
		{"SUBJECT twice", []any{"SRS.REVIEW", "p", season, "q", 3, "SUBJECT", "a", "SUBJECT", "b"}, []string{"ERR SRS.REVIEW: option SUBJECT given twice"}},
		{"ATTEMPTS twice", []any{"SRS.REVIEW", "p", season, "q", "CORRECT", 1, "MS", 5, "ATTEMPTS", 1, "ATTEMPTS", 2}, []string{"ERR SRS.REVIEW: option ATTEMPTS given twice"}},
		{"LIMIT twice", []any{"SRS.DUE", "p", season, "LIMIT", 1, "LIMIT", 2}, []string{"ERR SRS.DUE: option LIMIT given twice"}},
		{"C1 in player", []any{"SRS.REVIEW", "p\u0085", season, "q", 3}, []string{"ERR player must not contain control characters"}},
		{"C1 in question", []any{"SRS.CARD", "p", season, "q\u009f"}, []string{"ERR question must not contain control characters"}},
		{"C1 in SUBJECT", []any{"SRS.REVIEW", "p", season, "q", 3, "SUBJECT", "\u0080"}, []string{"ERR SUBJECT must not contain control characters"}},
		{"AT before START", []any{"SRS.REVIEW", "p", season, "q", 3, "AT", beforeStart},
			[]string{fmt.Sprintf("ERR AT: %d (2026-08-31T12:00:00Z) is before the start of season %s (2026-09-01)", beforeStart, season)}},
		{"RECONCILE unknown season", []any{"SRS.RECONCILE", "SEASON-2099"}, []string{"NOSEASON ", "SEASON-2099"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			conn := admin.Conn() // one connection: the same one must answer PING
			defer conn.Close()
			_, err := conn.Do(ctx, tc.args...).Result()
			if err == nil {
				t.Fatalf("%q: accepted, want %q", tc.args, tc.want)
			}
			got := err.Error()
			if strings.Contains(got, "internal error") || !strings.HasPrefix(got, tc.want[0]) {
				t.Fatalf("%q:\n got %q\nwant %q…", tc.args, got, tc.want[0])
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(got, w) {
					t.Errorf("%q: %q does not name %q", tc.args, got, w)
				}
			}
			if pong, err := conn.Ping(ctx).Result(); err != nil || pong != "PONG" {
				t.Fatalf("PING after %q: %q, %v", tc.args, pong, err)
			}
		})
	}
	// Nothing was made of the refused commands.
	for _, name := range []string{"SEASON-2027", "SEASON-2028"} {
		if _, err := admin.Do(context.Background(), "SRS.SEASON", "INFO", name).Result(); err == nil || !strings.HasPrefix(err.Error(), "NOSEASON") {
			t.Errorf("SRS.SEASON INFO %s after refused creates: %v, want NOSEASON", name, err)
		}
	}
	// The season's settings are unchanged, and a review at its START is taken.
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	mustDo(t, admin, "SRS.REVIEW", "p", season, "q", 3, "AT", start)
}
