//go:build linux

package writebehind

import (
	"syscall"
	"testing"
)

// Disk errors refuse the review and leave the log clean: with the file size
// limit set inside the next entry, the write is partial and fails (EFBIG).
func TestAppendDiskError(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir})
	acked := appendDurable(t, q, 0, 3)
	withFileSizeLimit(t, uint64(q.tailSize)+20, func() {
		if _, err := q.Append(testReview(3)); err == nil {
			t.Fatal("Append past the file size limit succeeded")
		}
	})
	if d := q.Stats().Depth; d != 3 {
		t.Fatalf("Depth = %d, want 3 (the failed review is not queued)", d)
	}
	acked = append(acked, appendDurable(t, q, 4, 2)...)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	equalReviews(t, readAll(t, dir), acked)
}

// withFileSizeLimit runs f with RLIMIT_FSIZE set to limit bytes. The limit
// is process-wide, so callers must not run in parallel; Go ignores SIGXFSZ,
// so writes past it fail with EFBIG instead of killing the process.
func withFileSizeLimit(t *testing.T, limit uint64, f func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Skip(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Skip(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}
