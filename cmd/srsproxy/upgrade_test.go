package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// release1Bin returns the previous release's binary (commit eeeb798):
// $SRSPROXY_RELEASE1_BIN (make test builds it), or one built here from git.
func release1Bin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SRSPROXY_RELEASE1_BIN"); p != "" {
		return p
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("sh", "-c", "git -C ../.. archive eeeb798 | tar -x -C "+src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("release 1 source (git archive eeeb798; make test builds bin/srsproxy-release1 instead): %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "srsproxy-release1")
	build := exec.Command("go", "build", "-o", bin, "./cmd/srsproxy")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build release 1: %v\n%s", err, out)
	}
	return bin
}

// startBinary is startSidecar with another binary.
func startBinary(t *testing.T, bin, mysqlDSN, redis, prefix, queueDir string) *sidecar {
	t.Helper()
	s := &sidecar{t: t, bin: bin, QueueDir: queueDir}
	s.args = []string{"--admin-listen", "off", "--mysql", mysqlDSN, "--redis", redis, "--redis-prefix", prefix, "--queue-dir", queueDir}
	s.start()
	return s
}

// isDuplicate reads the duplicate field of a review reply (RESP2 or RESP3).
func isDuplicate(v any) bool {
	m, _ := replyMap(v)
	return m["duplicate"] == int64(1) || m["duplicate"] == true
}

// TestUpgradeFromRelease1: release 1 acknowledges reviews during a MariaDB
// cut and is killed -9 with them in its queue; release 2 starts on the same
// queue directory, database and Redis, reads release 1's queue, migrates the
// schema, drains everything, and answers retries of the ids release 1
// acknowledged (with their original AT) as duplicates. The audit is clean.
func TestUpgradeFromRelease1(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dsn, proxy := proxiedDSN(t, e.DSN)
	qdir := t.TempDir()
	old := startBinary(t, release1Bin(t), dsn, e.Redis, e.Prefix, qdir)
	c := loadClient(old.Addr)
	createSeason(t, client(t, old.Addr, 2), "SEASON-2026")
	l := newLedger()
	// Within release 1's review-id window: release 1 refused older ATs while
	// MariaDB was down (UNCHECKABLE), the bug release 2 fixes.
	at := time.Now().Add(-10 * time.Minute).UnixMilli()
	type sent struct {
		player, question, id string
		at                   int64
	}
	var all []sent
	send := func(c *goredis.Client, i int) {
		s := sent{fmt.Sprintf("u%d", i%4), fmt.Sprintf("q%d", i%3), fmt.Sprintf("r1-%d", i), at + int64(i)*1000}
		if _, err := review(c, l, "SEASON-2026", s.player, s.question, 1+i%4, reviewOpts{ID: s.id, At: s.at}); err != nil {
			t.Fatalf("release 1 review %s: %v", s.id, err)
		}
		all = append(all, s)
	}
	for i := range 24 { // drained by release 1
		send(c, i)
	}
	time.Sleep(500 * time.Millisecond)
	proxy.Cut()
	for i := 24; i < 60; i++ { // acknowledged into release 1's queue, never drained by it
		send(c, i)
	}
	c.Close()
	old.kill()
	proxy.Restore()

	cur := startSidecar(t, dsn, e.Redis, e.Prefix, qdir)
	st := openStore(t, e.DSN)
	waitDrained(t, st, l.acked(), qdir)
	nc := loadClient(cur.Addr)
	defer nc.Close()
	ctx := context.Background()
	for _, s := range all {
		v, err := nc.Do(ctx, "SRS.REVIEW", s.player, "SEASON-2026", s.question, 3, "ID", s.id, "AT", s.at).Result()
		if err != nil || !isDuplicate(v) {
			t.Errorf("release 2's answer to a retry of release 1's %s: %v %v, want a duplicate", s.id, v, err)
		}
	}
	auditClean(t, st, l.acked())
}

// TestRollingUpgrade: a release-1 and a release-2 sidecar serve the same
// students over one Redis and one MariaDB (each with its own cache keys:
// docs/CORE.md §1) while clients send reviews to either and retry some on the
// other one. After both drain, nothing acknowledged is missing and nothing
// is logged twice, and every card equals the replay of its log.
func TestRollingUpgrade(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	old := startBinary(t, release1Bin(t), e.DSN, e.Redis, e.Prefix, t.TempDir())
	createSeason(t, client(t, old.Addr, 2), "SEASON-2026")
	cur := startSidecar(t, e.DSN, e.Redis, e.Prefix, t.TempDir()) // migrates the schema under release 1
	l := newLedger()
	clients := [2]*goredis.Client{loadClient(old.Addr), loadClient(cur.Addr)}
	defer clients[0].Close()
	defer clients[1].Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	retried, dupAnswers := 0, 0
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			player := fmt.Sprintf("s%d", w%3) // two workers per student
			for i := range 40 {
				q := fmt.Sprintf("q%d", rng.IntN(4))
				id := fmt.Sprintf("w%d-%d", w, i)
				at := time.Now().UnixMilli()
				side := rng.IntN(2)
				if _, err := review(clients[side], l, "SEASON-2026", player, q, 1+rng.IntN(4), reviewOpts{ID: id, At: at}); err != nil {
					continue // STALEREVIEW and the like: not acknowledged
				}
				if rng.IntN(4) == 0 { // a retry of the same review on the other release
					v, err := clients[1-side].Do(context.Background(), "SRS.REVIEW", player, "SEASON-2026", q, 3, "ID", id, "AT", at).Result()
					mu.Lock()
					retried++
					if err == nil && isDuplicate(v) {
						dupAnswers++
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	st := openStore(t, e.DSN)
	waitDrained(t, st, l.acked(), old.QueueDir, cur.QueueDir)
	rep, err := Audit(context.Background(), st, l.acked())
	if err != nil {
		t.Fatal(err)
	}
	// Nothing lost, nothing logged twice. Card rows that release 1 wrote last
	// (it folds by newer-wins, not by replaying the log) may differ from the
	// replay until release 1 is gone: a known limit of the upgrade window,
	// reported, not asserted (README "Upgrading").
	if rep.Missing > 0 || rep.Doubled > 0 {
		t.Errorf("rolling upgrade lost or doubled reviews: %s\n%v", rep, rep.Problems)
	}
	t.Logf("rolling upgrade: %s; %d retries across releases, %d answered as duplicates (the others were applied by the "+
		"release whose cache had not seen them yet, and logged once)", rep, retried, dupAnswers)
}
