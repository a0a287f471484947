package main

// Hung dependencies, end to end against the real binary: MariaDB or the
// upstream Redis behind a faults.Gate that stalls (connections stay open,
// nothing gets through either way), the way a hung server or a black-holed
// network looks. The sidecar must keep the paths that do not need the hung
// dependency at their normal latency (DESIGN invariant 7), stay ready, and
// say that it is degraded.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
)

// stallFor is how long the MariaDB stall lasts: longer than every timeout
// of the sidecar's MariaDB calls, so a path that waits on one shows.
const stallFor = 20 * time.Second

// stallBudget is the latency every cached request must stay under during
// a stall.
const stallBudget = time.Second

// stallRig is the binary with its MariaDB and its private redis-server each
// behind a Gate, an admin listener, an active season and a student whose
// cards are cached.
type stallRig struct {
	t        *testing.T
	sc       *sidecar
	db, rdb  *faults.Gate
	admin    string
	c, adm   *goredis.Client
	l        *ledger
	dsn      string // MariaDB without the Gate
	queueDir string
}

const stallSeason = "SEASON-2026"

func startStallRig(t *testing.T, extra ...string) *stallRig {
	t.Helper()
	e := newTestEnv(t)
	dsn, db := proxiedDSN(t, e.DSN)
	redis := faults.StartRedis(t)
	rdb := faults.NewGate(t, redis.Addr())
	admin := "127.0.0.1:" + strconv.Itoa(faults.FreePort(t))
	queueDir := t.TempDir()
	sc := startSidecar(t, dsn, rdb.Addr(), e.Prefix, queueDir, append([]string{"--admin-listen", admin}, extra...)...)
	r := &stallRig{t: t, sc: sc, db: db, rdb: rdb, admin: "http://" + admin, l: newLedger(), dsn: e.DSN, queueDir: queueDir}
	r.c = goredis.NewClient(&goredis.Options{Addr: sc.Addr, Protocol: 2, MaxRetries: -1, PoolSize: 4,
		DialTimeout: time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	r.adm = goredis.NewClient(&goredis.Options{Addr: sc.Addr, Protocol: 3, MaxRetries: -1, PoolSize: 2,
		DialTimeout: time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	t.Cleanup(func() { r.c.Close(); r.adm.Close() })
	createSeason(t, r.adm, stallSeason)
	if err := faults.WaitPort(admin, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return r
}

// warm reviews player's questions (due in the past, so SRS.DUE lists them)
// and reads the due list once: the student is cached.
func (r *stallRig) warm(player string, questions int) {
	r.t.Helper()
	now := time.Now().UnixMilli()
	for i := range questions {
		if _, err := review(r.c, r.l, stallSeason, player, fmt.Sprintf("q%d", i), 1, reviewOpts{At: now - int64(i+1)*3_600_000}); err != nil {
			r.t.Fatalf("warm-up review: %v", err)
		}
	}
	if _, err := r.c.Do(context.Background(), "SRS.DUE", player, stallSeason).Result(); err != nil {
		r.t.Fatalf("warm-up SRS.DUE: %v", err)
	}
}

// status sends SRS.STATUS and returns its reply and how long it took.
func (r *stallRig) status() (map[string]any, time.Duration, error) {
	start := time.Now()
	v, err := r.adm.Do(context.Background(), "SRS.STATUS").Result()
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	m, ok := replyMap(v)
	if !ok {
		return nil, took, fmt.Errorf("SRS.STATUS reply %v", v)
	}
	return m, took, nil
}

func (r *stallRig) readyz() (int, string, time.Duration) {
	start := time.Now()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(r.admin + "/readyz")
	if err != nil {
		return 0, err.Error(), time.Since(start)
	}
	defer resp.Body.Close()
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode, strings.TrimSpace(string(buf[:n])), time.Since(start)
}

// latencies collects durations and summarises them.
type latencies []time.Duration

func (l latencies) summary() string {
	if len(l) == 0 {
		return "no samples"
	}
	s := slices.Clone(l)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(s), q(0.50).Round(time.Microsecond),
		q(0.99).Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
}

func (l latencies) over(d time.Duration) int {
	n := 0
	for _, x := range l {
		if x > d {
			n++
		}
	}
	return n
}

// TestMariaDBStall: MariaDB hangs for 20 s. Cached SRS.DUE and SRS.REVIEW
// of a student loaded before the stall answer within normal latency all
// along (each under a second; the p99 is logged); /readyz stays 200; SRS.STATUS
// answers promptly and shows degraded_mariadb; a student the cache lacks is
// refused with STOREDOWN within 3 s; after the stall the queue drains and
// the audit is clean.
func TestMariaDBStall(t *testing.T) {
	t.Parallel()
	r := startStallRig(t)
	r.warm("stu", 6)
	// Latency before the stall, for comparison.
	var before latencies
	for i := range 50 {
		start := time.Now()
		if _, err := r.c.Do(context.Background(), "SRS.DUE", "stu", stallSeason).Result(); err != nil {
			t.Fatalf("SRS.DUE before the stall: %v", err)
		}
		before = append(before, time.Since(start))
		start = time.Now()
		if _, err := review(r.c, r.l, stallSeason, "stu", fmt.Sprintf("q%d", i%6), 3, reviewOpts{}); err != nil {
			t.Fatalf("SRS.REVIEW before the stall: %v", err)
		}
		before = append(before, time.Since(start))
	}

	r.db.Stall()
	stallAt := time.Now()
	// A student the cache lacks needs MariaDB: refused (STOREDOWN) within a
	// deadline, not left hanging for the whole stall. On its own client, so
	// the cached traffic below is not held up.
	type coldResult struct {
		what string
		err  error
		took time.Duration
	}
	cold := make(chan coldResult, 2)
	coldClient := goredis.NewClient(&goredis.Options{Addr: r.sc.Addr, Protocol: 2, MaxRetries: -1, PoolSize: 2,
		ReadTimeout: stallFor, WriteTimeout: stallFor})
	defer coldClient.Close()
	for _, args := range [][]any{
		{"SRS.DUE", "cold", stallSeason},
		{"SRS.REVIEW", "cold", stallSeason, "q0", 3},
	} {
		go func() {
			time.Sleep(3 * time.Second) // the stall is well under way
			start := time.Now()
			err := coldClient.Do(context.Background(), args...).Err()
			cold <- coldResult{args[0].(string), err, time.Since(start)}
		}()
	}
	var due, rev, status, ready latencies
	var degradedAt time.Duration
	var failures []string
	nextCheck := time.Now()
	for i := 0; time.Since(stallAt) < stallFor; i++ {
		start := time.Now()
		_, err := r.c.Do(context.Background(), "SRS.DUE", "stu", stallSeason).Result()
		due = append(due, time.Since(start))
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s SRS.DUE: %v", time.Since(stallAt).Round(time.Millisecond), err))
		}
		start = time.Now()
		_, err = review(r.c, r.l, stallSeason, "stu", fmt.Sprintf("q%d", i%6), 1+i%4, reviewOpts{})
		rev = append(rev, time.Since(start))
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s SRS.REVIEW: %v", time.Since(stallAt).Round(time.Millisecond), err))
		}
		if time.Now().Before(nextCheck) {
			continue
		}
		nextCheck = time.Now().Add(500 * time.Millisecond)
		code, body, took := r.readyz()
		ready = append(ready, took)
		if code != http.StatusOK {
			failures = append(failures, fmt.Sprintf("%s /readyz: %d %q", time.Since(stallAt).Round(time.Millisecond), code, body))
		}
		st, took, err := r.status()
		status = append(status, took)
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("%s SRS.STATUS: %v", time.Since(stallAt).Round(time.Millisecond), err))
		case degradedAt == 0 && st["degraded_mariadb"] == true:
			degradedAt = time.Since(stallAt)
			t.Logf("SRS.STATUS %s into the stall: %v", degradedAt.Round(time.Millisecond), st)
		}
	}
	code, body, _ := r.readyz()
	t.Logf("/readyz at the end of the stall: %d %q", code, body)
	if v := degradedGauge(t, r.admin, "mariadb"); v != 1 {
		t.Errorf("srsproxy_degraded{dependency=\"mariadb\"} = %v at the end of the stall, want 1", v)
	}
	r.db.Restore()

	t.Logf("before the stall (SRS.DUE and SRS.REVIEW): %s", before.summary())
	t.Logf("during the %s MariaDB stall: SRS.DUE %s; SRS.REVIEW %s; SRS.STATUS %s; /readyz %s",
		stallFor, due.summary(), rev.summary(), status.summary(), ready.summary())
	for _, f := range failures[:min(len(failures), 20)] {
		t.Errorf("during the stall: %s", f)
	}
	if len(failures) > 20 {
		t.Errorf("… %d failures in all", len(failures))
	}
	for _, c := range []struct {
		what string
		l    latencies
	}{{"SRS.DUE", due}, {"SRS.REVIEW", rev}, {"SRS.STATUS", status}, {"/readyz", ready}} {
		if n := c.l.over(stallBudget); n > 0 {
			t.Errorf("%s: %d of %d requests took over %s during the MariaDB stall (%s)", c.what, n, len(c.l), stallBudget, c.l.summary())
		}
	}
	for range 2 {
		c := <-cold
		t.Logf("%s of a student not cached, during the stall: %v after %s", c.what, c.err, c.took.Round(time.Millisecond))
		if c.err == nil || !strings.HasPrefix(c.err.Error(), "STOREDOWN") || c.took > 3*time.Second {
			t.Errorf("%s of a student not cached during the MariaDB stall: %v after %s, want STOREDOWN within 3s",
				c.what, c.err, c.took.Round(time.Millisecond))
		}
	}
	if degradedAt == 0 {
		t.Errorf("SRS.STATUS never showed degraded_mariadb during the %s stall", stallFor)
	} else {
		t.Logf("degraded_mariadb shown %s after the stall began", degradedAt.Round(time.Millisecond))
	}

	// Back: the degradation clears, the queue drains, nothing was lost.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _, err := r.status()
		if err == nil && st["degraded_mariadb"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("degraded_mariadb still set 30s after the stall ended: %v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := openStore(t, r.dsn)
	waitDrained(t, st, r.l.acked(), r.queueDir)
	auditClean(t, st, r.l.acked())
}

// TestRedisStall: the upstream Redis hangs. The breaker opens within about
// --redis-timeout × --breaker-failures of sequential SRS.DUE, after which
// SRS.DUE is served from MariaDB in Safe Mode, SRS.STATUS answers (degraded
// redis) and /readyz stays 200.
func TestRedisStall(t *testing.T) {
	t.Parallel()
	const timeout, failures = 200 * time.Millisecond, 3
	r := startStallRig(t, "--redis-timeout", timeout.String(), "--breaker-failures", strconv.Itoa(failures),
		"--breaker-open", "1m", "--safe-rpm", "60000", "--safe-user-interval", "1ns")
	r.warm("stu", 6)
	st := openStore(t, r.dsn)
	waitDrained(t, st, r.l.acked(), r.queueDir) // Safe Mode reads MariaDB

	r.rdb.Stall()
	stallAt := time.Now()
	var opened time.Duration
	var calls latencies
	for sent := 1; ; sent++ {
		start := time.Now()
		err := r.c.Do(context.Background(), "SRS.DUE", "stu", stallSeason).Err()
		calls = append(calls, time.Since(start))
		if err != nil && !strings.HasPrefix(err.Error(), "BUSY ") {
			t.Fatalf("SRS.DUE %d during the Redis stall: %v", sent, err)
		}
		// The breaker's gauge, not SRS.STATUS: reading it does no I/O, so
		// the time measured is the SRS.DUE calls'.
		samples, _, _ := scrape(t, r.admin)
		if b := find(samples, "srsproxy_breaker_state", nil); len(b) == 1 && b[0].value == 2 {
			opened = time.Since(stallAt)
			s, took, serr := r.status()
			if serr != nil {
				t.Fatalf("SRS.STATUS during the Redis stall: %v", serr)
			}
			t.Logf("breaker open after %d sequential SRS.DUE, %s after the stall began (SRS.DUE latencies %s); SRS.STATUS (%s): %v",
				sent, opened.Round(time.Millisecond), calls.summary(), took.Round(time.Millisecond), s)
			if took > stallBudget {
				t.Errorf("SRS.STATUS took %s during the Redis stall", took)
			}
			if s["degraded_redis"] != true || s["breaker_state"] != "open" {
				t.Errorf("SRS.STATUS with the breaker open: degraded_redis %v, breaker_state %v", s["degraded_redis"], s["breaker_state"])
			}
			break
		}
		if time.Since(stallAt) > 30*time.Second {
			t.Fatalf("breaker not open 30s into the Redis stall (%d SRS.DUE sent)", sent)
		}
	}
	if limit := timeout*failures + time.Second; opened > limit {
		t.Errorf("breaker opened %s after the stall began, want within --redis-timeout × --breaker-failures + slack = %s",
			opened.Round(time.Millisecond), limit)
	}
	var safe latencies
	for range 5 {
		start := time.Now()
		v, err := r.c.Do(context.Background(), "SRS.DUE", "stu", stallSeason).Result()
		safe = append(safe, time.Since(start))
		if err != nil {
			t.Fatalf("SRS.DUE in Safe Mode: %v", err)
		}
		m, _ := replyMap(v)
		items, _ := m["items"].([]any)
		if m["degraded"] != int64(1) || len(items) != 6 {
			t.Errorf("SRS.DUE in Safe Mode: degraded %v, %d items, want 1 and 6: %v", m["degraded"], len(items), v)
		}
	}
	t.Logf("SRS.DUE in Safe Mode: %s", safe.summary())
	if n := safe.over(stallBudget); n > 0 {
		t.Errorf("%d Safe Mode SRS.DUE over %s", n, stallBudget)
	}
	if code, body, _ := r.readyz(); code != http.StatusOK || !strings.Contains(body, "safe mode") {
		t.Errorf("/readyz during the Redis stall: %d %q, want 200 and safe mode", code, body)
	}
	r.rdb.Restore()
}
