package commands

import (
	"sort"
	"time"

	"github.com/srsproxy/srsproxy/proxy"
)

// Status is what SRS.STATUS reports; cmd/srsproxy gathers it.
type Status struct {
	RedisConnected bool
	BreakerState   string    // closed, half-open, open
	SafeModeSince  time.Time // zero when not in Safe Mode
	QueueDepth     int
	QueueBytes     int64
	QueueOldest    time.Duration
	DrainLag       time.Duration
	Drained        uint64
	DeadLetters    uint64
	CacheMemory    int64            // upstream used_memory, bytes; -1 when unknown
	CachedUsers    map[string]int64 // user-seasons registered in the cache, by season
	Version        string
	Uptime         time.Duration
	Sidecar        string
}

func writeStatus(w *proxy.Reply, st Status) {
	w.Map(14)
	boolField(w, "redis_connected", st.RedisConnected)
	stringField(w, "breaker_state", st.BreakerState)
	intField(w, "safe_mode_since", stamp(st.SafeModeSince))
	intField(w, "queue_depth", int64(st.QueueDepth))
	intField(w, "queue_bytes", st.QueueBytes)
	intField(w, "queue_oldest_age_ms", st.QueueOldest.Milliseconds())
	intField(w, "drain_lag_ms", st.DrainLag.Milliseconds())
	intField(w, "drained", int64(st.Drained))
	intField(w, "dead_letters", int64(st.DeadLetters))
	intField(w, "cache_memory_bytes", st.CacheMemory)
	w.String("cached_users_by_season")
	seasons := make([]string, 0, len(st.CachedUsers))
	for s := range st.CachedUsers {
		seasons = append(seasons, s)
	}
	sort.Strings(seasons)
	w.Map(len(seasons))
	for _, s := range seasons {
		w.String(s)
		w.Int(st.CachedUsers[s])
	}
	stringField(w, "version", st.Version)
	intField(w, "uptime_seconds", int64(st.Uptime.Seconds()))
	stringField(w, "sidecar", st.Sidecar)
}
