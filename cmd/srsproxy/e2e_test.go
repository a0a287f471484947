package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// createSeason creates and activates a season through the admin commands.
func createSeason(t *testing.T, c *goredis.Client, name string, set ...any) {
	t.Helper()
	mustDo(t, c, "SRS.SEASON", "CREATE", name, "START", "2026-09-01", "END", "2027-06-30")
	if len(set) > 0 {
		mustDo(t, c, append([]any{"SRS.SEASON", "SET", name}, set...)...)
	}
	mustDo(t, c, "SRS.SEASON", "ACTIVATE", name)
}

func TestReviewDueCardEndToEnd(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			c := client(t, m.Addr(), proto)
			season := fmt.Sprintf("SEASON-2026-P%d", proto)
			createSeason(t, c, season)
			info := asMap(t, mustDo(t, c, "SRS.SEASON", "INFO", season))
			if b, _ := info["partition_created"].(bool); !b && info["partition_created"] != int64(1) {
				t.Fatalf("partition_created: %v", info)
			}
			now := time.Now().UnixMilli()
			at := now - 3*86400000
			r := asMap(t, mustDo(t, c, "SRS.REVIEW", "alice", season, "q1", "4", "AT", at, "SUBJECT", "math", "ID", "r1"))
			if r["state"] != "review" || r["interval_days"] != int64(8) || r["reps"] != int64(1) {
				t.Fatalf("easy first review: %v", r)
			}
			dup := asMap(t, mustDo(t, c, "SRS.REVIEW", "alice", season, "q1", "1", "ID", "r1"))
			if dup["due"] != r["due"] || (dup["duplicate"] != true && dup["duplicate"] != int64(1)) {
				t.Fatalf("repeated id must return the stored result: %v vs %v", dup, r)
			}
			mustDo(t, c, "SRS.REVIEW", "alice", season, "q2", "CORRECT", "0", "MS", "900", "AT", at, "SUBJECT", "bio")
			mustDo(t, c, "SRS.REVIEW", "alice", season, "q3", "3", "AT", at, "SUBJECT", "math")

			due := asMap(t, mustDo(t, c, "SRS.DUE", "alice", season))
			if due["total_due"] != int64(2) {
				t.Fatalf("due now: %v", due)
			}
			items := due["items"].([]any)
			if got := asMap(t, items[0])["question_id"]; got != "q2" {
				t.Fatalf("most overdue first: %v", items)
			}
			math := asMap(t, mustDo(t, c, "SRS.DUE", "alice", season, "SUBJECT", "math", "LIMIT", "5"))
			if math["total_due"] != int64(1) || asMap(t, math["items"].([]any)[0])["question_id"] != "q3" {
				t.Fatalf("subject filter: %v", math)
			}
			later := asMap(t, mustDo(t, c, "SRS.DUE", "alice", season, "AT", now+30*86400000))
			if later["total_due"] != int64(3) {
				t.Fatalf("all due in 30 days: %v", later)
			}
			card := asMap(t, mustDo(t, c, "SRS.CARD", "alice", season, "q1"))
			if card["subject"] != "math" || card["reps"] != int64(1) {
				t.Fatalf("card: %v", card)
			}
			if v, err := c.Do(context.Background(), "SRS.CARD", "alice", season, "nope").Result(); err != goredis.Nil {
				t.Fatalf("unknown card: %v %v", v, err)
			}
		})
	}
}

func TestReviewErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e)
	c := client(t, m.Addr(), 3)
	createSeason(t, c, "SEASON-2026")
	mustDo(t, c, "SRS.SEASON", "CREATE", "SEASON-2027")
	ctx := context.Background()
	now := time.Now().UnixMilli()
	mustDo(t, c, "SRS.REVIEW", "bob", "SEASON-2026", "q1", "3", "AT", now)
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SRS.REVIEW", "bob", "SEASON-2026", "q1", "5"}, "ERR SRS.REVIEW: grade"},
		{[]any{"SRS.REVIEW", "bob", "season-2026", "q1", "3"}, "ERR invalid season name"},
		{[]any{"SRS.REVIEW", "bob", "SEASON-2026';DROP", "q1", "3"}, "ERR invalid season name"},
		{[]any{"SRS.REVIEW", "bob", "SEASON-2099", "q1", "3"}, "NOSEASON"},
		{[]any{"SRS.REVIEW", "bob", "SEASON-2027", "q1", "3"}, "SEASONINACTIVE"},
		{[]any{"SRS.REVIEW", "bob", "SEASON-2026", "q1", "3", "AT", now - 1000}, "STALEREVIEW"},
		{[]any{"SRS.REVIEW", "bob", "SEASON-2026", "q1", "3", "AT", now + 3600000}, "FUTUREREVIEW"},
		{[]any{"SRS.REVIEW", "bob", "SEASON-2026", "q1", "3", "LIMIT", "3"}, "ERR SRS.REVIEW: unknown option"},
		{[]any{"SRS.REVIEW", "bob", "SEASON-2026", "q1", "CORRECT", "1"}, "ERR SRS.REVIEW: CORRECT must be followed by MS"},
		{[]any{"SRS.DUE", "bob", "SEASON-2026", "LIMIT", "51"}, "ERR SRS.DUE: LIMIT must be an integer in [1, 50]"},
		{[]any{"SRS.DUE", "bob"}, "ERR wrong number of arguments"},
		{[]any{"SRS.DUE", strings.Repeat("x", 200), "SEASON-2026"}, "ERR player is longer than 128 bytes"},
		{[]any{"SRS.SEASON", "CREATE", "SEASON-2026"}, "SEASONEXISTS"},
		{[]any{"SRS.SEASON", "SET", "SEASON-2026", "RETENTION", "2"}, "ERR SRS.SEASON: RETENTION must be a number"},
		{[]any{"SRS.SEASON", "SET", "SEASON-2026", "PARAMS", "1", "2"}, "ERR SRS.SEASON SET: PARAMS takes 17, 19 or 21"},
		{[]any{"SRS.NOPE"}, "ERR unknown command"},
	} {
		_, err := c.Do(ctx, tc.args...).Result()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want prefix %q", tc.args, err, tc.want)
		}
	}
	if got := mustDo(t, c, "PING"); got != "PONG" {
		t.Fatalf("connection unusable after errors: %v", got)
	}
}
