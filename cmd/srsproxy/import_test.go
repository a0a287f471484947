package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// memoraDB creates a database for memora's tables (dropped after the test)
// and returns its DSN and a connection to it.
func memoraDB(t testing.TB) (string, *sql.DB) {
	t.Helper()
	base := env("SRS_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/")
	name := randomName("srs_memora_")
	admin, err := sql.Open("mysql", base)
	if err != nil {
		t.Fatal(err)
	}
	// Frappe's default collation: case-insensitive.
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name); admin.Close() })
	db, err := sql.Open("mysql", base+name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return base + name, db
}

// Frappe-like definitions of memora's two tables (the scalability plan's
// index on player, season, question_id included).
const (
	trackerDDL = "CREATE TABLE `tabPlayer Memory Tracker` (" +
		"name VARCHAR(140) NOT NULL PRIMARY KEY, creation DATETIME(6), modified DATETIME(6)," +
		"player VARCHAR(140), question_id VARCHAR(140), stability INT, next_review_date DATETIME(6)," +
		"season VARCHAR(140) NOT NULL DEFAULT '', subject VARCHAR(140), topic VARCHAR(140)," +
		"KEY player_season_idx (player, season, question_id))"
	stateDDL = "CREATE TABLE `tabMemora Memory State` (" +
		"name VARCHAR(140) NOT NULL PRIMARY KEY, creation DATETIME(6), modified DATETIME(6)," +
		"player VARCHAR(140), question_id VARCHAR(140), stability DOUBLE, difficulty DOUBLE," +
		"next_review DATETIME(6), state VARCHAR(140), KEY player_idx (player))"
)

type cardID struct{ season, player, question string }

// wantCard is what the import must make of a card.
type wantCard struct {
	state      srs.State
	stability  float64
	difficulty float64
	due, last  int64
	reps       int
	subject    string
}

// memoraFixture is a generated source and what its import must give.
type memoraFixture struct {
	rows       int
	duplicates int
	skipped    map[string]int64
	cards      map[cardID]wantCard
	players    []string
}

// bulkInsert inserts rows (each a []any of the columns) in statements of 1000.
func bulkInsert(t testing.TB, db *sql.DB, table, cols string, rows [][]any) {
	t.Helper()
	n := strings.Count(cols, ",") + 1
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
	for chunk := range slices.Chunk(rows, 1000) {
		var args []any
		for _, r := range chunk {
			args = append(args, r...)
		}
		q := "INSERT INTO `" + table + "` (" + cols + ") VALUES " + strings.TrimSuffix(strings.Repeat(one+",", len(chunk)), ",")
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
}

// datetime formats t as a DATETIME literal in loc (the source's zone).
func datetime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04:05.000000")
}

// buildTracker fills the tracker with players × questions cards: about a
// third with older duplicate rows (some of those with season ”), a tenth
// with season ” throughout (→ --default-season), and a few broken ones of
// each skip reason; plus rows without a player. Dates are written in loc.
func buildTracker(t testing.TB, db *sql.DB, players, questions int, loc *time.Location, d0 float64) memoraFixture {
	t.Helper()
	if _, err := db.Exec(trackerDDL); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(14, 1))
	now := time.Now().Truncate(time.Second)
	f := memoraFixture{skipped: map[string]int64{}, cards: map[cardID]wantCard{}}
	var rows [][]any
	seq := 0
	add := func(player, q, season string, level any, next any, modified time.Time, subject string) {
		seq++
		rows = append(rows, []any{fmt.Sprintf("h%09d", seq), datetime(modified, loc), datetime(modified, loc),
			player, q, level, next, season, subject, "t1"})
	}
	for p := range players {
		player := fmt.Sprintf("student-%05d", p)
		if p == 1 {
			player = "Student-Case" // and p == 2 is "student-case": one position in a _ci collation
		} else if p == 2 {
			player = "student-case"
		}
		f.players = append(f.players, player)
		season := "SEASON-2025"
		if p%2 == 1 {
			season = "SEASON-2026"
		}
		for q := range questions {
			qid := fmt.Sprintf("q-%04d", q)
			subject := []string{"math", "bio", "chem"}[q%3]
			rowSeason := season
			if rng.IntN(10) == 0 {
				rowSeason = ""
			}
			landed := rowSeason
			if landed == "" {
				landed = "SEASON-2026"
			}
			// Older rows first: they must lose to the newest.
			dups := 0
			if rng.IntN(3) == 0 {
				dups = 1 + rng.IntN(3)
			}
			modified := now.Add(-time.Duration(100+rng.IntN(1000)) * time.Hour)
			for d := range dups {
				older := rowSeason
				if d == 0 && rng.IntN(2) == 0 {
					older = "" // the rows from before the season column was filled
					if landed != "SEASON-2026" {
						older = rowSeason // '' would land in another season: another card
					}
				}
				add(player, qid, older, 1+rng.IntN(4), datetime(modified.Add(24*time.Hour), loc), modified, subject)
				modified = modified.Add(time.Duration(1+rng.IntN(48)) * time.Hour)
			}
			f.rows += dups + 1
			f.duplicates += dups
			level := rng.IntN(5)
			// Answered in the last 30 days, due after the level's interval.
			due := now.Add(-time.Duration(rng.IntN(30*24*60)) * time.Minute).Add(time.Duration(trackerIntervals[level]*24) * time.Hour)
			var next any = datetime(due, loc)
			id := cardID{landed, player, qid}
			switch k := rng.IntN(200); {
			case k == 0:
				next = nil
				f.skipped[skipNullDue]++
				add(player, qid, rowSeason, level, next, modified, subject)
				continue
			case k == 1:
				f.skipped[skipBadLevel]++
				add(player, qid, rowSeason, 7, next, modified, subject)
				continue
			case k == 2 && rowSeason != "":
				// A bad season name is another card (another season) than the duplicates above.
				f.skipped[skipBadSeason]++
				f.duplicates -= dups
				f.rows -= dups + 1
				rows = rows[:len(rows)-dups]
				seq -= dups
				f.rows++
				add(player, qid, "season-2026", level, next, modified, subject)
				continue
			}
			add(player, qid, rowSeason, level, next, modified, subject)
			w := wantCard{state: srs.StateNew, due: due.UnixMilli(), subject: subject}
			if level > 0 {
				w.state = srs.StateReview
				w.stability = trackerIntervals[level]
				w.difficulty = d0
				w.last = w.due - int64(w.stability)*dayMS
				w.reps = dups + 1
			}
			f.cards[id] = w
		}
	}
	// Rows no card comes from.
	for i := range 3 {
		seq++
		var player any
		if i > 0 {
			player = ""
		}
		rows = append(rows, []any{fmt.Sprintf("x%09d", seq), datetime(now, loc), datetime(now, loc), player, "q-0001", 2, datetime(now, loc), "SEASON-2026", "math", "t1"})
		f.rows++
		f.skipped[skipNoPlayer]++
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	bulkInsert(t, db, trackerTable, "name, creation, modified, player, question_id, stability, next_review_date, season, subject, topic", rows)
	return f
}

// importArgs are the flags of an import into e.
func importArgs(e testEnv, from string, extra ...string) []string {
	return append([]string{"--from", from, "--mysql", e.DSN, "--redis", e.Redis, "--redis-prefix", e.Prefix, "--progress", "log"}, extra...)
}

// runImportTest runs an import in process and returns its counters and output.
func runImportTest(t testing.TB, args []string, hook func(imp *importer, cancel context.CancelFunc)) (*importer, string, error) {
	t.Helper()
	var out bytes.Buffer
	c, err := parseImport(args, func(string) string { return "" }, &out)
	if err != nil {
		t.Fatal(err)
	}
	imp := newImporter(c, &out, &out)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if hook != nil {
		hook(imp, cancel)
	}
	start := time.Now()
	err = imp.run(ctx)
	if imp.counts != nil {
		t.Logf("import: %d rows in %s: %.0f rows/s", imp.counts.Rows, time.Since(start).Round(time.Millisecond),
			float64(imp.counts.Rows)/time.Since(start).Seconds())
	}
	return imp, out.String(), err
}

func checkCounts(t *testing.T, what string, got *importCounts, f memoraFixture) {
	t.Helper()
	if got.Rows != got.Duplicates+got.Cards+got.skippedTotal() {
		t.Errorf("%s: rows %d != duplicates %d + cards %d + skipped %d", what, got.Rows, got.Duplicates, got.Cards, got.skippedTotal())
	}
	if got.Cards != got.Inserted+got.Updated+got.Unchanged+got.Kept && got.Inserted+got.Updated+got.Unchanged+got.Kept != 0 {
		t.Errorf("%s: cards %d != inserted+updated+unchanged+kept %+v", what, got.Cards, got)
	}
	if got.Rows != int64(f.rows) || got.Duplicates != int64(f.duplicates) || got.Cards != int64(len(f.cards)) {
		t.Errorf("%s: rows %d duplicates %d cards %d, want %d %d %d", what, got.Rows, got.Duplicates, got.Cards, f.rows, f.duplicates, len(f.cards))
	}
	for k := range f.skipped {
		if got.Skipped[k] != f.skipped[k] {
			t.Errorf("%s: skipped %q: %d, want %d (all: %v)", what, k, got.Skipped[k], f.skipped[k], got.Skipped)
		}
	}
	for k, v := range got.Skipped {
		if f.skipped[k] != v {
			t.Errorf("%s: skipped %q: %d, want %d", what, k, v, f.skipped[k])
		}
	}
}

// TestImportMemoraTracker imports a 100k-card tracker (about 140k rows)
// through a running sidecar's database and cache, checks SRS.CARD and
// SRS.DUE of sampled students against the source, re-imports (nothing
// doubled), and shows that a review after the import wins over a re-import
// while an unreviewed card catches up with the source.
func TestImportMemoraTracker(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	m := startMain(t, e)
	c := client(t, m.Addr(), 3)
	from, src := memoraDB(t)
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := fsrs.New(srs.DefaultSchedulerConfig())
	d0 := sched.Next(srs.Schedule{}, srs.Good, 0, 0).Difficulty
	players, questions := 2500, 40
	if testing.Short() {
		players = 250
	}
	f := buildTracker(t, src, players, questions, loc, d0)

	// SEASON-2026 exists and a student's (empty) schedule is cached before
	// the import: the import must drop that entry.
	mustDo(t, c, "SRS.SEASON", "CREATE", "SEASON-2026")
	mustDo(t, c, "SRS.SEASON", "ACTIVATE", "SEASON-2026")
	watched := f.players[3] // odd: SEASON-2026
	if due := asMap(t, mustDo(t, c, "SRS.DUE", watched, "SEASON-2026")); due["total_due"] != int64(0) {
		t.Fatalf("before the import: %v", due)
	}

	args := importArgs(e, from, "--table", "tracker", "--default-season", "SEASON-2026",
		"--subject-column", "subject", "--source-timezone", "Europe/Berlin")
	imp, out, err := runImportTest(t, args, nil)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Log(out)
	checkCounts(t, "first pass", imp.counts, f)
	if imp.counts.Inserted != int64(len(f.cards)) || imp.counts.Updated+imp.counts.Unchanged+imp.counts.Kept != 0 {
		t.Errorf("first pass: %+v", imp.counts)
	}
	if !slices.Equal(imp.counts.Created, []string{"SEASON-2025"}) {
		t.Errorf("seasons created: %v", imp.counts.Created)
	}
	countCards := func() int {
		var n int
		if err := m.store.DB().QueryRow("SELECT COUNT(*) FROM cards").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := countCards(); n != len(f.cards) {
		t.Fatalf("cards in MariaDB: %d, want %d", n, len(f.cards))
	}

	// Sampled students through the sidecar.
	now := time.Now().UnixMilli()
	rng := rand.New(rand.NewPCG(2, 3))
	sample := []string{watched, f.players[1], f.players[2]}
	for range 20 {
		sample = append(sample, f.players[rng.IntN(len(f.players))])
	}
	for _, p := range sample {
		for _, season := range []string{"SEASON-2025", "SEASON-2026"} {
			var due []cardID
			for q := range questions {
				id := cardID{season, p, fmt.Sprintf("q-%04d", q)}
				w, ok := f.cards[id]
				if ok && w.due <= now {
					due = append(due, id)
				}
				if q%7 != 0 {
					continue
				}
				got, err := c.Do(context.Background(), "SRS.CARD", p, season, id.question).Result()
				if err != nil && err != goredis.Nil {
					t.Fatal(err)
				}
				if !ok {
					if got != nil {
						t.Errorf("%v: not in the source, SRS.CARD = %v", id, got)
					}
					continue
				}
				checkCard(t, id, asMap(t, got), w)
			}
			r := asMap(t, mustDo(t, c, "SRS.DUE", p, season, "AT", now, "LIMIT", 50))
			if r["total_due"] != int64(len(due)) {
				t.Errorf("SRS.DUE %s %s: total_due %v, want %d", p, season, r["total_due"], len(due))
			}
		}
	}

	// Again: nothing doubled, nothing changed.
	imp2, out, err := runImportTest(t, args, nil)
	if err != nil {
		t.Fatalf("re-import: %v\n%s", err, out)
	}
	checkCounts(t, "second pass", imp2.counts, f)
	if imp2.counts.Unchanged != int64(len(f.cards)) || imp2.counts.Inserted+imp2.counts.Updated+imp2.counts.Kept != 0 {
		t.Errorf("second pass: %+v", imp2.counts)
	}
	if !strings.Contains(out, " pass 2: ") {
		t.Errorf("second run is not pass 2:\n%s", out)
	}
	if n := countCards(); n != len(f.cards) {
		t.Fatalf("cards after the re-import: %d, want %d", n, len(f.cards))
	}

	// A review through srsproxy after the import, then memora writes newer
	// rows for that card and another one of the student.
	var reviewed, other cardID
	for q := range questions {
		id := cardID{"SEASON-2026", watched, fmt.Sprintf("q-%04d", q)}
		if w, ok := f.cards[id]; ok && w.state == srs.StateReview {
			if reviewed.player == "" {
				reviewed = id
			} else if other.player == "" {
				other = id
			}
		}
	}
	rv := asMap(t, mustDo(t, c, "SRS.REVIEW", watched, reviewed.season, reviewed.question, "3", "ID", "after-import-1"))
	waitCardDrained(t, m, reviewed)
	later := time.Now().Add(time.Hour)
	newDue := later.Add(14 * 24 * time.Hour).Truncate(time.Second)
	for i, id := range []cardID{reviewed, other} {
		if _, err := src.Exec("INSERT INTO `"+trackerTable+"` (name, creation, modified, player, question_id, stability, next_review_date, season, subject, topic) VALUES (?, ?, ?, ?, ?, 4, ?, ?, 'math', 't1')",
			fmt.Sprintf("late%d", i), datetime(later, loc), datetime(later, loc), id.player, id.question, datetime(newDue, loc), id.season); err != nil {
			t.Fatal(err)
		}
	}
	f.rows += 2
	f.duplicates += 2
	imp3, out, err := runImportTest(t, args, nil)
	if err != nil {
		t.Fatalf("third import: %v\n%s", err, out)
	}
	checkCounts(t, "third pass", imp3.counts, f)
	if imp3.counts.Kept != 1 || imp3.counts.Updated != 1 || imp3.counts.Unchanged != int64(len(f.cards)-2) {
		t.Errorf("third pass: %+v", imp3.counts)
	}
	got := asMap(t, mustDo(t, c, "SRS.CARD", watched, reviewed.season, reviewed.question))
	if got["last_review"] != rv["last_review"] || got["reps"] != rv["reps"] || got["due"] != rv["due"] {
		t.Errorf("the review after the import was overwritten: SRS.CARD %v, review %v", got, rv)
	}
	w := f.cards[other]
	w.stability, w.due, w.reps = 14, newDue.UnixMilli(), w.reps+1
	w.last = w.due - 14*dayMS
	w.subject = "math"
	checkCard(t, other, asMap(t, mustDo(t, c, "SRS.CARD", watched, other.season, other.question)), w)
}

// waitCardDrained waits until the drainer wrote the review of id to MariaDB.
func waitCardDrained(t *testing.T, m *Main, id cardID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var hash uint64
		err := m.store.DB().QueryRow("SELECT last_review_hash FROM cards WHERE season = ? AND player = ? AND question_id = ?",
			id.season, id.player, id.question).Scan(&hash)
		if err == nil && hash != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("review of %v not drained: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkCard(t *testing.T, id cardID, got map[string]any, w wantCard) {
	t.Helper()
	wantStab := w.stability
	if got["state"] != w.state.String() || got["due"] != w.due || got["last_review"] != w.last ||
		got["reps"] != int64(w.reps) || got["stability"] != wantStab || got["subject"] != w.subject ||
		w.state == srs.StateReview && got["difficulty"] != w.difficulty {
		t.Errorf("%v: SRS.CARD %v, want %+v", id, got, w)
	}
}

// buildState fills memora's state table: players × questions, duplicates,
// unknown states and NULL dates.
func buildState(t *testing.T, db *sql.DB, players, questions int) memoraFixture {
	t.Helper()
	if _, err := db.Exec(stateDDL); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	now := time.Now().UTC().Truncate(time.Millisecond)
	f := memoraFixture{skipped: map[string]int64{}, cards: map[cardID]wantCard{}}
	var rows [][]any
	states := []string{"New", "Learning", "Review", "Relearning"}
	for p := range players {
		player := fmt.Sprintf("fsrs-%04d", p)
		f.players = append(f.players, player)
		for q := range questions {
			qid := fmt.Sprintf("q-%04d", q)
			dups := 0
			if rng.IntN(5) == 0 {
				dups = 1
			}
			modified := now.Add(-time.Duration(200+rng.IntN(500)) * time.Hour)
			for d := range dups {
				rows = append(rows, []any{fmt.Sprintf("%s-%s-%d", player, qid, d), datetime(modified, time.UTC), player, qid, 3.0, 5.0, datetime(modified, time.UTC), "Review"})
				modified = modified.Add(time.Hour)
			}
			f.rows += dups + 1
			f.duplicates += dups
			st := states[rng.IntN(4)]
			s, d := 0.5+rng.Float64()*30, 1+rng.Float64()*9
			due := now.Add(time.Duration(rng.IntN(20*24)-10*24) * time.Hour)
			var next any = datetime(due, time.UTC)
			switch rng.IntN(100) {
			case 0:
				st = "Suspended"
				f.skipped[skipUnknownState]++
			case 1:
				next = nil
				f.skipped[skipNullDue]++
			default:
				w := wantCard{due: due.UnixMilli()}
				w.state = memoraStates[strings.ToLower(st)]
				if w.state != srs.StateNew {
					w.stability, w.difficulty, w.last, w.reps = s, d, modified.UnixMilli(), dups+1
				}
				f.cards[cardID{"SEASON-2026-FSRS", player, qid}] = w
			}
			rows = append(rows, []any{fmt.Sprintf("%s-%s-n", player, qid), datetime(modified, time.UTC), player, qid, s, d, next, st})
		}
	}
	bulkInsert(t, db, stateTable, "name, modified, player, question_id, stability, difficulty, next_review, state", rows)
	return f
}

// TestImportMemoraStateResume imports the state table into one season,
// interrupted after a few pages and resumed: the counts of the whole pass
// are exact and every card is there once. A dry run first writes nothing,
// not even the target database.
func TestImportMemoraStateResume(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	from, src := memoraDB(t)
	f := buildState(t, src, 300, 40)

	dry := e
	dry.DSN = e.DSN + "_dry"
	imp, out, err := runImportTest(t, importArgs(dry, from, "--table", "state", "--season", "SEASON-2026-FSRS", "--dry-run"), nil)
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	checkCounts(t, "dry run", imp.counts, f)
	if !strings.Contains(out, "seasons to create:     SEASON-2026-FSRS") || !strings.Contains(out, "cards that would be written: ") {
		t.Errorf("dry run summary:\n%s", out)
	}
	cfg, _ := mysql.ParseDSN(dry.DSN)
	var n int
	if err := src.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", cfg.DBName).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the dry run created the target database (%d, %v)", n, err)
	}

	args := importArgs(e, from, "--table", "state", "--season", "SEASON-2026-FSRS", "--page-rows", "500")
	saves := 0
	_, out, err = runImportTest(t, args, func(imp *importer, cancel context.CancelFunc) {
		imp.saveEvery = 0
		imp.onSaved = func() {
			if saves++; saves == 3 {
				cancel()
			}
		}
	})
	if err == nil {
		t.Fatalf("the interrupted import finished:\n%s", out)
	}
	target, err := sql.Open("mysql", e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var partial int
	if err := target.QueryRow("SELECT COUNT(*) FROM cards").Scan(&partial); err != nil || partial == 0 || partial >= len(f.cards) {
		t.Fatalf("after the interruption: %d cards (%v), want some of %d", partial, err, len(f.cards))
	}
	imp, out, err = runImportTest(t, args, nil)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if !strings.Contains(out, "pass 1: resuming after player") {
		t.Errorf("not a resume:\n%s", out)
	}
	checkCounts(t, "resumed pass", imp.counts, f)
	// Pages written after the last saved cursor are written again: unchanged.
	if got := imp.counts.Inserted + imp.counts.Unchanged; got != int64(len(f.cards)) {
		t.Errorf("resumed pass: inserted %d + unchanged %d, want %d", imp.counts.Inserted, imp.counts.Unchanged, len(f.cards))
	}

	m := startMain(t, e)
	c := client(t, m.Addr(), 2)
	var total int
	if err := m.store.DB().QueryRow("SELECT COUNT(*) FROM cards WHERE season = 'SEASON-2026-FSRS'").Scan(&total); err != nil || total != len(f.cards) {
		t.Fatalf("cards: %d (%v), want %d", total, err, len(f.cards))
	}
	for _, p := range []string{f.players[0], f.players[150], f.players[299]} {
		for q := range 40 {
			id := cardID{"SEASON-2026-FSRS", p, fmt.Sprintf("q-%04d", q)}
			w, ok := f.cards[id]
			got, err := c.Do(context.Background(), "SRS.CARD", p, id.season, id.question).Result()
			if err != nil && err != goredis.Nil {
				t.Fatal(err)
			}
			if !ok {
				if got != nil {
					t.Errorf("%v: skipped in the source, SRS.CARD = %v", id, got)
				}
				continue
			}
			gm := asMap(t, got)
			if gm["state"] != w.state.String() || gm["due"] != w.due || gm["last_review"] != w.last || gm["reps"] != int64(w.reps) {
				t.Errorf("%v: SRS.CARD %v, want %+v", id, gm, w)
			}
			if w.state != srs.StateNew && (gm["stability"] != fmt.Sprint(w.stability) && gm["stability"] != w.stability) {
				t.Errorf("%v: stability %v, want %v", id, gm["stability"], w.stability)
			}
		}
	}
}

// TestImportMemoraUsage: bad flags exit 2 naming the flag.
func TestImportMemoraUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"memora"}, "--from is required"},
		{[]string{"memora", "--from", "root@tcp(127.0.0.1:3306)/x", "--table", "nope"}, "--table"},
		{[]string{"memora", "--from", "root@tcp(127.0.0.1:3306)/x", "--table", "state"}, "--season is required"},
		{[]string{"memora", "--from", "root@tcp(127.0.0.1:3306)/x", "--table", "tracker", "--default-season", "season-1"}, "--default-season"},
		{[]string{"memora", "--from", "root@tcp(127.0.0.1:3306)/x", "--table", "tracker", "--subject-column", "a`b"}, "--subject-column"},
		{[]string{"memora", "--from", "root@tcp(127.0.0.1:3306)/x", "--table", "tracker", "--source-timezone", "Mars/Base"}, "--source-timezone"},
		{[]string{"nope"}, "usage: srsproxy import memora"},
	} {
		var out bytes.Buffer
		if code := runImport(tc.args, &out, &out); code != 2 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, output %q; want 2 and %q", tc.args, code, out.String(), tc.want)
		}
	}
}

var importBenchPlayers = flag.Int("import-players", 2500, "BenchmarkImportMemora: tracker players (40 cards each, ~1.7 rows per card)")

// BenchmarkImportMemora measures a first import of a generated tracker
// (-import-players × 40 cards) into an empty target; it reports source rows/s.
// Run: go test -run '^$' -bench ImportMemora -benchtime 1x -import-players 25000 ./cmd/srsproxy/
func BenchmarkImportMemora(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		db := randomName("srs_e2e_")
		e := testEnv{DSN: env("SRS_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/") + db, Redis: env("SRS_TEST_REDIS", "127.0.0.1:6379"), Prefix: randomName("srsbench")}
		b.Cleanup(func() {
			if conn, err := sql.Open("mysql", env("SRS_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/")); err == nil {
				conn.Exec("DROP DATABASE IF EXISTS " + db)
				conn.Close()
			}
		})
		from, src := memoraDB(b)
		f := buildTracker(b, src, *importBenchPlayers, 40, time.UTC, 5)
		b.StartTimer()
		args := importArgs(e, from, "--table", "tracker", "--default-season", "SEASON-2026")
		if _, out, err := runImportTest(b, append(args, "--dry-run"), nil); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		imp, out, err := runImportTest(b, args, nil)
		if err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		b.ReportMetric(float64(imp.counts.Rows)/b.Elapsed().Seconds(), "rows/s")
		b.Log(out, f.rows)
	}
}

// TestImportSeasonFilter: --season restricts the tracker's read to the rows
// that land in it (” rows too when --default-season is the same season).
func TestImportSeasonFilter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src   memoraSource
		where string
		args  int
	}{
		{memoraSource{tracker: true, hasSeason: true}, "", 0},
		{memoraSource{tracker: true, hasSeason: true, season: "SEASON-2026"}, " AND season = ?", 1},
		{memoraSource{tracker: true, hasSeason: true, season: "SEASON-2026", defSeason: "SEASON-2026"}, " AND (season = ? OR season = '' OR season IS NULL)", 1},
		{memoraSource{tracker: true, season: "SEASON-2026", defSeason: "SEASON-2026"}, "", 0},
		{memoraSource{tracker: true, season: "SEASON-2026"}, " AND FALSE", 0},
		{memoraSource{season: "SEASON-2026"}, "", 0}, // the state table: every row lands in --season
	} {
		where, args := tc.src.seasonFilter()
		if where != tc.where || len(args) != tc.args {
			t.Errorf("%+v: %q %v, want %q with %d args", tc.src, where, args, tc.where, tc.args)
		}
	}
}
