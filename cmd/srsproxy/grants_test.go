package main

// Least privilege: a sidecar whose MariaDB user has exactly the grants the
// README and docs/DEPLOY.md list runs the whole season lifecycle.

import (
	"context"
	"database/sql"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

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

func TestLeastPrivilegeSeasonLifecycle(t *testing.T) {
	t.Parallel()
	privs := documentedGrants(t, "../../README.md")
	if deploy := documentedGrants(t, "../../docs/DEPLOY.md"); !slices.Equal(privs, deploy) {
		t.Fatalf("README grants %v, docs/DEPLOY.md grants %v", privs, deploy)
	}
	for _, p := range privs {
		if p == "ALL" || p == "ALL PRIVILEGES" || p == "SUPER" || p == "GRANT OPTION" {
			t.Fatalf("the documented grants include %s", p)
		}
	}

	e := newTestEnv(t)
	root, err := mysql.ParseDSN(e.DSN)
	if err != nil {
		t.Fatal(err)
	}
	db := root.DBName
	admin, err := sql.Open("mysql", strings.TrimSuffix(e.DSN, db))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	user, pass := randomName("srs_lp_"), randomName("pw")
	for _, stmt := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + pass + "'",
		"GRANT " + strings.Join(privs, ", ") + " ON `" + db + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	// Exactly those: nothing global, nothing on another database.
	var grants []string
	rows, err := admin.Query("SHOW GRANTS FOR '" + user + "'@'%'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var g string
		rows.Scan(&g)
		grants = append(grants, g)
	}
	rows.Close()
	t.Logf("grants of the sidecar's user: %v", grants)

	restricted := *root
	restricted.User, restricted.Passwd = user, pass
	e.DSN = restricted.FormatDSN()
	// The sidecar creates its database (CREATE on srs.* covers it), migrates
	// the schema and adds the season's partitions as that user.
	m, _ := seasonsMain(t, e, e.DSN, "")
	c := client(t, m.Addr(), 3)
	const season, next = "SEASON-2025", "SEASON-2026"
	createSeason(t, c, season)
	createSeason(t, c, next)

	l := newLedger()
	lc := loadClient(m.Addr())
	defer lc.Close()
	for _, r := range []struct{ player, question string }{{"alice", "q1"}, {"alice", "q2"}, {"bob", "q1"}, {"alice", "q1"}} {
		if _, err := review(lc, l, season, r.player, r.question, 3, reviewOpts{}); err != nil {
			t.Fatalf("review as the restricted user: %v", err)
		}
	}
	st := openStore(t, e.DSN)
	waitDrained(t, st, l.acked(), m.Config.QueueDir)
	mustDo(t, c, "SRS.DUE", "alice", season)

	final := rebuild(t, c, season)
	t.Logf("SRS.REBUILD as %s: %v", user, final)
	rec := asMap(t, mustDo(t, c, "SRS.RECONCILE", season))
	if num(rec["sampled"]) < 1 || num(rec["discrepancies"]) != 0 {
		t.Errorf("SRS.RECONCILE as the restricted user: %v", rec)
	}

	mustDo(t, c, "SRS.SEASON", "DEACTIVATE", season)
	rep := asMap(t, mustDo(t, c, "SRS.ARCHIVE", season, "CONFIRM"))
	if rep["cards_archived"] != int64(3) || rep["log_rows_archived"] != int64(4) {
		t.Errorf("SRS.ARCHIVE as the restricted user: %v, want 3 cards and 4 log rows", rep)
	}
	if card := asMap(t, mustDo(t, c, "SRS.CARD", "alice", season, "q1")); card["reps"] != int64(2) {
		t.Errorf("SRS.CARD from the archive: %v", card)
	}
	info := asMap(t, mustDo(t, c, "SRS.ARCHIVE", "INFO", season))
	archivedAt := time.UnixMilli(info["archived_at"].(int64))

	// The daily retention job (as the restricted user, its clock past the
	// retention) flags the archive; then the sidecar purges it.
	eng, _ := clockEngine(t, e, "retention-job", func() time.Time { return archivedAt.Add(3*engine.Year + time.Hour) })
	if flagged, err := eng.FlagRetention(context.Background()); err != nil || !slices.Equal(flagged, []string{season}) {
		t.Fatalf("retention job as the restricted user: flagged %v (%v)", flagged, err)
	}
	if got := mustDo(t, c, "SRS.ARCHIVE", "PURGE", season, "CONFIRM"); got != "OK" {
		t.Fatalf("SRS.ARCHIVE PURGE as the restricted user: %v", got)
	}
	if info := asMap(t, mustDo(t, c, "SRS.ARCHIVE", "INFO", season)); info["archive_state"] != string(srs.ArchivePurged) {
		t.Errorf("SRS.ARCHIVE INFO after the purge: %v", info)
	}
	// The other season still serves.
	if _, err := review(lc, l, next, "alice", "q1", 4, reviewOpts{}); err != nil {
		t.Fatalf("review in %s after the purge: %v", next, err)
	}
}
