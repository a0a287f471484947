package writebehind

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

func memQueue(tb testing.TB, fsys *StrictMemFS, cfg Config) *Queue {
	tb.Helper()
	cfg.FS = fsys
	cfg.Dir = "/q"
	return openQueue(tb, cfg)
}

func TestStrictMemFSCrash(t *testing.T) {
	t.Parallel()
	m := NewStrictMemFS()
	if err := m.MkdirAll("/d", 0o750); err != nil {
		t.Fatal(err)
	}
	write := func(name string, flag int, s string) File {
		f, err := m.OpenFile(name, flag, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(f, s); err != nil {
			t.Fatal(err)
		}
		return f
	}
	a := write("/d/a", os.O_CREATE|os.O_WRONLY|os.O_APPEND, "abc")
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	io.WriteString(a, "def")                           // not synced
	write("/d/b", os.O_CREATE|os.O_WRONLY, "x").Sync() // synced data, unsynced entry
	if err := m.Rename("/d/a", "/d/c"); err != nil {   // unsynced rename
		t.Fatal(err)
	}
	m.Crash()
	if _, err := a.Write([]byte("z")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write on a handle from before the crash = %v, want ErrClosed", err)
	}
	names, _ := m.ReadDir("/d")
	if len(names) != 1 || names[0] != "a" {
		t.Fatalf("after the crash the directory holds %v, want [a]", names)
	}
	if b, _ := readFile(m, "/d/a"); string(b) != "abc" {
		t.Fatalf("a = %q after the crash, want the synced %q", b, "abc")
	}

	m.SetCapacity(m.Used() + 2)
	f := write("/d/a", os.O_WRONLY|os.O_APPEND, "")
	if n, err := f.Write([]byte("12345")); n != 2 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the capacity = %d, %v; want 2, ENOSPC", n, err)
	}
	m.CrashAfter(0)
	if err := f.Sync(); !errors.Is(err, ErrPowerOff) || !m.Crashed() {
		t.Fatalf("armed crash: Sync = %v", err)
	}
	if _, err := m.OpenFile("/d/a", os.O_RDONLY, 0); !errors.Is(err, ErrPowerOff) {
		t.Fatalf("open with the power off = %v", err)
	}
	m.Crash()
	if b, _ := readFile(m, "/d/a"); string(b) != "abc" {
		t.Fatalf("a = %q after the armed crash", b)
	}
}

// Review ids are unique per card, not per season: the same id on two cards
// is two reviews.
func TestScopedReviewIDs(t *testing.T) {
	t.Parallel()
	q := memQueue(t, NewStrictMemFS(), Config{})
	a, b, c := testReview(1), testReview(2), testReview(3)
	b.ID, c.ID = a.ID, a.ID
	b.Player = a.Player                         // same student, other question
	c.Player, c.QuestionID = "p6", a.QuestionID // other student, same question
	for _, r := range []srs.Review{a, b, c} {
		if err := q.AppendDurable(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []srs.Review{a, b, c} {
		if got, ok := q.PendingReview(r.Season, r.Player, r.QuestionID, r.ID); !ok || got != r {
			t.Fatalf("PendingReview(%s %s %s) = %+v, %v", r.Player, r.QuestionID, r.ID, got, ok)
		}
	}
	if _, ok := q.PendingReview(a.Season, a.Player, "q-none", a.ID); ok {
		t.Fatal("PendingReview found the id on a card it is not on")
	}
	equalReviews(t, q.Pending(a.Season, a.Player), []srs.Review{a, b})
	if got := q.PendingUsers(); len(got) != 2 {
		t.Fatalf("PendingUsers = %v, want 2 users", got)
	}
}

// A full disk refuses reviews with a QueueDiskError, logged once; Release
// and Cancel still succeed (the reserve makes room for their records); once
// the drain reclaims the log, the next append succeeds and Health clears.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	fsys := NewStrictMemFS()
	log, logs := newLogger()
	q := memQueue(t, fsys, Config{Logger: log, BatchWait: time.Millisecond, reserveSize: 4096})
	acked := appendDurable(t, q, 0, 3)
	h1, err := q.Hold(testReview(3))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := q.Hold(testReview(4))
	if err != nil {
		t.Fatal(err)
	}
	fsys.SetCapacity(fsys.Used() + 1000)
	var refusal error
	for i := 5; refusal == nil; i++ {
		if i > 100 {
			t.Fatal("the disk never filled")
		}
		var err error
		if err = q.AppendDurable(context.Background(), testReview(i)); err == nil {
			acked = append(acked, testReview(i))
		}
		refusal = err
	}
	var disk *srs.QueueDiskError
	if !errors.As(refusal, &disk) || disk.Dir != "/q" || !errors.Is(refusal, syscall.ENOSPC) {
		t.Fatalf("Append on a full disk = %v, want a QueueDiskError for /q wrapping ENOSPC", refusal)
	}
	for i := range 20 {
		if _, err := q.Append(testReview(200 + i)); !errors.As(err, &disk) {
			t.Fatalf("Append %d on a full disk = %v", i, err)
		}
	}
	if err := q.Health(); !errors.As(err, &disk) {
		t.Fatalf("Health = %v, want the QueueDiskError", err)
	}
	if n := strings.Count(logs.String(), "cannot write to its disk"); n != 1 {
		t.Fatalf("%d log lines for the episode, want 1:\n%s", n, logs)
	}
	if err := q.Release(h1); err != nil {
		t.Fatalf("Release on a full disk = %v", err)
	}
	if err := q.Cancel(h2); err != nil {
		t.Fatalf("Cancel on a full disk = %v", err)
	}
	if s := q.Stats(); s.UnwrittenSettles != 0 {
		t.Fatalf("%d settle records unwritten; the reserve should have made room", s.UnwrittenSettles)
	}
	acked = append(acked[:3], append([]srs.Review{testReview(3)}, acked[3:]...)...)
	equalReviews(t, mustReadAll(t, fsys), acked)

	store := &memStore{}
	q.Start(context.Background(), store)
	flush(t, q)
	equalReviews(t, store.reviews(), acked)
	// The drained tail was reclaimed; space is back.
	if err := q.AppendDurable(context.Background(), testReview(300)); err != nil {
		t.Fatalf("Append after the drain = %v", err)
	}
	if err := q.Health(); err != nil {
		t.Fatalf("Health after the disk cleared = %v", err)
	}
	if !strings.Contains(logs.String(), "takes writes again") || !strings.Contains(logs.String(), "refused=21") {
		t.Fatalf("no recovery line with the refused count:\n%s", logs)
	}
}

func mustReadAll(tb testing.TB, fsys FS) []srs.Review {
	tb.Helper()
	got, err := ReadAllFS(fsys, "/q")
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

// With no room even for a settle record, the decision still applies at
// once (the drainer is not stopped) and the record is written when space
// returns.
func TestSettleRecordRetried(t *testing.T) {
	t.Parallel()
	fsys := NewStrictMemFS()
	q := memQueue(t, fsys, Config{BatchWait: time.Millisecond, reserveSize: 1})
	appendDurable(t, q, 0, 1)
	h1, _ := q.Hold(testReview(1))
	h2, _ := q.Hold(testReview(2))
	fsys.SetCapacity(fsys.Used())
	if err := q.Cancel(h2); err != nil {
		t.Fatal(err)
	}
	if err := q.Release(h1); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats(); s.UnwrittenSettles != 2 || s.Held != 0 || s.Depth != 2 {
		t.Fatalf("Stats = %+v, want 2 unwritten settles, nothing held, 2 entries", s)
	}
	if err := q.Health(); err == nil {
		t.Fatal("Health is nil while the disk refuses records")
	}
	fsys.SetCapacity(0)
	for deadline := time.Now().Add(5 * time.Second); q.Stats().UnwrittenSettles > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the refused settle records were not written again")
		}
	}
	q.Close()
	fsys.Crash() // the records were not fsynced; recovery may find h1 unsettled, never h2 pending
	q = memQueue(t, fsys, Config{})
	got := mustReadAll(t, fsys)
	for _, r := range got {
		if r.ID == testReview(2).ID {
			t.Fatalf("the cancelled entry was recovered: %v", got)
		}
	}
}

// A failed fsync fails the log for good: Wait and every later Append return
// it, Health reports it.
func TestFsyncFailureIsSticky(t *testing.T) {
	t.Parallel()
	fsys := NewStrictMemFS()
	q := memQueue(t, fsys, Config{})
	appendDurable(t, q, 0, 1)
	eio := syscall.EIO
	fsys.FailSyncs(eio)
	if err := q.AppendDurable(context.Background(), testReview(1)); !errors.Is(err, eio) {
		t.Fatalf("AppendDurable with failing fsyncs = %v", err)
	}
	fsys.FailSyncs(nil)
	var disk *srs.QueueDiskError
	if _, err := q.Append(testReview(2)); !errors.As(err, &disk) || !errors.Is(err, eio) {
		t.Fatalf("Append after the failure = %v", err)
	}
	if err := q.Health(); !errors.As(err, &disk) {
		t.Fatalf("Health = %v", err)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestStatsAgeAndStall(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 12, 3, 9, 0, 0, 123456789, time.UTC)}
	q := memQueue(t, NewStrictMemFS(), Config{Now: clock.Now, StallAfter: 10 * time.Second, BatchWait: time.Millisecond})
	if s := q.Stats(); s.OldestAge != 0 || s.Stalled || !s.LastDrained.IsZero() {
		t.Fatalf("empty Stats = %+v", s)
	}
	appendDurable(t, q, 0, 1)
	clock.Add(1500 * time.Millisecond)
	appendDurable(t, q, 1, 1)
	clock.Add(3500 * time.Millisecond)
	if s := q.Stats(); s.OldestAge != 5*time.Second || s.Stalled {
		t.Fatalf("Stats = %+v, want OldestAge exactly 5s, not stalled", s)
	}
	clock.Add(6 * time.Second)
	if s := q.Stats(); !s.Stalled {
		t.Fatalf("Stats = %+v, want stalled after 11s without progress", s)
	}
	q.Start(context.Background(), &memStore{})
	flush(t, q)
	if s := q.Stats(); s.Stalled || s.OldestAge != 0 || !s.LastDrained.Equal(clock.Now()) || s.LastDrainLag != 11*time.Second {
		t.Fatalf("Stats after the drain = %+v", s)
	}
}

// Kick ends the drainer's backoff at once.
func TestKick(t *testing.T) {
	t.Parallel()
	q := memQueue(t, NewStrictMemFS(), Config{BatchWait: time.Millisecond, RetryMin: time.Hour, RetryMax: time.Hour})
	want := appendDurable(t, q, 0, 3)
	store := &memStore{failures: 1}
	q.Start(context.Background(), store)
	for deadline := time.Now().Add(5 * time.Second); q.Stats().Retries == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the store was not called")
		}
	}
	q.Kick()
	flush(t, q)
	equalReviews(t, store.reviews(), want)
}

// A fully drained tail is replaced by an empty segment once it is big, so a
// quiet queue gives its disk back without waiting for a 64 MiB rotation.
func TestDrainedTailReclaimed(t *testing.T) {
	t.Parallel()
	fsys := NewStrictMemFS()
	q := memQueue(t, fsys, Config{BatchWait: time.Millisecond, tailReclaim: 1024})
	appendDurable(t, q, 0, 20)
	q.Start(context.Background(), &memStore{})
	flush(t, q)
	segs, err := listSegments(fsys, "/q")
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].first != 21 {
		t.Fatalf("segments after the drain = %v, want one empty segment from 21", segs)
	}
	if fi, _ := fsys.Stat(segs[0].path); fi.Size() != 0 {
		t.Fatalf("tail holds %d bytes, want 0", fi.Size())
	}
	want := appendDurable(t, q, 20, 2)
	q.Close()
	fsys.Crash()
	equalReviews(t, mustReadAll(t, fsys), want)
}

// A sidecar that refuses reviews gets none (it is not ready), so the episode
// must clear without an append: the syncer probes the disk.
func TestDiskFullClearsWithoutTraffic(t *testing.T) {
	t.Parallel()
	fsys := NewStrictMemFS()
	q := memQueue(t, fsys, Config{diskProbe: 5 * time.Millisecond, reserveSize: 256})
	appendDurable(t, q, 0, 2)
	fsys.SetCapacity(fsys.Used() + 100)
	for i := 2; q.Health() == nil; i++ {
		if i > 50 {
			t.Fatal("the disk never filled")
		}
		q.Append(testReview(i))
	}
	time.Sleep(20 * time.Millisecond) // probes fail meanwhile
	if q.Health() == nil {
		t.Fatal("the episode cleared while the disk is still full")
	}
	fsys.SetCapacity(0)
	for deadline := time.Now().Add(5 * time.Second); q.Health() != nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Health = %v 5s after space returned", q.Health())
		}
	}
	appendDurable(t, q, 100, 1)
}

// Sync makes everything written so far durable, under FsyncInterval too.
func TestSync(t *testing.T) {
	t.Parallel()
	fsys := NewStrictMemFS()
	q := memQueue(t, fsys, Config{Fsync: FsyncInterval, FsyncInterval: time.Hour})
	r := testReview(1)
	if _, err := q.Append(r); err != nil {
		t.Fatal(err)
	}
	tk, _ := q.Hold(testReview(2))
	q.Cancel(tk)
	if err := q.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	fsys.Crash()
	equalReviews(t, mustReadAll(t, fsys), []srs.Review{r})
}
