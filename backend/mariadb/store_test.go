package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/srsproxy/srsproxy/partitions"
	"github.com/srsproxy/srsproxy/srs"
)

func TestOpenCreatesDatabaseAndMigratesIdempotently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, schema := testDSN(t) // the database does not exist yet
	for i := range 2 {
		s, err := Open(ctx, dsn, nil)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if s.Schema() != schema {
			t.Errorf("Schema() = %q, want %q", s.Schema(), schema)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		var versions, tables int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_version").Scan(&versions); err != nil {
			t.Fatal(err)
		}
		if versions != len(migrations) {
			t.Errorf("open %d: %d schema_version rows, want %d", i, versions, len(migrations))
		}
		err = s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ('seasons', 'cards', 'review_log')`, schema).Scan(&tables)
		if err != nil || tables != 3 {
			t.Errorf("open %d: %d tables, %v", i, tables, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenConcurrent starts several sidecars on one fresh database at once:
// the migration lock lets each of them open and the schema is migrated once.
func TestOpenConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	stores := make(chan *Store, 4)
	for range 4 {
		go func() {
			s, err := Open(ctx, dsn, nil)
			if err != nil {
				t.Error(err)
			}
			stores <- s
		}()
	}
	for range 4 {
		if s := <-stores; s != nil {
			var versions int
			if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_version").Scan(&versions); err != nil || versions != len(migrations) {
				t.Errorf("schema_version rows = %d, %v", versions, err)
			}
			s.Close()
		}
	}
}

func TestOpenRefusesBadDatabaseName(t *testing.T) {
	t.Parallel()
	// An unreachable address: the name must be refused before any connection.
	for _, dsn := range []string{
		"root@tcp(127.0.0.1:1)/",
		"root@tcp(127.0.0.1:1)/srs-test",
		"root@tcp(127.0.0.1:1)/srs`x",
		"root@tcp(127.0.0.1:1)/" + strings.Repeat("a", 65),
	} {
		if _, err := Open(context.Background(), dsn, nil); !errors.Is(err, partitions.ErrInvalidIdent) {
			t.Errorf("Open(%q) err = %v, want ErrInvalidIdent", dsn, err)
		}
	}
}

func TestCreateSeason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const name = "SEASON-2026-FALL"

	got, err := s.CreateSeason(ctx, srs.Season{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if !got.PartitionCreated || got.CreatedAt.IsZero() {
		t.Errorf("created season = %+v, want partition_created and created_at set", got)
	}
	for _, table := range partitionedTables {
		var n int
		err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.PARTITIONS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_NAME = 'p_SEASON_2026_FALL'
			AND PARTITION_METHOD = 'LIST COLUMNS' AND PARTITION_DESCRIPTION = '''SEASON-2026-FALL'''`,
			s.Schema(), table).Scan(&n)
		if err != nil || n != 1 {
			t.Errorf("%s: partition rows %d, %v", table, n, err)
		}
		if created, err := partitions.Ensure(ctx, s.DB(), s.Schema(), table, name); err != nil || created {
			t.Errorf("Ensure on existing %s partition = %v, %v; want false, nil", table, created, err)
		}
	}
	if _, err := s.CreateSeason(ctx, srs.Season{Name: name}); !errors.Is(err, srs.ErrSeasonExists) {
		t.Errorf("second CreateSeason err = %v, want ErrSeasonExists", err)
	}
	if _, err := s.CreateSeason(ctx, srs.Season{Name: "SEASON-2026'; DROP TABLE cards; --"}); !errors.Is(err, srs.ErrInvalidSeasonName) {
		t.Errorf("invalid name err = %v", err)
	}
	if _, err := s.Season(ctx, "SEASON-1999"); !errors.Is(err, srs.ErrUnknownSeason) {
		t.Errorf("Season(unknown) err = %v", err)
	}
	if err := s.UpdateSeason(ctx, srs.Season{Name: "SEASON-1999"}); !errors.Is(err, srs.ErrUnknownSeason) {
		t.Errorf("UpdateSeason(unknown) err = %v", err)
	}
	if n, err := s.CountCards(ctx, name); err != nil || n != 0 {
		t.Errorf("CountCards = %d, %v", n, err)
	}
}

func TestCreateSeasonConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := s.CreateSeason(ctx, srs.Season{Name: "SEASON-2026-RACE"})
			errs <- err
		}()
	}
	created := 0
	for range 4 {
		switch err := <-errs; {
		case err == nil:
			created++
		case !errors.Is(err, srs.ErrSeasonExists):
			t.Error(err)
		}
	}
	if created != 1 {
		t.Errorf("%d creates succeeded, want 1", created)
	}
}

func TestSeasonRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	at := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC) // DATETIME(3) keeps milliseconds

	for _, tc := range []struct {
		name   string
		season srs.Season
	}{
		{"defaults", srs.Season{Name: "SEASON-2026-A", Scheduler: srs.DefaultSchedulerConfig()}},
		{"nil steps and params", srs.Season{Name: "SEASON-2026-B"}},
		{"empty steps", srs.Season{Name: "SEASON-2026-C", Scheduler: srs.SchedulerConfig{
			Params: []float64{}, LearningSteps: []time.Duration{}, RelearningSteps: []time.Duration{},
		}}},
		{"every field", srs.Season{
			Name: "SEASON-2026-D", Start: day(2026, 1, 5), End: day(2026, 6, 30),
			IsActive: true, EnableCache: true, AutoArchive: true, ArchivedAt: at, CreatedAt: at.Add(-time.Hour),
			Archive: srs.ArchiveDone, PurgeEligible: true,
			Scheduler: srs.SchedulerConfig{
				Params:           []float64{0.212, 1.2931, 2.3065, 8.2956, 6.4133, 0.8334, 3.0194, 0.001, 1.8722, 0.1666, 0.796, 1.4835, 0.0614, 0.2629, 1.6483, 0.6014, 1.8729, 0.5425, 0.0912, 0.0658, 0.1542},
				DesiredRetention: 0.87,
				LearningSteps:    []time.Duration{30 * time.Second, time.Minute, 10 * time.Minute},
				RelearningSteps:  []time.Duration{15 * time.Minute},
				MaximumInterval:  365,
				EnableFuzz:       true,
				EnableShortTerm:  false,
			},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.CreateSeason(ctx, tc.season)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.season
			want.PartitionCreated = true
			if want.CreatedAt.IsZero() {
				want.CreatedAt = got.CreatedAt
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("created:\n got %+v\nwant %+v", got, want)
			}
			if read, err := s.Season(ctx, want.Name); err != nil || !reflect.DeepEqual(read, want) {
				t.Errorf("Season() = %+v, %v", read, err)
			}

			// Update every mutable field, then the reverse.
			upd := want
			upd.Start, upd.End = day(2027, 2, 1), time.Time{}
			upd.IsActive, upd.EnableCache, upd.AutoArchive = !want.IsActive, !want.EnableCache, !want.AutoArchive
			upd.PartitionCreated = false
			upd.PurgeEligible = !want.PurgeEligible
			upd.Archive = srs.ArchivePurged
			if want.Archive == srs.ArchivePurged {
				upd.Archive = srs.ArchiveNone
			}
			upd.ArchivedAt = time.Time{}
			if want.ArchivedAt.IsZero() {
				upd.ArchivedAt = at
			}
			upd.Scheduler = srs.SchedulerConfig{DesiredRetention: 0.95, LearningSteps: []time.Duration{}, MaximumInterval: 100}
			for _, u := range []srs.Season{upd, upd, want} { // the repeat changes nothing and must not fail
				if err := s.UpdateSeason(ctx, u); err != nil {
					t.Fatal(err)
				}
				if read, err := s.Season(ctx, u.Name); err != nil || !reflect.DeepEqual(read, u) {
					t.Errorf("after update:\n got %+v, %v\nwant %+v", read, err, u)
				}
			}
		})
	}
	all, err := s.Seasons(ctx)
	if err != nil || len(all) != 4 {
		t.Fatalf("Seasons() = %d, %v", len(all), err)
	}
	for i, name := range []string{"SEASON-2026-A", "SEASON-2026-B", "SEASON-2026-C", "SEASON-2026-D"} {
		if all[i].Name != name {
			t.Errorf("Seasons()[%d] = %s, want %s", i, all[i].Name, name)
		}
	}
}

func TestSeasonArchiveStateChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.CreateSeason(ctx, srs.Season{Name: "SEASON-2026", Archive: "gone"}); err == nil {
		t.Error("CreateSeason accepted an unknown archive state")
	}
	newSeason(t, s, "SEASON-2026")
	for _, st := range []srs.ArchiveState{srs.ArchiveInProgress, srs.ArchiveDone, srs.ArchivePurged, srs.ArchiveNone} {
		markSeason(t, s, "SEASON-2026", st)
		if se, err := s.Season(ctx, "SEASON-2026"); err != nil || se.Archive != st {
			t.Errorf("Archive = %q, %v; want %q", se.Archive, err, st)
		}
	}
	if err := s.UpdateSeason(ctx, srs.Season{Name: "SEASON-2026", Archive: "ARCHIVED"}); err == nil {
		t.Error("UpdateSeason accepted an unknown archive state")
	}
}

// TestMigrateFromVersion1 opens a database left at schema version 1 by an
// older srsproxy: the new columns arrive with their defaults and the jobs
// table with them, and the data stays.
func TestMigrateFromVersion1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, schema := testDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+schema); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE "+schema); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range append(migrations[0].stmts,
		"CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY, applied_at DATETIME(3) NOT NULL DEFAULT UTC_TIMESTAMP(3))",
		"INSERT INTO schema_version (version) VALUES (1)",
		`INSERT INTO seasons (name, is_active, partition_created, created_at, scheduler)
			VALUES ('SEASON-2020', TRUE, TRUE, UTC_TIMESTAMP(3), '{}')`) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, dsn, nil)
	se, err := s.Season(ctx, "SEASON-2020")
	if err != nil || !se.IsActive || se.Archive != srs.ArchiveNone || se.PurgeEligible {
		t.Errorf("migrated season = %+v, %v", se, err)
	}
	if _, ok, err := s.Job(ctx, "none"); err != nil || ok {
		t.Errorf("jobs table: %v, %v", ok, err)
	}
	var versions int
	if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_version").Scan(&versions); err != nil || versions != len(migrations) {
		t.Errorf("schema_version rows = %d, %v", versions, err)
	}
}
