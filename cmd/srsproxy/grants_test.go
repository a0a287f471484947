package main

// Least privilege: a sidecar whose MariaDB user has exactly the grants the
// README and docs/DEPLOY.md list runs the whole season lifecycle, and
// without any one of them it does not.

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/engine"
	"github.com/srsproxy/srsproxy/srs"
)

// grantRE finds the documented GRANT on the sidecar's database.
var grantRE = regexp.MustCompile(`(?s)GRANT\s+([A-Z_, \n]+?)\s+ON\s+srs\.\*\s+TO`)

// documentedGrants returns the privileges of the GRANT statement in file.
func documentedGrants(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	all := grantRE.FindAllStringSubmatch(string(b), -1)
	if len(all) != 1 {
		t.Fatalf("%s: want exactly one 'GRANT … ON srs.* TO' statement, found %d", file, len(all))
	}
	var privs []string
	for _, p := range strings.Split(all[0][1], ",") {
		privs = append(privs, strings.Join(strings.Fields(p), " "))
	}
	slices.Sort(privs)
	return privs
}

// grants returns the documented privileges, the same in both files.
func grants(t *testing.T) []string {
	t.Helper()
	privs := documentedGrants(t, "../../README.md")
	if deploy := documentedGrants(t, "../../docs/DEPLOY.md"); !slices.Equal(privs, deploy) {
		t.Fatalf("README grants %v, docs/DEPLOY.md grants %v", privs, deploy)
	}
	for _, p := range privs {
		if p == "ALL" || p == "ALL PRIVILEGES" || p == "SUPER" || p == "GRANT OPTION" {
			t.Fatalf("the documented grants include %s", p)
		}
	}
	return privs
}

// restrictedEnv is a test environment whose DSN logs in as a new MariaDB
// user holding privs on the test database and nothing else (the database
// itself is not created: the sidecar does that).
func restrictedEnv(t *testing.T, privs []string) testEnv {
	t.Helper()
	e := newTestEnv(t)
	root, err := mysql.ParseDSN(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("mysql", strings.TrimSuffix(e.DSN, root.DBName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	user, pass := randomName("srs_lp_"), randomName("pw")
	for _, stmt := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + pass + "'",
		"GRANT " + strings.Join(privs, ", ") + " ON `" + root.DBName + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	restricted := *root
	restricted.User, restricted.Passwd = user, pass
	e.DSN = restricted.FormatDSN()
	return e
}

// seasonLifecycle runs a season's whole life through a sidecar on e: the
// sidecar creates the database and its schema, two seasons are created and
// activated, reviews are taken and drained, the season is rebuilt and
// reconciled, deactivated, archived, flagged by the retention job and
// purged. It returns the first step that failed.
func seasonLifecycle(t *testing.T, e testEnv) error {
	t.Helper()
	m := &Main{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--admin-listen", "off", "--mysql", e.DSN,
		"--redis", e.Redis, "--redis-prefix", e.Prefix, "--queue-dir", t.TempDir(),
		"--shutdown-timeout", "1s", "--reconcile-every", "8760h"}); err != nil {
		return err
	}
	defer m.Close()
	if err := m.Run(context.Background()); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: m.Addr(), Protocol: 3, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	do := func(args ...any) (any, error) {
		v, err := c.Do(ctx, args...).Result()
		if err != nil {
			return nil, fmt.Errorf("%v: %w", args, err)
		}
		return v, nil
	}
	const season, next = "SEASON-2025", "SEASON-2026"
	for _, s := range []string{season, next} {
		for _, args := range [][]any{{"SRS.SEASON", "CREATE", s, "START", "2026-09-01", "END", "2027-06-30"}, {"SRS.SEASON", "ACTIVATE", s}} {
			if _, err := do(args...); err != nil {
				return err
			}
		}
	}
	for _, r := range []struct{ player, question string }{{"alice", "q1"}, {"alice", "q2"}, {"bob", "q1"}, {"alice", "q1"}} {
		if _, err := do("SRS.REVIEW", r.player, season, r.question, 3); err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(30 * time.Second); m.queue.Stats().Depth > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("drain: %d reviews still queued after 30 s", m.queue.Stats().Depth)
		}
	}
	if _, err := do("SRS.DUE", "alice", season); err != nil {
		return err
	}
	id, err := do("SRS.REBUILD", season)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, err := do("SRS.JOB", id)
		if err != nil {
			return err
		}
		j, _ := replyMap(v)
		if j["state"] == "done" {
			break
		}
		if j["state"] != "running" || time.Now().After(deadline) {
			return fmt.Errorf("rebuild: %v", j)
		}
	}
	v, err := do("SRS.RECONCILE", season)
	if err != nil {
		return err
	}
	if rec, _ := replyMap(v); num(rec["sampled"]) < 1 || num(rec["discrepancies"]) != 0 {
		return fmt.Errorf("SRS.RECONCILE: %v", rec)
	}
	if _, err := do("SRS.SEASON", "DEACTIVATE", season); err != nil {
		return err
	}
	if v, err = do("SRS.ARCHIVE", season, "CONFIRM"); err != nil {
		return err
	}
	if rep, _ := replyMap(v); rep["cards_archived"] != int64(3) || rep["log_rows_archived"] != int64(4) {
		return fmt.Errorf("SRS.ARCHIVE: %v, want 3 cards and 4 log rows", rep)
	}
	if v, err = do("SRS.CARD", "alice", season, "q1"); err != nil {
		return err
	}
	if card, _ := replyMap(v); card["reps"] != int64(2) {
		return fmt.Errorf("SRS.CARD from the archive: %v", card)
	}
	if v, err = do("SRS.ARCHIVE", "INFO", season); err != nil {
		return err
	}
	info, _ := replyMap(v)
	archivedAt := time.UnixMilli(info["archived_at"].(int64))
	// The daily retention job, its clock past the retention, as this user.
	eng, _ := clockEngine(t, e, "retention-job", func() time.Time { return archivedAt.Add(3*engine.Year + time.Hour) })
	if flagged, err := eng.FlagRetention(ctx); err != nil || !slices.Equal(flagged, []string{season}) {
		return fmt.Errorf("retention job: flagged %v (%v)", flagged, err)
	}
	if _, err := do("SRS.ARCHIVE", "PURGE", season, "CONFIRM"); err != nil {
		return err
	}
	if v, err = do("SRS.ARCHIVE", "INFO", season); err != nil {
		return err
	}
	if info, _ := replyMap(v); info["archive_state"] != string(srs.ArchivePurged) {
		return fmt.Errorf("SRS.ARCHIVE INFO after the purge: %v", info)
	}
	if _, err := do("SRS.REVIEW", "alice", next, "q1", 4); err != nil {
		return fmt.Errorf("the other season after the purge: %w", err)
	}
	return nil
}

func TestLeastPrivilegeSeasonLifecycle(t *testing.T) {
	t.Parallel()
	e := restrictedEnv(t, grants(t))
	if err := seasonLifecycle(t, e); err != nil {
		t.Fatalf("season lifecycle as a user with only %v: %v", grants(t), err)
	}
}

// TestLeastPrivilegeEveryGrantNeeded: without any one of the documented
// privileges the lifecycle fails, so the list is no longer than it must be.
func TestLeastPrivilegeEveryGrantNeeded(t *testing.T) {
	t.Parallel()
	privs := grants(t)
	for _, drop := range privs {
		t.Run("without "+drop, func(t *testing.T) {
			t.Parallel()
			e := restrictedEnv(t, slices.DeleteFunc(slices.Clone(privs), func(p string) bool { return p == drop }))
			err := seasonLifecycle(t, e)
			if err == nil {
				t.Fatalf("the season lifecycle succeeded without %s: drop it from the documented grants", drop)
			}
			t.Logf("without %s: %v", drop, err)
		})
	}
}
