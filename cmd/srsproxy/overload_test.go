package main

// Overload is not an outage (issue 11): many more concurrent SRS.DUE
// connections than the sidecar has upstream Redis connections, against a
// healthy private redis-server. Waiting for the pool or in the sidecar's own
// admission queue must never count as a Redis failure: the breaker stays
// closed, nothing is served degraded from MariaDB, and what cannot be served
// in time is shed with a retryable TRYAGAIN.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
)

const (
	overloadSeason  = "SEASON-2026"
	overloadPool    = 8   // --redis-pool-size
	overloadClients = 500 // concurrent client connections, ~60× the pool
	overloadEach    = 40  // SRS.DUE per connection
	overloadPlayers = 25  // cached students the load reads
	overloadTime    = 60 * time.Second
)

// shedPrefix starts the reply to a request shed by admission control; a
// duration follows.
const shedPrefix = "TRYAGAIN sidecar overloaded; retry in "

// overloadResult is what one SRS.DUE got.
type overloadResult struct {
	latency  time.Duration
	shed     bool // TRYAGAIN … retry in …
	degraded bool // served from MariaDB (Safe Mode)
	err      error
}

func TestOverloadIsNotAnOutage(t *testing.T) {
	t.Parallel()
	redis := faults.StartRedis(t)
	e := newTestEnv(t)
	e.Redis = redis.Addr()
	m, logPath := startQuietMain(t, e, "--redis-pool-size", fmt.Sprint(overloadPool))
	adm := client(t, m.Addr(), 2)
	createSeason(t, adm, overloadSeason)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	players := make([]string, overloadPlayers)
	for i := range players {
		players[i] = fmt.Sprintf("student%02d", i)
		for q := range 3 {
			mustDo(t, adm, "SRS.REVIEW", players[i], overloadSeason, fmt.Sprintf("q%d", q), "3",
				"AT", now-int64(q+1)*3_600_000, "ID", fmt.Sprintf("warm-%d-%d", i, q))
		}
		mustDo(t, adm, "SRS.DUE", players[i], overloadSeason, "AT", now+86_400_000*30) // cached
	}
	before := breakerStateOf(t, adm)
	if before != "closed" {
		t.Fatalf("breaker %s before the load", before)
	}

	// One connection per worker; no client-side retries, so every shed reply is seen.
	c := goredis.NewClient(&goredis.Options{Addr: m.Addr(), Protocol: 2, MaxRetries: -1, PoolSize: overloadClients,
		MinIdleConns: overloadClients, PoolTimeout: 30 * time.Second, DialTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	t.Cleanup(func() { c.Close() })

	// Watch the breaker while the load runs: it must never leave closed.
	stop := make(chan struct{})
	var states []string
	watched := make(chan struct{})
	w := client(t, m.Addr(), 2)
	go func() {
		defer close(watched)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				st, err := w.Do(ctx, "SRS.STATUS").Result()
				if err != nil {
					states = append(states, "error: "+err.Error())
					continue
				}
				states = append(states, fmt.Sprint(flatField(st, "breaker_state")))
			}
		}
	}()

	deadline := time.Now().Add(overloadTime)
	results := make([][]overloadResult, overloadClients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range overloadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			player := players[w%len(players)]
			for range overloadEach {
				if time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				v, err := c.Do(ctx, "SRS.DUE", player, overloadSeason, "LIMIT", "20", "AT", now+86_400_000*30).Result()
				r := overloadResult{latency: time.Since(t0)}
				switch {
				case err != nil && strings.HasPrefix(err.Error(), shedPrefix):
					r.shed = true
				case err != nil:
					r.err = err
				default:
					r.degraded = dueDegraded(v)
				}
				var hint time.Duration
				if r.shed { // a well-behaved client waits as told
					if hint, err = time.ParseDuration(strings.TrimPrefix(err.Error(), shedPrefix)); err != nil {
						r.shed, r.err = false, fmt.Errorf("retry hint: %w", err)
					}
				}
				results[w] = append(results[w], r)
				time.Sleep(hint)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	<-watched

	var all []overloadResult
	for _, rs := range results {
		all = append(all, rs...)
	}
	var lat, served []time.Duration
	var shed, degraded int
	var errs []error
	for _, r := range all {
		lat = append(lat, r.latency)
		switch {
		case r.shed:
			shed++
			continue
		case r.degraded:
			degraded++
		case r.err != nil:
			errs = append(errs, r.err)
			continue
		}
		served = append(served, r.latency)
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[min(len(d)-1, int(p*float64(len(d))))]
	}
	t.Logf("%d SRS.DUE from %d connections over a pool of %d in %s (%.0f/s, %.0f served/s): all p50 %s p99 %s; served p50 %s p99 %s max %s; shed %d (%.2f%%), degraded %d, errors %d",
		len(all), overloadClients, overloadPool, elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(),
		float64(len(served))/elapsed.Seconds(), pct(lat, 0.50), pct(lat, 0.99), pct(served, 0.50), pct(served, 0.99), pct(served, 1),
		shed, 100*float64(shed)/float64(len(all)), degraded, len(errs))
	shedMetric := metricSum(t, m, "srsproxy_shed_total", "")
	t.Logf("srsproxy_shed_total %v (queue_full %v, wait %v, pool %v); %+v; SRS.STATUS polled %d times",
		shedMetric, metricSum(t, m, "srsproxy_shed_total", `reason="queue_full"`), metricSum(t, m, "srsproxy_shed_total", `reason="wait"`),
		metricSum(t, m, "srsproxy_shed_total", `reason="pool"`), m.engine.Admission(), len(states))

	if len(all) < overloadClients {
		t.Fatalf("only %d requests ran", len(all))
	}
	if len(errs) > 0 {
		t.Fatalf("%d requests failed other than with TRYAGAIN, first: %v", len(errs), errs[0])
	}
	if degraded > 0 {
		t.Fatalf("%d replies were degraded (served from MariaDB): overload moved load to Safe Mode", degraded)
	}
	for i, st := range states {
		if st != "closed" {
			t.Fatalf("SRS.STATUS poll %d: breaker_state %q, want closed throughout", i, st)
		}
	}
	if st := breakerStateOf(t, adm); st != "closed" {
		t.Fatalf("breaker %s after the load", st)
	}
	if n := metricSum(t, m, "srsproxy_safe_mode_requests_total", ""); n != 0 {
		t.Fatalf("srsproxy_safe_mode_requests_total = %v, want 0", n)
	}
	if shedMetric < float64(shed) {
		t.Fatalf("srsproxy_shed_total %v < %d shed replies seen", shedMetric, shed)
	}
	if lines := logLines(logPath, "SAFE MODE"); len(lines) > 0 {
		t.Fatalf("the sidecar logged Safe Mode under overload: %s", lines[0])
	}
	// Still healthy: a request after the load is served from the cache.
	if v, err := adm.Do(ctx, "SRS.DUE", players[0], overloadSeason).Result(); err != nil {
		t.Fatalf("after the load: %v", err)
	} else if dueDegraded(v) {
		t.Fatal("after the load: degraded")
	}
}

// breakerStateOf is SRS.STATUS's breaker_state.
func breakerStateOf(t *testing.T, c *goredis.Client) string {
	t.Helper()
	return fmt.Sprint(statusMap(t, c)["breaker_state"])
}

// flatField is a field of a RESP2 flat (field, value, …) reply; nil when
// absent. Safe off the test's goroutine (no t.Fatal).
func flatField(v any, name string) any {
	list, _ := v.([]any)
	for i := 0; i+1 < len(list); i += 2 {
		if list[i] == name {
			return list[i+1]
		}
	}
	return nil
}

// dueDegraded reports an SRS.DUE reply's degraded flag.
func dueDegraded(v any) bool {
	d := flatField(v, "degraded")
	return d == int64(1) || d == true
}
