package mariadb

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// seed fills a season with n cards and n review-log rows in two INSERT …
// SELECT statements over the Sequence engine: player p<i/100>, question
// q<i%100>, review id r<i>. The rows have no last_id (0), as rows from
// release 1.
func seed(tb testing.TB, s *Store, season string, n int) {
	tb.Helper()
	ctx := context.Background()
	seq := fmt.Sprintf("seq_1_to_%d", n)
	if _, err := s.DB().ExecContext(ctx, "INSERT INTO cards ("+cardColumns+`)
		SELECT ?, CONCAT('p', seq DIV 100), CONCAT('q', seq MOD 100), 'math', 'algebra', 's1',
		       2, 0, 1.5, 5.0, 1000000 + seq, seq, 1, 0, 0, 0 FROM `+seq, season); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, "INSERT INTO review_log ("+logColumns+`)
		SELECT ?, CONCAT('r', seq), CONCAT('p', seq DIV 100), CONCAT('q', seq MOD 100), 3, seq, 0, 1000,
		       'math', 'algebra', 's1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1.5, 5.0, 1000000 + seq, seq, 1, 0, 0, 'seed'
		FROM `+seq, season); err != nil {
		tb.Fatal(err)
	}
}

// partitionOf reports whether table still has the season's partition.
func partitionOf(tb testing.TB, s *Store, table, season string) bool {
	tb.Helper()
	ok, err := partitions.Exists(context.Background(), s.DB(), s.Schema(), table, season)
	if err != nil {
		tb.Fatal(err)
	}
	return ok
}

// markSeason sets a season's archive state as the engine does.
func markSeason(tb testing.TB, s *Store, season string, state srs.ArchiveState) {
	tb.Helper()
	ctx := context.Background()
	se, err := s.Season(ctx, season)
	if err != nil {
		tb.Fatal(err)
	}
	se.Archive = state
	if err := s.UpdateSeason(ctx, se); err != nil {
		tb.Fatal(err)
	}
}

func TestArchiveSeason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const old, cur = "SEASON-2025", "SEASON-2026"
	newSeason(t, s, old)
	newSeason(t, s, cur)
	seed(t, s, old, 1234)
	seed(t, s, cur, 321)
	late := review("late", old, "alice", "q1", 5_000_000, 7)
	apply(t, s, late, review("c1", cur, "alice", "q1", 5_000_000, 7))
	wantCard := mustCard(t, s, old, "p5", "q55")

	if _, _, ok, err := s.ArchiveInfo(ctx, old); err != nil || ok {
		t.Errorf("ArchiveInfo before = %v, %v; want not archived", ok, err)
	}
	res, err := s.ArchiveSeason(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cards != 1235 || res.LogRows != 1235 || len(res.Statements) != 2 {
		t.Errorf("ArchiveSeason = %+v, want 1235 cards, 1235 log rows, 2 statements", res)
	}
	for i, table := range partitionedTables {
		if partitionOf(t, s, table, old) {
			t.Errorf("%s still has the partition of %s", table, old)
		}
		if !partitionOf(t, s, table, cur) {
			t.Errorf("%s lost the partition of %s", table, cur)
		}
		archive, _ := partitions.ArchiveTable(table, old)
		if !strings.Contains(res.Statements[i], "CONVERT PARTITION `p_SEASON_2025` TO TABLE `"+s.Schema()+"`.`"+archive+"`") {
			t.Errorf("statement %d = %q", i, res.Statements[i])
		}
	}
	// The archive holds exactly the season's rows; the live tables keep the rest.
	if n, err := s.CountCards(ctx, old); err != nil || n != 0 {
		t.Errorf("live cards of %s = %d, %v", old, n, err)
	}
	if n, err := s.CountCards(ctx, cur); err != nil || n != 322 {
		t.Errorf("live cards of %s = %d, %v; want 322", cur, n, err)
	}
	if cards, logRows, ok, err := s.ArchiveInfo(ctx, old); err != nil || !ok || cards != 1235 || logRows != 1235 {
		t.Errorf("ArchiveInfo = %d, %d, %v, %v", cards, logRows, ok, err)
	}
	var other int
	if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM cards_archive_SEASON_2025 WHERE season <> ?", old).Scan(&other); err != nil || other != 0 {
		t.Errorf("archive rows of other seasons = %d, %v", other, err)
	}
	if c, ok, err := s.ArchivedCard(ctx, old, "p5", "q55"); err != nil || !ok || !reflect.DeepEqual(c, wantCard) {
		t.Errorf("ArchivedCard = %+v, %v, %v; want %+v", c, ok, err, wantCard)
	}
	if c, ok, err := s.ArchivedCard(ctx, old, "alice", "q1"); err != nil || !ok || !reflect.DeepEqual(c, late.Card()) {
		t.Errorf("ArchivedCard(alice) = %+v, %v, %v", c, ok, err)
	}
	if _, ok, err := s.ArchivedCard(ctx, old, "nobody", "q1"); err != nil || ok {
		t.Errorf("ArchivedCard(missing) = %v, %v", ok, err)
	}
	if _, ok, err := s.ArchivedCard(ctx, cur, "alice", "q1"); err != nil || ok {
		t.Errorf("ArchivedCard(live season) = %v, %v; want no archive", ok, err)
	}
	// The live season keeps taking reviews.
	apply(t, s, review("c2", cur, "bob", "q1", 6_000_000, 1))

	// Rerun: nothing to move, the same counts.
	again, err := s.ArchiveSeason(ctx, old)
	if err != nil || len(again.Statements) != 0 || again.Cards != 1235 || again.LogRows != 1235 {
		t.Errorf("rerun = %+v, %v", again, err)
	}

	if err := s.PurgeArchive(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.ArchiveInfo(ctx, old); err != nil || ok {
		t.Errorf("ArchiveInfo after purge = %v, %v", ok, err)
	}
	if _, ok, err := s.ArchivedCard(ctx, old, "p5", "q55"); err != nil || ok {
		t.Errorf("ArchivedCard after purge = %v, %v", ok, err)
	}
	for _, table := range partitionedTables {
		archive, _ := partitions.ArchiveTable(table, old)
		if ok, err := partitions.TableExists(ctx, s.DB(), s.Schema(), archive); err != nil || ok {
			t.Errorf("%s after purge: %v, %v", archive, ok, err)
		}
	}
	if err := s.PurgeArchive(ctx, old); err != nil {
		t.Errorf("second purge: %v", err)
	}
	if _, err := s.ArchiveSeason(ctx, old); !errors.Is(err, partitions.ErrNotFound) {
		t.Errorf("ArchiveSeason after purge err = %v, want ErrNotFound", err)
	}
	if _, err := s.ArchiveSeason(ctx, "SEASON-1999"); !errors.Is(err, srs.ErrUnknownSeason) {
		t.Errorf("ArchiveSeason(unknown) err = %v", err)
	}
	if n, err := s.CountCards(ctx, cur); err != nil || n != 323 {
		t.Errorf("live cards of %s after purge = %d, %v; want 323", cur, n, err)
	}
}

// TestArchiveSeasonResumes picks up after a crash between the two moves.
func TestArchiveSeasonResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const season = "SEASON-2025-SPRING"
	newSeason(t, s, season)
	seed(t, s, season, 250)
	if moved, _, err := partitions.Convert(ctx, s.DB(), s.Schema(), "cards", season); err != nil || !moved {
		t.Fatalf("Convert(cards) = %v, %v", moved, err)
	}
	if _, _, ok, err := s.ArchiveInfo(ctx, season); err != nil || ok {
		t.Errorf("ArchiveInfo half-archived = %v, %v; want not archived", ok, err)
	}
	res, err := s.ArchiveSeason(ctx, season)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Statements) != 1 || !strings.Contains(res.Statements[0], "`review_log` CONVERT PARTITION") {
		t.Errorf("statements = %q, want the review_log move only", res.Statements)
	}
	if res.Cards != 250 || res.LogRows != 250 {
		t.Errorf("counts = %d, %d; want 250, 250", res.Cards, res.LogRows)
	}
	for _, table := range partitionedTables {
		if partitionOf(t, s, table, season) {
			t.Errorf("%s still has the partition", table)
		}
	}
}

// TestArchiveCost archives a small and a large season: both are one
// metadata-only statement per table, so the times are close. No wall-clock
// assertion; the times go to the log.
func TestArchiveCost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, n := range []int{1_000, 200_000} {
		season := fmt.Sprintf("SEASON-2024-N%d", n)
		newSeason(t, s, season)
		seed(t, s, season, n)
		res, err := s.ArchiveSeason(ctx, season)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("archive of %d cards + %d log rows: %.4f s in the moves (%q)", res.Cards, res.LogRows, res.MoveSeconds, res.Statements)
		if res.Cards != int64(n) || res.LogRows != int64(n) {
			t.Errorf("%s: archived %d cards, %d log rows; want %d", season, res.Cards, res.LogRows, n)
		}
		if len(res.Statements) != len(partitionedTables) {
			t.Errorf("%s: %d statements", season, len(res.Statements))
		}
		for i, stmt := range res.Statements {
			want := fmt.Sprintf("ALTER TABLE `%s`.`%s` CONVERT PARTITION `p_SEASON_2024_N%d` TO TABLE ", s.Schema(), partitionedTables[i], n)
			if !strings.HasPrefix(stmt, want) {
				t.Errorf("statement %q, want a partition conversion %q…", stmt, want)
			}
		}
		for _, table := range partitionedTables {
			if partitionOf(t, s, table, season) {
				t.Errorf("%s still has the partition of %s", table, season)
			}
		}
	}
}

// TestArchiveNamesRefusedBeforeSQL uses a store without a database: any SQL
// would panic, so passing proves the names are refused first.
func TestArchiveNamesRefusedBeforeSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &Store{}
	for _, name := range []string{"", "SEASON-2026'", "SEASON-2026-`X`", "SEASON-2026 X", "season-2026",
		"SEASON-2026-" + strings.Repeat("A", 40), "SEASON-2026'; DROP TABLE cards; --"} {
		if _, err := s.ArchiveSeason(ctx, name); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("ArchiveSeason(%q) err = %v", name, err)
		}
		if _, _, _, err := s.ArchiveInfo(ctx, name); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("ArchiveInfo(%q) err = %v", name, err)
		}
		if _, _, err := s.ArchivedCard(ctx, name, "p", "q"); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("ArchivedCard(%q) err = %v", name, err)
		}
		if err := s.PurgeArchive(ctx, name); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("PurgeArchive(%q) err = %v", name, err)
		}
		if _, err := s.CardsPage(ctx, name, "", "", 10); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("CardsPage(%q) err = %v", name, err)
		}
		if _, err := s.CreateSeason(ctx, srs.Season{Name: name}); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("CreateSeason(%q) err = %v", name, err)
		}
		if err := s.UpdateSeason(ctx, srs.Season{Name: name}); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("UpdateSeason(%q) err = %v", name, err)
		}
	}
}
