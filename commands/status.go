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
	w.String("redis_connected")
	w.Bool(st.RedisConnected)
	w.String("breaker_state")
	w.String(st.BreakerState)
	w.String("safe_mode_since")
	w.Int(stamp(st.SafeModeSince))
	w.String("queue_depth")
	w.Int(int64(st.QueueDepth))
	w.String("queue_bytes")
	w.Int(st.QueueBytes)
	w.String("queue_oldest_age_ms")
	w.Int(st.QueueOldest.Milliseconds())
	w.String("drain_lag_ms")
	w.Int(st.DrainLag.Milliseconds())
	w.String("drained")
	w.Int(int64(st.Drained))
	w.String("dead_letters")
	w.Int(int64(st.DeadLetters))
	w.String("cache_memory_bytes")
	w.Int(st.CacheMemory)
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
	w.String("version")
	w.String(st.Version)
	w.String("uptime_seconds")
	w.Int(int64(st.Uptime.Seconds()))
	w.String("sidecar")
	w.String(st.Sidecar)
}
