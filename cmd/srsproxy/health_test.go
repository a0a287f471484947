package main

// /healthz, /readyz, srsproxy_degraded and SRS.STATUS across dependency
// faults, against an in-process sidecar (the rig of safemode_test.go):
// ready means "can serve cached reads and take durable reviews", so a
// MariaDB outage degrades the sidecar without making it unready, and only a
// queue that cannot take reviews does.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// degradedGauge reads srsproxy_degraded{dependency} from /metrics (-1 when absent).
func degradedGauge(t *testing.T, base, dependency string) float64 {
	t.Helper()
	samples, _, _ := scrape(t, base)
	got := find(samples, "srsproxy_degraded", map[string]string{"dependency": dependency})
	if len(got) != 1 {
		return -1
	}
	return got[0].value
}

// statusWithin sends SRS.STATUS and fails the test unless it answers within limit.
func statusWithin(t *testing.T, r *rig, proto int, limit time.Duration) map[string]any {
	t.Helper()
	c := r.c2
	if proto == 3 {
		c = r.c3
	}
	start := time.Now()
	v, err := c.Do(context.Background(), "SRS.STATUS").Result()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("RESP%d SRS.STATUS: %v (after %s)", proto, err, took)
	}
	if took > limit {
		t.Errorf("RESP%d SRS.STATUS took %s, want under %s", proto, took, limit)
	}
	return asMap(t, v)
}

// checkStatusShape checks the health fields of SRS.STATUS and their types.
func checkStatusShape(t *testing.T, proto int, st map[string]any) {
	t.Helper()
	for _, k := range []string{"degraded_redis", "degraded_mariadb", "drain_stalled", "redis_connected"} {
		switch st[k].(type) {
		case bool:
			if proto == 2 {
				t.Errorf("RESP2 %s is a boolean, want an integer", k)
			}
		case int64:
			if proto == 3 {
				t.Errorf("RESP3 %s is an integer, want a boolean", k)
			}
		default:
			t.Errorf("RESP%d SRS.STATUS %s = %T %v", proto, k, st[k], st[k])
		}
	}
	if _, ok := st["drain_oldest_age_ms"].(int64); !ok {
		t.Errorf("RESP%d drain_oldest_age_ms = %T %v, want an integer", proto, st["drain_oldest_age_ms"], st["drain_oldest_age_ms"])
	}
	if proto == 3 {
		if _, ok := st["errors"].(map[any]any); !ok {
			t.Errorf("RESP3 errors = %T, want a map", st["errors"])
		}
	} else if _, ok := st["errors"].([]any); !ok {
		t.Errorf("RESP2 errors = %T, want a flat array", st["errors"])
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > safeDeadline {
			t.Fatalf("%s: not after %s", what, safeDeadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestReadyzMariaDBOutage: with MariaDB cut, /readyz stays 200 and says
// degraded, srsproxy_degraded{dependency="mariadb"} is 1, SRS.STATUS shows
// degraded_mariadb and answers at once (the season list it cannot get is in
// its errors), and cached reviews go on. When MariaDB is back the probe's
// Back signal fires and everything reads healthy again.
func TestReadyzMariaDBOutage(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOpts{adminHTTP: true, proxyMySQL: true})
	if code, body := httpGet(t, r.admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := httpGet(t, r.admin+"/readyz"); code != http.StatusOK || body != "ready" {
		t.Errorf("/readyz healthy: %d %q, want 200 ready", code, body)
	}
	r.review(r.c3, "stu", "q1", 3, 0)
	for _, dep := range []string{"redis", "mariadb"} {
		if v := degradedGauge(t, r.admin, dep); v != 0 {
			t.Errorf("srsproxy_degraded{dependency=%q} = %v healthy, want 0", dep, v)
		}
	}
	if samples, _, _ := scrape(t, r.admin); len(find(samples, "srsproxy_drain_stalled", nil)) != 1 {
		t.Errorf("/metrics has no srsproxy_drain_stalled")
	}
	for _, proto := range []int{2, 3} {
		st := statusWithin(t, r, proto, time.Second)
		checkStatusShape(t, proto, st)
		if truthy(t, st["degraded_redis"]) || truthy(t, st["degraded_mariadb"]) || truthy(t, st["drain_stalled"]) {
			t.Errorf("RESP%d SRS.STATUS healthy: %v", proto, st)
		}
		if errs := asMap(t, st["errors"]); len(errs) != 0 {
			t.Errorf("RESP%d SRS.STATUS errors healthy: %v", proto, errs)
		}
	}
	probe := r.m.engine.StoreProbe()
	if probe == nil {
		t.Fatal("no MariaDB probe")
	}

	r.dbGate.Cut()
	took := waitUntil(t, "srsproxy_degraded{mariadb} 1", func() bool { return degradedGauge(t, r.admin, "mariadb") == 1 })
	t.Logf("MariaDB cut: degraded after %s", took.Round(time.Millisecond))
	code, body := httpGet(t, r.admin+"/readyz")
	if code != http.StatusOK || !strings.Contains(body, "MariaDB") {
		t.Errorf("/readyz with MariaDB cut: %d %q, want 200 and the degradation", code, body)
	}
	for _, proto := range []int{2, 3} {
		st := statusWithin(t, r, proto, time.Second)
		checkStatusShape(t, proto, st)
		if !truthy(t, st["degraded_mariadb"]) || truthy(t, st["degraded_redis"]) || !truthy(t, st["redis_connected"]) {
			t.Errorf("RESP%d SRS.STATUS with MariaDB cut: %v", proto, st)
		}
		if errs := asMap(t, st["errors"]); errs["seasons"] == nil {
			t.Errorf("RESP%d SRS.STATUS errors with MariaDB cut: %v, want seasons", proto, errs)
		}
		t.Logf("RESP%d SRS.STATUS with MariaDB cut: %v", proto, st)
	}
	r.review(r.c2, "stu", "q1", 3, 0) // cached: acknowledged into the queue

	r.dbGate.Restore()
	select {
	case <-probe.Back():
	case <-time.After(safeDeadline):
		t.Fatal("the MariaDB probe never signalled Back")
	}
	waitUntil(t, "srsproxy_degraded{mariadb} 0", func() bool { return degradedGauge(t, r.admin, "mariadb") == 0 })
	if st := statusWithin(t, r, 3, time.Second); truthy(t, st["degraded_mariadb"]) {
		t.Errorf("SRS.STATUS after the restore: %v", st)
	}
	r.drained()
}

// TestStatusAlwaysAnswers: with both Redis and MariaDB hung, SRS.STATUS
// still answers within a second, in both protocols, naming what it could
// not gather; /readyz and /healthz answer at once.
func TestStatusAlwaysAnswers(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOpts{adminHTTP: true, proxyMySQL: true, flags: []string{"--redis-timeout", "200ms"}})
	r.review(r.c3, "stu", "q1", 3, 0)
	r.gate.Stall()
	r.dbGate.Stall()
	for i := range 3 {
		for _, proto := range []int{2, 3} {
			st := statusWithin(t, r, proto, time.Second)
			checkStatusShape(t, proto, st)
			errs := asMap(t, st["errors"])
			if truthy(t, st["redis_connected"]) || errs["redis"] == nil {
				t.Errorf("RESP%d SRS.STATUS %d with Redis hung: %v", proto, i, st)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		start := time.Now()
		code, body := httpGet(t, r.admin+path)
		if code != http.StatusOK || time.Since(start) > 100*time.Millisecond {
			t.Errorf("%s with both dependencies hung: %d %q after %s", path, code, body, time.Since(start))
		}
	}
	waitUntil(t, "degraded_mariadb", func() bool { return truthy(t, statusWithin(t, r, 3, time.Second)["degraded_mariadb"]) })
	r.gate.Restore()
	r.dbGate.Restore()
}

// TestReadyzQueueFull: /readyz is 503 while the queue cannot take reviews
// (MariaDB cut, --queue-max-bytes reached) and ready again once it drains.
func TestReadyzQueueFull(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOpts{adminHTTP: true, proxyMySQL: true, flags: []string{"--queue-max-bytes", "1MiB", "--fsync", "interval"}})
	long := func(p string) string { return p + strings.Repeat("x", 120-len(p)) }
	extra := []any{"SUBJECT", long("s"), "TOPIC", long("t"), "STAGE", long("st")}
	r.review(r.c3, "stu", "q0", 3, 0, extra...)
	r.drained()
	r.dbGate.Cut()
	full := false
	for i := 0; i < 5000 && !full; i++ {
		err := r.c2.Do(context.Background(), "SRS.REVIEW", "stu", safeSeason, long(fmt.Sprintf("q%d-", i%50)), 3, "ID", long(fmt.Sprintf("r%d-", i))).Err()
		switch {
		case err == nil:
		case strings.HasPrefix(err.Error(), "QUEUEFULL"):
			full = true
		default:
			t.Fatalf("review %d with MariaDB cut: %v", i, err)
		}
	}
	if !full {
		t.Fatal("the queue never filled")
	}
	code, body := httpGet(t, r.admin+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "queue") {
		t.Errorf("/readyz with the queue full: %d %q, want 503 and the queue", code, body)
	}
	t.Logf("/readyz with the queue full: %d %q", code, body)
	r.dbGate.Restore()
	took := waitUntil(t, "/readyz ready after the drain", func() bool {
		code, _ := httpGet(t, r.admin+"/readyz")
		return code == http.StatusOK
	})
	t.Logf("ready again %s after MariaDB came back", took.Round(time.Millisecond))
}

// TestStartWithMariaDBDown: a sidecar killed -9 with acknowledged reviews in
// its queue restarts while MariaDB is cut. It starts (issue 10: release 1
// could not, with 736 acknowledged reviews on its disk), serves the cached
// student (the season's settings come from the cache's snapshot) and takes
// reviews, refuses a student the cache lacks with STOREDOWN, and drains
// everything once MariaDB is back.
func TestStartWithMariaDBDown(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dsn, proxy := proxiedDSN(t, e.DSN)
	s := startSidecar(t, dsn, e.Redis, e.Prefix, t.TempDir())
	createSeason(t, client(t, s.Addr, 2), "SEASON-2026")
	l := newLedger()
	c := loadClient(s.Addr)
	for _, q := range []string{"q0", "q1"} {
		if _, err := review(c, l, "SEASON-2026", "u", q, 3, reviewOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Cut()
	if _, err := review(c, l, "SEASON-2026", "u", "q2", 3, reviewOpts{}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.kill()
	start := time.Now()
	s.restart()
	t.Logf("restarted with MariaDB cut in %v", time.Since(start).Round(time.Millisecond))
	c = loadClient(s.Addr)
	defer c.Close()
	ctx := context.Background()
	due, err := c.Do(ctx, "SRS.DUE", "u", "SEASON-2026", "AT", time.Now().Add(time.Hour).UnixMilli()).Result()
	if dm, _ := replyMap(due); err != nil || dm["total_due"] != int64(3) {
		t.Errorf("SRS.DUE of the cached student after a start with MariaDB down: %v %v, want its 3 cards", due, err)
	}
	if _, err := review(c, l, "SEASON-2026", "u", "q3", 3, reviewOpts{}); err != nil {
		t.Errorf("review of the cached student after a start with MariaDB down: %v", err)
	}
	if _, err := c.Do(ctx, "SRS.DUE", "cold", "SEASON-2026").Result(); err == nil || !strings.HasPrefix(err.Error(), "STOREDOWN") {
		t.Errorf("SRS.DUE of a student the cache lacks: %v, want STOREDOWN", err)
	}
	proxy.Restore()
	st := openStore(t, e.DSN)
	took := waitDrained(t, st, l.acked(), s.QueueDir)
	t.Logf("drained %v after MariaDB came back", took.Round(time.Millisecond))
	auditClean(t, st, l.acked())
}
