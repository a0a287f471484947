package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/fsrs/optimize"
)

// seedSimulatedLog writes simulated students' review logs into the
// season's review_log, as drained reviews would be, and returns the
// number of rows.
func seedSimulatedLog(t *testing.T, db *sql.DB, season string, sims []optimize.SimCard) int {
	t.Helper()
	const cols = `season, review_id, player, question_id, grade, reviewed_at, elapsed_days, duration_ms,
		before_state, before_step, before_stability, before_difficulty, before_due, before_last_review,
		before_reps, before_lapses, after_state, after_step, after_stability, after_difficulty, after_due,
		after_last_review, after_reps, after_lapses, sidecar`
	var (
		rows []string
		args []any
		n    int
	)
	flush := func() {
		if len(rows) == 0 {
			return
		}
		if _, err := db.ExecContext(context.Background(), "INSERT INTO review_log ("+cols+") VALUES "+strings.Join(rows, ","), args...); err != nil {
			t.Fatalf("seed review log: %v", err)
		}
		rows, args = rows[:0], args[:0]
	}
	for k, s := range sims {
		for i, r := range s.Reviews {
			before := 2 // Review
			if i == 0 {
				before = 0 // New
			}
			rows = append(rows, "(?, ?, ?, ?, ?, ?, ?, 1000, ?, 0, 1, 5, 0, 0, ?, 0, 2, 0, 1, 5, 0, ?, ?, 0, 'sim')")
			args = append(args, season, fmt.Sprintf("r%d", i), fmt.Sprintf("u%d", s.Student), fmt.Sprintf("q%d", k),
				r.Grade, r.At, r.Days, before, i, r.At, i+1)
			n++
			if len(rows) == 500 {
				flush()
			}
		}
	}
	flush()
	return n
}

// optimizeJob runs SRS.OPTIMIZE to its end and returns the final SRS.JOB
// reply and its decoded result.
func optimizeJob(t *testing.T, c *goredis.Client, args ...any) (map[string]any, engine.OptimizeResult) {
	t.Helper()
	id, ok := mustDo(t, c, append([]any{"SRS.OPTIMIZE"}, args...)...).(string)
	if !ok || id == "" {
		t.Fatalf("SRS.OPTIMIZE %v: want a job id", args)
	}
	seen := waitJob(t, c, id)
	final := seen[len(seen)-1]
	var res engine.OptimizeResult
	if s, _ := final["result"].(string); s != "" {
		if err := json.Unmarshal([]byte(s), &res); err != nil {
			t.Fatalf("job result %q: %v", s, err)
		}
	}
	return final, res
}

// TestOptimizeJob runs SRS.OPTIMIZE against MariaDB on a simulated season
// whose students' memory differs from the defaults: the job reads the log,
// reports fitted parameters that predict the held-out cards better than the
// season's (default) ones, gives the same result when run again, changes
// nothing until SRS.SEASON SET … PARAMS FROM JOB applies it, and names the
// argument on bad input.
func TestOptimizeJob(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m, _ := seasonsMain(t, e, e.DSN, "")
	c := client(t, m.Addr(), 3)
	const season = "SEASON-2026-OPT"
	createSeason(t, c, season)
	st := openStore(t, e.DSN)
	truth := optimize.Params{0.1, 0.6, 1.6, 5.5, 7.0, 0.6, 2.2, 0.02, 1.5, 0.25, 1.1,
		1.9, 0.1, 0.35, 1.2, 0.4, 2.3, 0.4, 0.2, 0.12, 0.25}
	sims := optimize.Simulate(optimize.SimConfig{Seed: 11, Groups: []optimize.Group{{Params: truth, Students: 40}},
		CardsPerStudent: 40, Days: 240, ParamNoise: 0.1})
	rows := seedSimulatedLog(t, st.DB(), season, sims)

	before := asMap(t, mustDo(t, c, "SRS.SEASON", "INFO", season))["params"]

	for _, bad := range []struct {
		args []any
		want string
	}{
		{[]any{"SEASON-9999"}, "unknown season"},
		{[]any{season, "MINREVIEWS", "0"}, "MINREVIEWS"},
		{[]any{season, "SINCE", "2026-13-01"}, "SINCE"},
		{[]any{season, "SINCE"}, "SINCE"},
		{[]any{season, "LIMIT", "3"}, "LIMIT"},
	} {
		_, err := c.Do(context.Background(), append([]any{"SRS.OPTIMIZE"}, bad.args...)...).Result()
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(bad.want)) {
			t.Errorf("SRS.OPTIMIZE %v: err %v, want one naming %s", bad.args, err, bad.want)
		}
	}

	// Too few reviews: the job fails saying so.
	final, _ := optimizeJob(t, c, season, "MINREVIEWS", "100000000")
	failedID := final["id"].(string)
	if final["state"] != mariadb.JobFailed || !strings.Contains(final["error"].(string), "MINREVIEWS") {
		t.Errorf("MINREVIEWS above the log: %v", final)
	}

	final, res := optimizeJob(t, c, season)
	if final["state"] != mariadb.JobDone || final["processed"] != final["total"] {
		t.Fatalf("optimize job: %v", final)
	}
	t.Logf("%d rows: %+v", rows, res)
	newDay := 0 // reviews on a later day than the card's previous one
	for _, s := range sims {
		for _, r := range s.Reviews[1:] {
			if r.Days > 0 {
				newDay++
			}
		}
	}
	if res.LogRows != int64(rows) || res.Cards != len(sims) || res.Reviews != newDay || !res.Trained || len(res.Params) != 21 {
		t.Errorf("result: %d rows of %d, %d cards of %d, %d reviews of %d, trained %v",
			res.LogRows, rows, res.Cards, len(sims), res.Reviews, newDay, res.Trained)
	}
	if res.Fitted.LogLoss >= res.CurrentM.LogLoss || res.Fitted.Items == 0 || res.Fitted.Items != res.CurrentM.Items {
		t.Errorf("held-out log loss: fitted %+v, current %+v", res.Fitted, res.CurrentM)
	}
	if again := asMap(t, mustDo(t, c, "SRS.SEASON", "INFO", season))["params"]; fmt.Sprint(again) != fmt.Sprint(before) {
		t.Errorf("the job changed the season's params: %v → %v", before, again)
	}
	id := final["id"].(string)

	// Deterministic: the same log gives the same weights.
	if _, res2 := optimizeJob(t, c, season); fmt.Sprint(res2.Params) != fmt.Sprint(res.Params) {
		t.Errorf("second run: %v, first %v", res2.Params, res.Params)
	}
	// SINCE scores only later reviews.
	if f3, res3 := optimizeJob(t, c, season, "SINCE", "1970-03-01", "MINREVIEWS", "10"); res3.Reviews >= res.Reviews || res3.Reviews == 0 {
		t.Errorf("SINCE 1970-03-01: %d reviews, whole log %d: %v", res3.Reviews, res.Reviews, f3)
	}

	for _, bad := range []struct {
		args []any
		want string
	}{
		{[]any{"PARAMS", "FROM", "JOB", failedID}, "not done"},
		{[]any{"PARAMS", "FROM", "JOB", "nope"}, "nope"},
		{[]any{"PARAMS", "FROM", id}, "JOB"},
	} {
		_, err := c.Do(context.Background(), append([]any{"SRS.SEASON", "SET", season}, bad.args...)...).Result()
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("SRS.SEASON SET %v: err %v, want one with %q", bad.args, err, bad.want)
		}
	}
	info := asMap(t, mustDo(t, c, "SRS.SEASON", "SET", season, "PARAMS", "FROM", "JOB", id))
	got, ok := info["params"].([]any)
	if !ok || len(got) != 21 {
		t.Fatalf("params after SET … FROM JOB: %v", info["params"])
	}
	for i, v := range got {
		if f, _ := v.(float64); math.Abs(f-res.Params[i]) > 1e-9 {
			t.Errorf("w%d = %v, job %v", i, v, res.Params[i])
		}
	}
}
