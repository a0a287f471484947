package fsrs

import (
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// TestElapsedDaysBoundaries counts day boundaries in a season's timezone,
// including the days of 23 and 25 hours at both DST changes.
func TestElapsedDaysBoundaries(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, y int, m time.Month, d, h, mi int) time.Time {
		return time.Date(y, m, d, h, mi, 0, 0, loc)
	}
	for _, tt := range []struct {
		name      string
		tz        string
		hour      int
		last, now time.Time
		want      int
	}{
		{"evening then morning, UTC 4 am", "UTC", 4, at(time.UTC, 2026, 3, 2, 21, 0), at(time.UTC, 2026, 3, 3, 8, 0), 1},
		{"before and after 4 am the same date", "UTC", 4, at(time.UTC, 2026, 3, 3, 3, 59), at(time.UTC, 2026, 3, 3, 4, 0), 1},
		{"just past 4 am to just before the next", "UTC", 4, at(time.UTC, 2026, 3, 3, 4, 0), at(time.UTC, 2026, 3, 4, 3, 59), 0},
		{"UTC midnight (ts-fsrs)", "UTC", 0, at(time.UTC, 2026, 3, 2, 23, 59), at(time.UTC, 2026, 3, 3, 0, 0), 1},
		{"empty zone is UTC", "", 0, at(time.UTC, 2026, 3, 2, 23, 59), at(time.UTC, 2026, 3, 3, 0, 1), 1},
		{"long gap", "UTC", 4, at(time.UTC, 2025, 1, 1, 12, 0), at(time.UTC, 2026, 1, 1, 3, 0), 364},
		{"zone shifts the boundary", "Europe/Berlin", 4, at(time.UTC, 2026, 1, 5, 2, 30), at(time.UTC, 2026, 1, 5, 3, 30), 1},
		// 2026-03-08: New York springs forward at 2:00; the day from the 7th 4:00
		// to the 8th 4:00 is 23 hours long.
		{"spring forward: 23-hour day crossed", "America/New_York", 4, at(ny, 2026, 3, 7, 4, 30), at(ny, 2026, 3, 8, 4, 15), 1},
		{"spring forward: just before the boundary", "America/New_York", 4, at(ny, 2026, 3, 7, 4, 0), at(ny, 2026, 3, 8, 3, 59), 0},
		{"spring forward: skipped start hour", "America/New_York", 2, at(ny, 2026, 3, 8, 1, 59), at(ny, 2026, 3, 8, 3, 0), 1},
		// 2026-11-01: New York falls back at 2:00; that day is 25 hours long.
		{"fall back: 25-hour day not yet over", "America/New_York", 4, at(ny, 2026, 10, 31, 4, 0), at(ny, 2026, 11, 1, 3, 59), 0},
		{"fall back: 25-hour day crossed", "America/New_York", 4, at(ny, 2026, 10, 31, 4, 0), at(ny, 2026, 11, 1, 4, 0), 1},
		{"fall back: repeated start hour, first pass", "America/New_York", 1,
			at(ny, 2026, 11, 1, 0, 59), time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC) /* 1:30 EDT */, 1},
		{"fall back: repeated start hour, second pass", "America/New_York", 1,
			time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC) /* 1:30 EDT */, time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC) /* 1:30 EST */, 0},
		// Europe: 2026-03-29 (23 h) and 2026-10-25 (25 h), changes at 2:00/3:00 local.
		{"Berlin spring: 23 hours apart, a day", "Europe/Berlin", 4, at(berlin, 2026, 3, 28, 4, 0), at(berlin, 2026, 3, 29, 4, 0), 1},
		{"Berlin autumn: 24h59m apart, no day", "Europe/Berlin", 4, at(berlin, 2026, 10, 24, 4, 0), at(berlin, 2026, 10, 25, 3, 59), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, srs.SchedulerConfig{Timezone: tt.tz, DayStart: tt.hour})
			if got := s.ElapsedDays(tt.last.UnixMilli(), tt.now.UnixMilli()); got != tt.want {
				t.Errorf("%v → %v (%v apart): elapsed %d, want %d", tt.last, tt.now, tt.now.Sub(tt.last), got, tt.want)
			}
			card := srs.Schedule{State: srs.StateReview, Stability: 10, Difficulty: 5, LastReview: tt.last.UnixMilli(), Reps: 3}
			if got := s.Next(card, srs.Good, tt.now.UnixMilli(), 0).ElapsedDays; got != tt.want {
				t.Errorf("Next: elapsed %d, want %d", got, tt.want)
			}
		})
	}
}

// TestElapsedDaysDecidesTheFormula: the same 11 hours are a same-day review
// under the legacy rule and a next-day review with day boundaries.
func TestElapsedDaysDecidesTheFormula(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 3, 2, 21, 0, 0, 0, time.UTC).UnixMilli()
	now := last + 11*3600_000
	card := srs.Schedule{State: srs.StateReview, Stability: 10, Difficulty: 5, LastReview: last, Reps: 3}
	legacy := mustNew(t, srs.SchedulerConfig{DayStart: srs.DayStartLegacy, EnableShortTerm: true}).Next(card, srs.Good, now, 0)
	anki := mustNew(t, srs.DefaultSchedulerConfig()).Next(card, srs.Good, now, 0)
	if legacy.ElapsedDays != 0 || anki.ElapsedDays != 1 || legacy.Stability == anki.Stability {
		t.Errorf("legacy t=%d S=%v, day boundary t=%d S=%v", legacy.ElapsedDays, legacy.Stability, anki.ElapsedDays, anki.Stability)
	}
}

func TestDayRuleErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		tz   string
		hour int
		want string
	}{
		{"Mars/Olympus", 4, "timezone"},
		{"Local", 4, "timezone"},
		{"UTC", 24, "day start"},
		{"UTC", -2, "day start"},
	} {
		_, err := New(srs.SchedulerConfig{Timezone: tt.tz, DayStart: tt.hour})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q %d: %v, want an error naming the %s", tt.tz, tt.hour, err, tt.want)
		}
	}
	if s := mustNew(t, srs.SchedulerConfig{}); s.Config().Timezone != "UTC" {
		t.Errorf("effective timezone %q, want UTC", s.Config().Timezone)
	}
}
