package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// TestSeasonDayRule sets a season's day rule through SRS.SEASON SET, reads
// it back with INFO, refuses bad values naming the argument, and checks that
// reviews are scheduled by it: in New York with DAYSTART 4, a review at
// 21:00 and the next at 08:00 (12 hours, across the autumn DST change) are a
// day apart, and with DAYSTART LEGACY the same hours are the same day.
func TestSeasonDayRule(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e)
	c := client(t, m.Addr(), 3)
	const season = "SEASON-2026-DAYS"
	createSeason(t, c, season)
	info := asMap(t, mustDo(t, c, "SRS.SEASON", "INFO", season))
	if info["timezone"] != "UTC" || info["day_start"] != int64(srs.DefaultDayStart) {
		t.Fatalf("a new season's day rule: timezone %v day_start %v, want UTC 4", info["timezone"], info["day_start"])
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"TIMEZONE", "Mars/Olympus"}, "ERR SRS.SEASON SET: TIMEZONE must be an IANA time zone"},
		{[]any{"DAYSTART", "24"}, "ERR SRS.SEASON SET: DAYSTART must be an hour 0–23 or LEGACY"},
		{[]any{"TIMEZONE", "Europe/Berlin", "DAYSTART", "4am"}, "ERR SRS.SEASON SET: DAYSTART must be an hour 0–23 or LEGACY"},
	} {
		msg := doErr(t, c, append([]any{"SRS.SEASON", "SET", season}, tc.args...)...)
		if !strings.HasPrefix(msg, tc.want) {
			t.Errorf("SET %v: %q, want %q", tc.args, msg, tc.want)
		}
	}
	info = asMap(t, mustDo(t, c, "SRS.SEASON", "SET", season, "TIMEZONE", "America/New_York", "DAYSTART", "4"))
	if info["timezone"] != "America/New_York" || info["day_start"] != int64(4) {
		t.Fatalf("after SET: timezone %v day_start %v", info["timezone"], info["day_start"])
	}

	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	times := []time.Time{
		time.Date(2026, 10, 31, 21, 0, 0, 0, ny),
		time.Date(2026, 10, 31, 21, 15, 0, 0, ny),
		time.Date(2026, 11, 1, 8, 0, 0, 0, ny),
	}
	// stability is S after the three Good answers under a day rule, as the
	// scheduler computes it.
	stability := func(dayStart int) float64 {
		cfg := srs.DefaultSchedulerConfig()
		cfg.Timezone, cfg.DayStart = "America/New_York", dayStart
		s, err := fsrs.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var st srs.Schedule
		for _, at := range times {
			st = s.Next(st, srs.Good, at.UnixMilli(), 0).Schedule
		}
		return st.Stability
	}
	review := func(q string) float64 {
		var r map[string]any
		for _, at := range times {
			r = asMap(t, mustDo(t, c, "SRS.REVIEW", "alice", season, q, "3", "AT", at.UnixMilli()))
		}
		return num(r["stability"])
	}
	anki, legacy := stability(4), stability(srs.DayStartLegacy)
	if math.Abs(anki-legacy) < 1e-3 {
		t.Fatalf("the rules give the same S %v: the test cannot tell them apart", anki)
	}
	if got := review("q1"); math.Abs(got-anki) > 1e-9 {
		t.Errorf("DAYSTART 4: S %v, want %v (a day elapsed; the legacy rule gives %v)", got, anki, legacy)
	}
	info = asMap(t, mustDo(t, c, "SRS.SEASON", "SET", season, "DAYSTART", "legacy"))
	if info["day_start"] != int64(srs.DayStartLegacy) {
		t.Fatalf("after DAYSTART LEGACY: day_start %v", info["day_start"])
	}
	if got := review("q2"); math.Abs(got-legacy) > 1e-9 {
		t.Errorf("DAYSTART LEGACY: S %v, want %v (the same day)", got, legacy)
	}
}
