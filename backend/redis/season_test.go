package redis

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/srsproxy/srsproxy/srs"
)

func TestUserCardsAndPut(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	if _, loaded, err := c.UserCards(ctx, "SEASON-2026", "u"); err != nil || loaded {
		t.Fatalf("unloaded: %v %v", loaded, err)
	}
	a, b := card("q1", "m", 100), card("q2", "m", 200)
	a.Player, b.Player = "u", "u"
	if _, err := c.Load(ctx, "SEASON-2026", "u", []srs.Card{a}); err != nil {
		t.Fatal(err)
	}
	got, loaded, err := c.UserCards(ctx, "SEASON-2026", "u")
	if err != nil || !loaded || len(got) != 1 || got["q1"].Card != a {
		t.Fatalf("user cards: %+v %v %v", got, loaded, err)
	}
	newer := a
	newer.Reps, newer.Due = 9, 5000
	n, err := c.PutIfUnchanged(ctx, "SEASON-2026", "u", []srs.CardPut{
		{Expected: got["q1"].Token, Card: newer}, // still as read: written
		{Expected: "", Card: b},                  // absent as expected: written
		{Expected: "stale", Card: a},             // changed since: left alone
	})
	if err != nil || n != 2 {
		t.Fatalf("put: %d %v", n, err)
	}
	got, _, _ = c.UserCards(ctx, "SEASON-2026", "u")
	if got["q1"].Card != newer || got["q2"].Card != b {
		t.Fatalf("after put: %+v", got)
	}
	res, _ := c.Due(ctx, "SEASON-2026", "u", "", 1000, 10)
	if res.Total != 1 || res.Cards[0].QuestionID != "q2" {
		t.Fatalf("due set follows the put: %+v", res)
	}
}

func TestLoadManySampleClear(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	if err := c.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	users := map[string][]srs.Card{}
	for i := range 30 {
		p := fmt.Sprintf("u%d", i)
		cd := card("q", "m", int64(i))
		cd.Player = p
		users[p] = []srs.Card{cd}
	}
	if _, err := c.Load(ctx, "SEASON-2026-C", "u0", users["u0"]); err != nil {
		t.Fatal(err)
	}
	wrote, err := c.LoadMany(ctx, "SEASON-2026-C", users)
	if err != nil || len(wrote) != 30 || wrote["u0"] || !wrote["u1"] {
		t.Fatalf("load many: %v %v", wrote, err)
	}
	sample, err := c.SampleUsers(ctx, "SEASON-2026-C", 10)
	if err != nil || len(sample) != 10 {
		t.Fatalf("sample: %v %v", sample, err)
	}
	if _, err := c.Load(ctx, "SEASON-2026-OTHER", "u0", nil); err != nil {
		t.Fatal(err)
	}
	n, err := c.ClearSeason(ctx, "SEASON-2026-C")
	if err != nil || n != 30*3+1 { // card hash, version and labels per user, and the registry
		t.Fatalf("clear: %d %v", n, err)
	}
	if res, _ := c.Due(ctx, "SEASON-2026-C", "u5", "", 10, 5); res.Loaded {
		t.Fatal("a cleared user is still loaded")
	}
	if res, _ := c.Due(ctx, "SEASON-2026-OTHER", "u0", "", 10, 5); !res.Loaded {
		t.Fatal("another season's user was cleared")
	}
}

func TestSeasonSnapshot(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	if _, ok, err := c.SeasonSnapshot(ctx, "SEASON-2026-SNAP"); ok || err != nil {
		t.Fatalf("snapshot before any: %v %v", ok, err)
	}
	s := srs.Season{Name: "SEASON-2026-SNAP", IsActive: true, EnableCache: true, Scheduler: srs.DefaultSchedulerConfig()}
	if err := c.PutSeasonSnapshot(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.SeasonSnapshot(ctx, s.Name)
	if err != nil || !ok || got.Name != s.Name || !got.IsActive || got.Scheduler.DesiredRetention != 0.9 || len(got.Scheduler.LearningSteps) != 2 {
		t.Fatalf("snapshot: %+v %v %v", got, ok, err)
	}
	s.Scheduler.Timezone, s.Scheduler.DayStart = "Europe/Berlin", 0
	if err := c.PutSeasonSnapshot(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := c.SeasonSnapshot(ctx, s.Name); err != nil || !ok || !reflect.DeepEqual(got, s) {
		t.Fatalf("snapshot with a day rule: %+v %v %v, want %+v", got, ok, err, s)
	}
	// Version 1, as the release before day rules wrote it: read, with the
	// legacy rule that release scheduled the season by.
	v1 := `{"v":1,"season":{"Name":"SEASON-2026-SNAP","Start":"0001-01-01T00:00:00Z","End":"0001-01-01T00:00:00Z",` +
		`"IsActive":true,"PartitionCreated":true,"EnableCache":true,"AutoArchive":false,"Archive":"",` +
		`"ArchivedAt":"0001-01-01T00:00:00Z","PurgeEligible":false,"CreatedAt":"2026-01-05T10:00:00Z",` +
		`"Scheduler":{"Params":null,"DesiredRetention":0.85,"LearningSteps":[60000000000,600000000000],` +
		`"RelearningSteps":[600000000000],"MaximumInterval":36500,"EnableFuzz":false,"EnableShortTerm":true}}}`
	c.rdb.Set(ctx, c.snapshotKey(s.Name), v1, 0)
	got, ok, err = c.SeasonSnapshot(ctx, s.Name)
	if err != nil || !ok || got.Scheduler.DesiredRetention != 0.85 || got.Scheduler.DayStart != srs.DayStartLegacy ||
		got.Scheduler.Timezone != "UTC" || !got.PartitionCreated {
		t.Fatalf("version 1 snapshot: %+v %v %v", got, ok, err)
	}
	c.rdb.Set(ctx, c.snapshotKey(s.Name), `{"v":99,"season":{"Name":"SEASON-2026-SNAP"}}`, 0)
	if _, ok, err := c.SeasonSnapshot(ctx, s.Name); ok || err != nil {
		t.Fatalf("a snapshot of an unknown format must read as absent: %v %v", ok, err)
	}
}

func TestCards(t *testing.T) {
	t.Parallel()
	c := testCache(t)
	ctx := context.Background()
	if _, loaded, err := c.Cards(ctx, "SEASON-2026", "p1", []string{"q1"}); loaded || err != nil {
		t.Fatalf("cards of an unloaded user: %v %v", loaded, err)
	}
	a := card("q1", "m", 100)
	if _, err := c.Load(ctx, "SEASON-2026", "p1", []srs.Card{a}); err != nil {
		t.Fatal(err)
	}
	got, loaded, err := c.Cards(ctx, "SEASON-2026", "p1", []string{"q1", "absent"})
	if err != nil || !loaded || len(got) != 1 || got["q1"].Card != a || got["q1"].Token == "" {
		t.Fatalf("cards: %+v %v %v", got, loaded, err)
	}
}
