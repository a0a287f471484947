package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/internal/faults"
	"github.com/srsproxy/srsproxy/srs"
)

// clusterCache is a Cache on a private 3-master Redis Cluster, given one
// seed address and Cluster: true (the --redis-cluster flag).
func clusterCache(t *testing.T) (*Cache, *faults.Cluster) {
	t.Helper()
	cl := faults.StartCluster(t, 3, 1)
	c, err := New(Options{Addrs: cl.Addrs()[:1], Cluster: true, ReadTimeout: 250 * time.Millisecond,
		WriteTimeout: 250 * time.Millisecond, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, ok := c.Client().(*goredis.ClusterClient); !ok {
		t.Fatalf("Cluster: true with one address gave a %T", c.Client())
	}
	if err := c.LoadScripts(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, cl
}

// seasonKeys counts, per master, the keys of a season (users' keys and the registry).
func seasonKeys(t *testing.T, cl *faults.Cluster, prefix, season string) map[string]int {
	t.Helper()
	masters, err := cl.Masters()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range masters {
		rdb := cl.NodeClient(m)
		for _, pat := range []string{prefix + ":{" + season + "|*", prefix + ":season:{" + season + "}:*"} {
			keys, err := rdb.Keys(context.Background(), pat).Result()
			if err != nil {
				t.Fatal(err)
			}
			out[m] += len(keys)
		}
	}
	return out
}

// TestClusterLoadManyClearSeasonMemory: on a cluster, LoadMany's pipelined
// EVALSHA works even after every node's script cache was flushed (the
// NOSCRIPT fallback), users land on every master, CachedUsers counts them,
// MemoryUsed sums the masters, and ClearSeason deletes the keys on every
// shard.
func TestClusterLoadManyClearSeasonMemory(t *testing.T) {
	t.Parallel()
	c, cl := clusterCache(t)
	ctx := context.Background()
	const season = "SEASON-2026-CL"
	users := map[string][]srs.Card{}
	for i := range 60 {
		p := fmt.Sprintf("u%d", i)
		for q := range 3 {
			cd := card(fmt.Sprintf("q%d", q), "math", int64(1000+q))
			cd.Season, cd.Player = season, p
			users[p] = append(users[p], cd)
		}
	}
	for _, addr := range cl.Addrs() {
		if err := cl.NodeClient(addr).ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wrote, err := c.LoadMany(ctx, season, users)
	if err != nil {
		t.Fatalf("LoadMany after SCRIPT FLUSH on every node: %v", err)
	}
	if len(wrote) != len(users) {
		t.Fatalf("LoadMany wrote %d users, want %d", len(wrote), len(users))
	}
	for p, ok := range wrote {
		if !ok {
			t.Errorf("user %s not written", p)
		}
	}
	perMaster := seasonKeys(t, cl, c.opts.Prefix, season)
	t.Logf("season keys per master after LoadMany: %v", perMaster)
	if len(perMaster) != 3 {
		t.Fatalf("want keys on 3 masters: %v", perMaster)
	}
	for m, n := range perMaster {
		if n == 0 {
			t.Errorf("no keys of the season on master %s", m)
		}
	}
	res, err := c.Due(ctx, season, "u7", "", 5000, 10)
	if err != nil || !res.Loaded || res.Total != 3 {
		t.Fatalf("Due of a loaded user: %+v %v", res, err)
	}
	n, err := c.CachedUsers(ctx, []string{season})
	if err != nil || n[season] != 60 {
		t.Fatalf("CachedUsers: %v %v", n, err)
	}
	var sum int64
	masters, _ := cl.Masters()
	for _, m := range masters {
		info, err := cl.NodeClient(m).Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				var x int64
				fmt.Sscan(v, &x)
				sum += x
			}
		}
	}
	mem, err := c.MemoryUsed(ctx)
	t.Logf("MemoryUsed %d, sum of the masters' used_memory %d", mem, sum)
	if err != nil || mem < sum*8/10 || mem > sum*12/10 {
		t.Errorf("MemoryUsed = %d (%v), want about the masters' sum %d", mem, err, sum)
	}
	deleted, err := c.ClearSeason(ctx, season)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != 60*3+1 {
		t.Errorf("ClearSeason deleted %d keys, want %d (3 per user and the registry)", deleted, 60*3+1)
	}
	for m, n := range seasonKeys(t, cl, c.opts.Prefix, season) {
		if n != 0 {
			t.Errorf("%d keys of the cleared season left on master %s", n, m)
		}
	}
}

// TestClusterFailoverReload: a master is killed; once its replica is
// promoted, calls for its slots succeed within a few seconds (the client
// re-reads the slot map after availability errors) instead of failing until
// go-redis's 60 s periodic reload.
func TestClusterFailoverReload(t *testing.T) {
	t.Parallel()
	c, cl := clusterCache(t)
	ctx := context.Background()
	const season = "SEASON-2026-FO"
	masters, err := cl.Masters()
	if err != nil {
		t.Fatal(err)
	}
	victim := masters[0]
	// A user whose slot the victim serves.
	var player string
	for i := 0; player == "" && i < 1000; i++ {
		p := fmt.Sprintf("p%d", i)
		key := c.keys(season, p)[0]
		if _, err := c.Load(ctx, season, p, nil); err != nil {
			t.Fatal(err)
		}
		cnt, err := cl.NodeClient(victim).Exists(ctx, key).Result()
		if err != nil && !strings.HasPrefix(err.Error(), "MOVED") { // MOVED: another master's slot
			t.Fatal(err)
		}
		if cnt == 1 {
			player = p
		}
	}
	if player == "" {
		t.Fatal("no user on the victim master")
	}
	replica, err := cl.ReplicaOf(victim)
	if err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous: make sure the replica has the user before
	// the master dies, or the promoted replica rightly answers "not cached".
	if n, err := cl.NodeClient(victim).Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT for the replica: %d %v", n, err)
	}
	cl.Kill(victim)
	killed := time.Now()
	promoted, err := cl.WaitPromoted(replica, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for {
		res, err := c.Due(ctx, season, player, "", 0, 5)
		if err == nil && res.Loaded {
			break
		}
		if err != nil && len(errs) < 5 {
			errs = append(errs, fmt.Sprintf("%s (unavailable: %v)", err, IsUnavailable(err)))
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("user %s still unreadable 20s after the kill: %v", player, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	served := time.Since(killed)
	t.Logf("master %s killed; replica %s promoted after %s; user %s served again after %s; first errors: %v",
		victim, replica, promoted.Round(time.Millisecond), player, served.Round(time.Millisecond), errs)
	if served > promoted+5*time.Second {
		t.Errorf("served %s after the kill, %s after the promotion: the slot map was not reloaded", served, served-promoted)
	}
}
