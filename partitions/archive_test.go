package partitions_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

func TestArchiveTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ table, season, want string }{
		{"cards", "SEASON-2026", "cards_archive_SEASON_2026"},
		{"review_log", "SEASON-2026-FALL_A1", "review_log_archive_SEASON_2026_FALL_A1"},
	} {
		got, err := partitions.ArchiveTable(tc.table, tc.season)
		if err != nil || got != tc.want {
			t.Errorf("ArchiveTable(%q, %q) = %q, %v; want %q", tc.table, tc.season, got, err, tc.want)
		}
	}

	// The longest valid names: cut to 64 with a hash, and still one-to-one.
	long := func(c string) string { return "SEASON-2026-" + strings.Repeat(c, srs.MaxSeasonNameLen-12) }
	seen := map[string]string{}
	for _, season := range []string{long("A"), long("B"), long("A")[:47] + "B", long("A")[:40], long("A")[:34]} {
		if !srs.ValidSeasonName(season) {
			t.Fatalf("test name %q invalid", season)
		}
		for _, table := range []string{"cards", "review_log"} {
			got, err := partitions.ArchiveTable(table, season)
			if err != nil || len(got) > 64 || !partitions.ValidIdent(got) || !strings.HasPrefix(got, table+"_archive_SEASON_2026_") {
				t.Errorf("ArchiveTable(%q, %q) = %q (%d), %v", table, season, got, len(got), err)
			}
			if again, _ := partitions.ArchiveTable(table, season); again != got {
				t.Errorf("ArchiveTable(%q, %q) not deterministic: %q, %q", table, season, got, again)
			}
			if prev, ok := seen[got]; ok && prev != table+" "+season {
				t.Errorf("ArchiveTable collision %q: %s and %s %s", got, prev, table, season)
			}
			seen[got] = table + " " + season
		}
	}
	if _, err := partitions.ArchiveTable(strings.Repeat("t", 60), "SEASON-2026-"+strings.Repeat("A", 36)); !errors.Is(err, partitions.ErrInvalidIdent) {
		t.Errorf("ArchiveTable with no room left: err = %v", err)
	}
}

func TestConvert(t *testing.T) {
	t.Parallel()
	db, schema := testDB(t)
	ctx := context.Background()
	const season, other = "SEASON-2026-OLD", "SEASON-2027"
	for _, s := range []string{season, other} {
		if _, err := partitions.Ensure(ctx, db, schema, "t", s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO "+schema+".t SELECT ?, seq FROM "+schema+".seq_1_to_500", season); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO "+schema+".t SELECT ?, seq FROM "+schema+".seq_1_to_30", other); err != nil {
		t.Fatal(err)
	}
	archive, _ := partitions.ArchiveTable("t", season)
	if ok, err := partitions.TableExists(ctx, db, schema, archive); err != nil || ok {
		t.Fatalf("TableExists(archive) before = %v, %v", ok, err)
	}

	moved, stmts, err := partitions.Convert(ctx, db, schema, "t", season)
	if err != nil || !moved {
		t.Fatalf("Convert = %v, %q, %v; want moved", moved, stmts, err)
	}
	want := fmt.Sprintf("ALTER TABLE `%s`.`t` CONVERT PARTITION `p_SEASON_2026_OLD` TO TABLE `%s`.`t_archive_SEASON_2026_OLD`", schema, schema)
	if !slices.Equal(stmts, []string{want}) {
		t.Errorf("statements = %q, want %q", stmts, want)
	}
	if ok, err := partitions.Exists(ctx, db, schema, "t", season); err != nil || ok {
		t.Errorf("partition still there: %v, %v", ok, err)
	}
	if ok, err := partitions.TableExists(ctx, db, schema, archive); err != nil || !ok {
		t.Errorf("TableExists(archive) = %v, %v", ok, err)
	}
	count := func(table, season string) (n, sum int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(id), 0) FROM "+schema+"."+table+
			" WHERE season = ?", season).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		return n, sum
	}
	if n, sum := count(archive, season); n != 500 || sum != 500*501/2 {
		t.Errorf("archive holds %d rows (sum %d), want 500", n, sum)
	}
	if n, _ := count("t", season); n != 0 {
		t.Errorf("live table still holds %d rows of %s", n, season)
	}
	if n, sum := count("t", other); n != 30 || sum != 30*31/2 {
		t.Errorf("other season: %d rows (sum %d), want 30", n, sum)
	}
	if ok, err := partitions.Exists(ctx, db, schema, "t", other); err != nil || !ok {
		t.Errorf("other partition: %v, %v", ok, err)
	}

	// A rerun finds the work done and issues nothing.
	if moved, stmts, err := partitions.Convert(ctx, db, schema, "t", season); err != nil || moved || len(stmts) != 0 {
		t.Errorf("rerun = %v, %q, %v; want nothing moved", moved, stmts, err)
	}
	// Neither partition nor archive: nothing to convert.
	if _, _, err := partitions.Convert(ctx, db, schema, "t", "SEASON-2030"); !errors.Is(err, partitions.ErrNotFound) {
		t.Errorf("Convert(never created) err = %v, want ErrNotFound", err)
	}
}

func TestConvertConcurrent(t *testing.T) {
	t.Parallel()
	db, schema := testDB(t)
	ctx := context.Background()
	const season, callers = "SEASON-2026-RACE", 4
	if _, err := partitions.Ensure(ctx, db, schema, "t", season); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO "+schema+".t SELECT ?, seq FROM "+schema+".seq_1_to_100", season); err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		moved = make([]bool, callers)
		errs  = make([]error, callers)
	)
	for c := range callers {
		wg.Go(func() {
			<-start
			moved[c], _, errs[c] = partitions.Convert(ctx, db, schema, "t", season)
		})
	}
	close(start)
	wg.Wait()
	n := 0
	for c := range callers {
		if errs[c] != nil {
			t.Errorf("caller %d: %v", c, errs[c])
		}
		if moved[c] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d callers report moved, want 1", n)
	}
}
