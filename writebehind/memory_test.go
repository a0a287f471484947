package writebehind

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// TestMemoryPerEntry measures the heap the in-memory index costs per
// undrained entry (runtime.ReadMemStats before and after 100k appends) and
// checks the estimate MaxMemory is enforced with. Not parallel: it measures
// the whole heap.
func TestMemoryPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 100k appends")
	}
	const n = 100_000
	q := openQueue(t, Config{Dir: t.TempDir(), Fsync: FsyncInterval, FsyncInterval: time.Hour})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		if _, err := q.Append(testReview(i)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	s := q.Stats()
	est := float64(s.Memory) / n
	t.Logf("%d entries: %.0f B of heap per entry measured, %.0f B estimated (MaxMemory counts this); review encodes to %d B",
		n, per, est, len(encodeEntry(nil, 0, testReview(n/2), false)))
	if per > 400 {
		t.Errorf("%.0f B per entry, want under 400", per)
	}
	if est < 0.8*per || est > 1.5*per {
		t.Errorf("the estimate (%.0f B) is far from the measurement (%.0f B)", est, per)
	}
	runtime.KeepAlive(q)
}

// At Config.MaxMemory, Append refuses with srs.ErrQueueFull.
func TestMemoryCap(t *testing.T) {
	t.Parallel()
	q := memQueue(t, NewStrictMemFS(), Config{MaxMemory: 3000})
	var err error
	n := 0
	for ; err == nil && n < 1000; n++ {
		_, err = q.Append(testReview(n))
	}
	if !errors.Is(err, srs.ErrQueueFull) || q.Stats().Memory > 3000 {
		t.Fatalf("after %d appends: %v, Memory %d; want srs.ErrQueueFull at 3000 B", n, err, q.Stats().Memory)
	}
}
