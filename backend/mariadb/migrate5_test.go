package mariadb

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// TestMigrateFromVersion4 opens a database left at schema version 4 with a
// season in it: migration 5 gives that season the legacy day rule (its
// schedules were made counting 24-hour periods), while a season created
// afterwards gets the defaults and a changed rule is stored. A second run
// changes nothing.
func TestMigrateFromVersion4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, schema := testDSN(t)
	raw := rawDB(t, dsn, schema)
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for v := range 4 {
		for _, stmt := range migrations[v].stmts {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		if fn := migrations[v].fn; fn != nil {
			if err := fn(ctx, conn, schema); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, stmt := range []string{
		"CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL DEFAULT UTC_TIMESTAMP(3))",
		"INSERT INTO schema_version (version) VALUES (1), (2), (3), (4)",
		`INSERT INTO seasons (name, is_active, partition_created, created_at, scheduler)
			VALUES ('SEASON-2025', TRUE, TRUE, UTC_TIMESTAMP(3), '{"desired_retention":0.9,"short_term":true}')`,
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}

	s := openStore(t, dsn, nil)
	old, err := s.Season(ctx, "SEASON-2025")
	if err != nil {
		t.Fatal(err)
	}
	if old.Scheduler.DayStart != srs.DayStartLegacy || old.Scheduler.Timezone != "UTC" {
		t.Errorf("season from before the migration: timezone %q day start %d, want UTC and legacy",
			old.Scheduler.Timezone, old.Scheduler.DayStart)
	}
	created, err := s.CreateSeason(ctx, srs.Season{Name: "SEASON-2026", Scheduler: srs.DefaultSchedulerConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if created.Scheduler.DayStart != srs.DefaultDayStart || created.Scheduler.Timezone != "UTC" {
		t.Errorf("new season: timezone %q day start %d, want UTC and %d",
			created.Scheduler.Timezone, created.Scheduler.DayStart, srs.DefaultDayStart)
	}
	old.Scheduler.Timezone, old.Scheduler.DayStart = "Europe/Berlin", 0
	if err := s.UpdateSeason(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := migrate5(ctx, conn, schema); err != nil {
		t.Fatalf("second run: %v", err)
	}
	got, err := s.Season(ctx, "SEASON-2025")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, old) {
		t.Errorf("after SET and a second run:\n got %+v\nwant %+v", got, old)
	}
}

// TestReplayCountsDaysAsTheEngine: a review that arrives late makes the
// store recompute the card from its log, and the recomputed card must be the
// one the engine computed, day rule included — here New York, 4 am, over
// the spring DST change, where the legacy 24-hour rule would count 0 days
// twice and so give other stabilities.
func TestReplayCountsDaysAsTheEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	cfg := srs.DefaultSchedulerConfig()
	cfg.Timezone = "America/New_York"
	if _, err := s.CreateSeason(ctx, srs.Season{Name: season, IsActive: true, Scheduler: cfg}); err != nil {
		t.Fatal(err)
	}
	sched, err := fsrs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DayStart = srs.DayStartLegacy
	legacy, err := fsrs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	times := []time.Time{
		time.Date(2026, 3, 7, 21, 0, 0, 0, ny),
		time.Date(2026, 3, 7, 21, 5, 0, 0, ny),
		time.Date(2026, 3, 8, 8, 0, 0, 0, ny), // 10 h later, past 4 am: a day
		time.Date(2026, 3, 9, 7, 0, 0, 0, ny), // 23 h later, past 4 am: a day
	}
	grades := []srs.Grade{srs.Good, srs.Good, srs.Good, srs.Hard}
	seed := fsrs.Seed(season, "p", "q")
	var revs []srs.Review
	var st srs.Schedule
	for i, at := range times {
		out := sched.Next(st, grades[i], at.UnixMilli(), seed)
		after := out.Schedule
		after.LastID = srs.ReviewHash(string(rune('a' + i)))
		after.Recall = sched.Retrievability(st, at.UnixMilli())
		revs = append(revs, srs.Review{ID: string(rune('a' + i)), Season: season, Player: "p", QuestionID: "q",
			Grade: grades[i], ReviewedAt: at.UnixMilli(), ElapsedDays: out.ElapsedDays, Before: st, After: after})
		st = after
	}
	if revs[2].ElapsedDays != 1 || revs[3].ElapsedDays != 1 {
		t.Fatalf("elapsed days %d and %d, want 1 and 1", revs[2].ElapsedDays, revs[3].ElapsedDays)
	}
	recomputes := 0
	s.SetOnRecompute(func(srs.Card) { recomputes++ })
	apply(t, s, revs[0], revs[1], revs[3]) // the third arrives last (another sidecar's queue)
	apply(t, s, revs[2])
	if recomputes == 0 {
		t.Fatal("no recompute: the test does not reach the replay")
	}
	got := mustCard(t, s, season, "p", "q")
	if !reflect.DeepEqual(got.Schedule, revs[3].After) {
		t.Errorf("recomputed %+v\nengine's    %+v", got.Schedule, revs[3].After)
	}
	if l := replayed(legacy, revs); l.Stability == got.Stability {
		t.Errorf("the legacy rule gives the same stability %v: the test cannot tell the rules apart", l.Stability)
	}
}
