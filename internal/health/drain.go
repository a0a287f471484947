package health

import (
	"sync"
	"time"
)

// StallAfter is how long entries may wait with no drain progress before the
// drain is reported stalled.
const StallAfter = 30 * time.Second

// DrainWatch tells a drain that has stopped making progress from one that is
// merely behind. Feed it the queue's drained counter and whether entries are
// waiting each time the status is looked at; it reports a stall when entries
// have been waiting and the counter has not moved for longer than StallAfter
// (as far as its observations can tell: the first one after a quiet spell
// only starts the clock). The zero value is ready; it is safe for concurrent
// use.
type DrainWatch struct {
	mu      sync.Mutex
	seen    bool
	drained uint64
	since   time.Time // since when entries waited with the counter unchanged; zero: none waiting
}

// Observe records a look at the queue at now and returns for how long its
// drain has made no progress while entries waited (0 when it progresses or
// nothing waits) and whether that is a stall (longer than StallAfter).
// oldest is the age of the oldest waiting entry: a drain cannot have been
// stuck for longer than that.
func (w *DrainWatch) Observe(now time.Time, drained uint64, waiting int, oldest time.Duration) (stuckFor time.Duration, stalled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	progressed := !w.seen || drained != w.drained
	w.seen, w.drained = true, drained
	switch {
	case waiting == 0:
		w.since = time.Time{}
		return 0, false
	case progressed || w.since.IsZero():
		w.since = now
		return 0, false
	}
	stuckFor = min(now.Sub(w.since), oldest)
	return stuckFor, stuckFor > StallAfter
}
