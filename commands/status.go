package commands

import (
	"sort"
	"time"

	"github.com/srsproxy/srsproxy/proxy"
)

// Status is what SRS.STATUS reports; cmd/srsproxy gathers it. Each part is
// gathered with a short deadline; a part that fails is named in Errors and
// keeps its zero (or "unknown") value, so the command always answers.
type Status struct {
	RedisConnected  bool
	BreakerState    string    // closed, half-open, open
	SafeModeSince   time.Time // zero when not in Safe Mode
	DegradedRedis   bool      // serving without the upstream Redis (Safe Mode)
	DegradedMariaDB bool      // MariaDB's health probe fails: cached reads and queued reviews only
	QueueDepth      int
	QueueBytes      int64
	QueueOldest     time.Duration
	DrainOldest     time.Duration // age of the oldest review waiting for the drain
	DrainStalled    bool          // reviews wait and the drain has made no progress for over 30 s
	DrainLag        time.Duration
	Drained         uint64
	DeadLetters     uint64
	CacheMemory     int64            // upstream used_memory, bytes; -1 when unknown
	CachedUsers     map[string]int64 // user-seasons registered in the cache, by season
	NearUsers       int              // user-seasons held in this sidecar's near-cache
	NearBytes       int64            // and their estimated memory
	NearHits        int64            // reads answered from the near-cache after one version GET
	NearMisses      int64            // reads that fetched the whole user-season
	Version         string
	Uptime          time.Duration
	Sidecar         string
	// Errors names each part that could not be gathered ("redis",
	// "cache_memory", "seasons", "cached_users", …) with why; empty when
	// the whole status is known.
	Errors map[string]string
}

// statusFields is the number of fields writeStatus writes.
const statusFields = 23

func writeStatus(w *proxy.Reply, st Status) {
	w.Map(statusFields)
	boolField(w, "redis_connected", st.RedisConnected)
	stringField(w, "breaker_state", st.BreakerState)
	intField(w, "safe_mode_since", stamp(st.SafeModeSince))
	boolField(w, "degraded_redis", st.DegradedRedis)
	boolField(w, "degraded_mariadb", st.DegradedMariaDB)
	intField(w, "queue_depth", int64(st.QueueDepth))
	intField(w, "queue_bytes", st.QueueBytes)
	intField(w, "queue_oldest_age_ms", st.QueueOldest.Milliseconds())
	intField(w, "drain_oldest_age_ms", st.DrainOldest.Milliseconds())
	boolField(w, "drain_stalled", st.DrainStalled)
	intField(w, "drain_lag_ms", st.DrainLag.Milliseconds())
	intField(w, "drained", int64(st.Drained))
	intField(w, "dead_letters", int64(st.DeadLetters))
	intField(w, "cache_memory_bytes", st.CacheMemory)
	w.String("cached_users_by_season")
	writeSortedMap(w, st.CachedUsers, func(v int64) { w.Int(v) })
	intField(w, "near_cache_users", int64(st.NearUsers))
	intField(w, "near_cache_bytes", st.NearBytes)
	intField(w, "near_cache_hits", st.NearHits)
	intField(w, "near_cache_misses", st.NearMisses)
	stringField(w, "version", st.Version)
	intField(w, "uptime_seconds", int64(st.Uptime.Seconds()))
	stringField(w, "sidecar", st.Sidecar)
	w.String("errors")
	writeSortedMap(w, st.Errors, func(v string) { w.String(v) })
}

// writeSortedMap writes m as a map (RESP3) or a flat array (RESP2) in key order.
func writeSortedMap[V any](w *proxy.Reply, m map[string]V, value func(V)) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.Map(len(keys))
	for _, k := range keys {
		w.String(k)
		value(m[k])
	}
}
