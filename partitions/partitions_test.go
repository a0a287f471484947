package partitions_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

// testDB creates a database of its own holding one LIST COLUMNS(season)
// table "t" and drops it when the test ends.
func testDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	base := os.Getenv("SRS_TEST_MYSQL")
	if base == "" {
		base = "root@tcp(127.0.0.1:3306)/"
	}
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "srs_test_" + hex.EncodeToString(b)
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+schema)
		db.Close()
	})
	_, err = db.ExecContext(ctx, `CREATE TABLE `+schema+`.t (
		season VARCHAR(48) NOT NULL, id INT NOT NULL, PRIMARY KEY (season, id))
		PARTITION BY LIST COLUMNS(season) (PARTITION p_placeholder VALUES IN (''))`)
	if err != nil {
		t.Fatal(err)
	}
	return db, schema
}

func TestName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ season, want string }{
		{"SEASON-2026", "p_SEASON_2026"},
		{"SEASON-2026-X", "p_SEASON_2026_X"},
		{"SEASON-2026-FALL_A1", "p_SEASON_2026_FALL_A1"},
	} {
		got, err := partitions.Name(tc.season)
		if err != nil || got != tc.want {
			t.Errorf("Name(%q) = %q, %v; want %q", tc.season, got, err, tc.want)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	t.Parallel()
	if got := partitions.QuoteIdent("p_SEASON_2026"); got != "`p_SEASON_2026`" {
		t.Errorf("QuoteIdent = %s", got)
	}
	if got := partitions.QuoteIdent("a`b"); got != "`a``b`" {
		t.Errorf("QuoteIdent = %s", got)
	}
}

// TestInvalidRefusedBeforeSQL passes a nil *sql.DB: any SQL would panic, so
// passing proves the names are refused before the database is touched.
func TestInvalidRefusedBeforeSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bad := []string{
		"", "SEASON-2026'", "SEASON-2026-X'); DROP TABLE t; --", "SEASON-2026-`X`",
		"SEASON-2026 X", "SEASON-2026-x", "season-2026", "SEASON-26",
		"SEASON-2026-" + strings.Repeat("A", 40), "SEASON-2026-A-B", "SEASON-2026\n",
	}
	for _, name := range bad {
		if _, err := partitions.Name(name); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("Name(%q) err = %v", name, err)
		}
		if _, err := partitions.Exists(ctx, nil, "s", "t", name); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("Exists(%q) err = %v", name, err)
		}
		if _, err := partitions.Ensure(ctx, nil, "s", "t", name); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("Ensure(%q) err = %v", name, err)
		}
		if _, err := partitions.ArchiveTable("t", name); !errors.Is(err, srs.ErrInvalidSeasonName) {
			t.Errorf("ArchiveTable(%q) err = %v", name, err)
		}
		if _, stmts, err := partitions.Convert(ctx, nil, "s", "t", name); !errors.Is(err, srs.ErrInvalidSeasonName) || stmts != nil {
			t.Errorf("Convert(%q) = %q, %v", name, stmts, err)
		}
	}
	for _, id := range []string{"", "a`b", "a b", "a.b", "a-b", strings.Repeat("a", 65)} {
		if _, err := partitions.Ensure(ctx, nil, id, "t", "SEASON-2026"); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("Ensure(schema %q) err = %v", id, err)
		}
		if _, err := partitions.Exists(ctx, nil, "s", id, "SEASON-2026"); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("Exists(table %q) err = %v", id, err)
		}
		if _, _, err := partitions.Convert(ctx, nil, id, "t", "SEASON-2026"); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("Convert(schema %q) err = %v", id, err)
		}
		if _, _, err := partitions.Convert(ctx, nil, "s", id, "SEASON-2026"); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("Convert(table %q) err = %v", id, err)
		}
		if _, err := partitions.ArchiveTable(id, "SEASON-2026"); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("ArchiveTable(table %q) err = %v", id, err)
		}
		if _, err := partitions.TableExists(ctx, nil, "s", id); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("TableExists(table %q) err = %v", id, err)
		}
		if _, err := partitions.TableExists(ctx, nil, id, "t"); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("TableExists(schema %q) err = %v", id, err)
		}
	}
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	db, schema := testDB(t)
	ctx := context.Background()
	const season = "SEASON-2026-ENSURE"

	if ok, err := partitions.Exists(ctx, db, schema, "t", season); err != nil || ok {
		t.Fatalf("Exists before = %v, %v", ok, err)
	}
	if created, err := partitions.Ensure(ctx, db, schema, "t", season); err != nil || !created {
		t.Fatalf("first Ensure = %v, %v; want created", created, err)
	}
	if ok, err := partitions.Exists(ctx, db, schema, "t", season); err != nil || !ok {
		t.Fatalf("Exists after = %v, %v", ok, err)
	}
	if created, err := partitions.Ensure(ctx, db, schema, "t", season); err != nil || created {
		t.Fatalf("second Ensure = %v, %v; want existing", created, err)
	}
	// Rows of the season now have a home; rows of another season do not.
	if _, err := db.ExecContext(ctx, "INSERT INTO "+schema+".t VALUES (?, 1)", season); err != nil {
		t.Fatal(err)
	}
	_, err := db.ExecContext(ctx, "INSERT INTO "+schema+".t VALUES ('SEASON-2027', 1)")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1526 {
		t.Fatalf("insert without partition: %v, want error 1526", err)
	}
}

func TestEnsureConcurrent(t *testing.T) {
	t.Parallel()
	db, schema := testDB(t)
	ctx := context.Background()
	const callers = 4
	for i := range 5 {
		season := fmt.Sprintf("SEASON-2026-RACE%d", i)
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			created = make([]bool, callers)
			errs    = make([]error, callers)
		)
		for c := range callers {
			wg.Go(func() {
				<-start
				created[c], errs[c] = partitions.Ensure(ctx, db, schema, "t", season)
			})
		}
		close(start)
		wg.Wait()
		n := 0
		for c := range callers {
			if errs[c] != nil {
				t.Errorf("%s caller %d: %v", season, c, errs[c])
			}
			if created[c] {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d callers report created, want 1", season, n)
		}
	}
}
