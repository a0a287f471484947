package writebehind

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"defaults", Config{Dir: "q"}, ""},
		{"no dir", Config{}, "Config.Dir"},
		{"bad fsync", Config{Dir: "q", Fsync: 7}, "Config.Fsync"},
		{"negative max bytes", Config{Dir: "q", MaxBytes: -1}, "Config.MaxBytes"},
		{"negative batch", Config{Dir: "q", BatchSize: -1}, "Config.BatchSize"},
		{"negative wait", Config{Dir: "q", BatchWait: -time.Second}, "Config.BatchWait"},
		{"retry order", Config{Dir: "q", RetryMin: time.Minute}, "Config.RetryMin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	r := testReview(42)
	for _, held := range []bool{false, true} {
		p := encodeEntry(nil, 1234, r, held)
		if want := map[bool]byte{false: payloadPlain, true: payloadHeld}[held]; p[0] != want {
			t.Fatalf("held=%v: payload version %d, want %d", held, p[0], want)
		}
		at, got, gotHeld, err := decodeEntry(p)
		if err != nil || at != 1234 || got != r || gotHeld != held {
			t.Fatalf("decodeEntry = %d, %+v, %v, %v", at, got, gotHeld, err)
		}
	}
	p := encodeEntry(nil, 1234, r, false)
	for n := range len(p) {
		if _, _, _, err := decodeEntry(p[:n]); err == nil {
			t.Fatalf("decodeEntry of a %d-byte prefix succeeded", n)
		}
	}
	if _, _, _, err := decodeEntry(append(p, 0)); err == nil {
		t.Fatal("decodeEntry accepted trailing bytes")
	}
}

// Group commit: many concurrent AppendDurable calls share fsyncs, and every
// acknowledged review is on disk.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir})
	const n = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			if err := q.AppendDurable(context.Background(), testReview(i)); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if f := q.Stats().Fsyncs; f >= n {
		t.Errorf("%d fsyncs for %d appends; want group commit", f, n)
	}
	t.Logf("%d fsyncs for %d appends", q.Stats().Fsyncs, n)
	got := readAll(t, dir) // a second reader beside the open queue
	if len(got) != n {
		t.Fatalf("ReadAll: %d reviews, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("ReadAll: %d distinct reviews, want %d", len(seen), n)
	}
}

func TestRestartRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir})
	want := appendDurable(t, q, 0, 100)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond})
	equalReviews(t, readAll(t, dir), want)
	if d := q.Stats().Depth; d != 100 {
		t.Fatalf("Depth = %d, want 100", d)
	}
	var p3 []srs.Review
	for _, r := range want {
		if r.Player == "p3" {
			p3 = append(p3, r)
		}
	}
	equalReviews(t, q.Pending("SEASON-2026", "p3"), p3)
	if got, ok := q.PendingReview("SEASON-2026", want[57].Player, want[57].QuestionID, want[57].ID); !ok || got != want[57] {
		t.Fatalf("PendingReview = %+v, %v", got, ok)
	}
	if got := q.PendingSeasons(); len(got) != 1 || got["SEASON-2026"] != 100 {
		t.Fatalf("PendingSeasons = %v", got)
	}

	store := &memStore{}
	q.Start(context.Background(), store)
	flush(t, q)
	equalReviews(t, store.reviews(), want)
	if s := q.Stats(); s.Depth != 0 || s.Bytes != 0 || s.Drained != 100 {
		t.Fatalf("Stats after drain = %+v", s)
	}
	if q.Pending("SEASON-2026", "p3") != nil {
		t.Fatal("Pending not empty after drain")
	}
	if _, ok := q.PendingReview("SEASON-2026", want[57].Player, want[57].QuestionID, want[57].ID); ok {
		t.Fatal("PendingReview found a drained review")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, dir); len(got) != 0 {
		t.Fatalf("ReadAll after drain: %d reviews", len(got))
	}
}

// Drain with appends running during it, across many small segments: every
// review reaches the store once, in append order, and the log empties.
func TestDrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, BatchSize: 16, BatchWait: time.Millisecond, segmentSize: 2048})
	store := &memStore{}
	q.Start(context.Background(), store)
	want := appendDurable(t, q, 0, 300)
	flush(t, q)
	equalReviews(t, store.reviews(), want)
	if s := q.Stats(); s.Depth != 0 || s.Drained != 300 {
		t.Fatalf("Stats = %+v", s)
	}
	if n := len(segmentFiles(t, dir)); n > 2 {
		t.Errorf("%d segments left after the drain, want drained ones deleted", n)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Config{Dir: dir})
	if d := q.Stats().Depth; d != 0 {
		t.Fatalf("Depth after reopen = %d, want 0", d)
	}
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Errorf("%d segments after reopening a drained queue, want 1", n)
	}
	// Sequence numbers go on after the drained ones.
	want = appendDurable(t, q, 300, 3)
	q.Close()
	equalReviews(t, readAll(t, dir), want)
}

func TestDrainRetries(t *testing.T) {
	t.Parallel()
	log, logs := newLogger()
	q := openQueue(t, Config{Dir: t.TempDir(), BatchWait: time.Millisecond, RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, Logger: log})
	want := appendDurable(t, q, 0, 20)
	store := &memStore{failures: 4}
	q.Start(context.Background(), store)
	flush(t, q)
	equalReviews(t, store.reviews(), want)
	if r := q.Stats().Retries; r != 4 {
		t.Fatalf("Retries = %d, want 4", r)
	}
	if n := strings.Count(logs.String(), "store failing"); n != 1 {
		t.Errorf("%d 'store failing' log lines, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "store recovered") {
		t.Errorf("no recovery log line:\n%s", logs)
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	lo, hi := 50*time.Millisecond, 10*time.Second
	for attempt := 1; attempt < 100; attempt++ {
		ceiling := min(hi, lo<<min(attempt, 20))
		for range 50 {
			if d := backoff(attempt, lo, hi); d < lo || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, lo, ceiling)
			}
		}
	}
}

// A store that stays down: Flush gives up at its deadline and nothing is lost.
func TestFlushDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond, RetryMin: time.Millisecond, RetryMax: time.Millisecond})
	if err := q.Flush(context.Background()); err == nil {
		t.Fatal("Flush without Start succeeded")
	}
	want := appendDurable(t, q, 0, 10)
	q.Start(context.Background(), &memStore{failures: 1 << 30})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := q.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush = %v, want deadline exceeded", err)
	}
	q.Stop()
	q.Stop()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	equalReviews(t, readAll(t, dir), want)
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log, logs := newLogger()
	q := openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond, Logger: log})
	all := appendDurable(t, q, 0, 20)
	store := &memStore{reject: func(r srs.Review) bool { return r.Player == "p2" }}
	q.Start(context.Background(), store)
	flush(t, q)

	var applied, rejected []srs.Review
	for _, r := range all {
		if r.Player == "p2" {
			rejected = append(rejected, r)
		} else {
			applied = append(applied, r)
		}
	}
	equalReviews(t, store.reviews(), applied)
	if s := q.Stats(); s.DeadLetters != uint64(len(rejected)) || s.Depth != 0 {
		t.Fatalf("Stats = %+v, want %d dead letters and an empty queue", s, len(rejected))
	}
	lines := readDeadLetters(t, filepath.Join(dir, "deadletter.jsonl"))
	if len(lines) != len(rejected) {
		t.Fatalf("%d dead-letter lines, want %d", len(lines), len(rejected))
	}
	for i, dl := range lines {
		if dl.Review != rejected[i] || dl.Reason == "" || dl.At.IsZero() {
			t.Errorf("dead letter %d = %+v, want review %+v with a reason", i, dl, rejected[i])
		}
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("no ERROR log line for the dead letters:\n%s", logs)
	}
}

func TestQueueCap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := func() time.Time { return time.UnixMilli(1_767_225_600_000) }
	size := int64(frameHeader + len(encodeEntry(nil, now().UnixMilli(), testReview(0), false)))
	q := openQueue(t, Config{Dir: dir, MaxBytes: 3 * size, Now: now, BatchWait: time.Millisecond})
	acked := appendDurable(t, q, 0, 3)
	if _, err := q.Append(testReview(3)); !errors.Is(err, srs.ErrQueueFull) {
		t.Fatalf("Append at the cap = %v, want srs.ErrQueueFull", err)
	}
	equalReviews(t, readAll(t, dir), acked) // the refused review was not written

	store := &memStore{}
	q.Start(context.Background(), store)
	flush(t, q)
	acked = append(acked, appendDurable(t, q, 3, 3)...)
	flush(t, q)
	equalReviews(t, store.reviews(), acked)
}

func TestFsyncInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, Fsync: FsyncInterval, FsyncInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.AppendDurable(ctx, testReview(0)); err != nil {
		t.Fatalf("AppendDurable = %v; under FsyncInterval it must not wait", err)
	}
	for deadline := time.Now().Add(5 * time.Second); q.Stats().Fsyncs == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no interval fsync within 5s")
		}
	}
	equalReviews(t, readAll(t, dir), []srs.Review{testReview(0)})
}

// After an fsync failure the log cannot prove what it holds: waiters of
// entries not yet fsynced get the error and every later Append is refused.
func TestFailedLog(t *testing.T) {
	t.Parallel()
	q := openQueue(t, Config{Dir: t.TempDir()})
	appendDurable(t, q, 0, 2)
	tk, err := q.Append(testReview(2))
	if err != nil {
		t.Fatal(err)
	}
	eio := errors.New("fsync: input/output error")
	q.mu.Lock()
	q.fail(eio)
	q.mu.Unlock()
	err = q.Wait(context.Background(), tk)
	q.mu.RLock()
	durable := q.durable // a stray kick may have fsynced it before the failure
	q.mu.RUnlock()
	if uint64(tk) > durable && !errors.Is(err, eio) {
		t.Fatalf("Wait = %v, want the fsync error", err)
	}
	if _, err := q.Append(testReview(3)); !errors.Is(err, eio) {
		t.Fatalf("Append after the failure = %v, want the fsync error", err)
	}
}

func TestOpenLocksDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir})
	if _, err := Open(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want in-use error", err)
	}
	q.Close()
	openQueue(t, Config{Dir: dir})
}

func TestClosedQueue(t *testing.T) {
	t.Parallel()
	q := openQueue(t, Config{Dir: t.TempDir()})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := q.Append(testReview(0)); err == nil {
		t.Fatal("Append after Close succeeded")
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	q := openQueue(t, Config{Dir: t.TempDir(), Meter: mp.Meter("test"), BatchWait: time.Millisecond})
	appendDurable(t, q, 0, 5)
	q.Start(context.Background(), &memStore{failures: 1, reject: func(r srs.Review) bool { return r.ID == "r00001" }})
	flush(t, q)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = true
		}
	}
	for _, name := range []string{
		"srsproxy_queue_depth", "srsproxy_queue_bytes", "srsproxy_queue_oldest_age_seconds", "srsproxy_queue_fsyncs",
		"srsproxy_drain_batch_size", "srsproxy_drain_latency_seconds", "srsproxy_drain_reviews",
		"srsproxy_drain_retries", "srsproxy_drain_dead_letters",
		"srsproxy_queue_held", "srsproxy_queue_stalled", "srsproxy_queue_writable",
	} {
		if !got[name] {
			t.Errorf("metric %s not reported; got %v", name, got)
		}
	}
}

// BenchmarkAppendDurable measures acknowledged appends under concurrency
// (FsyncAlways) and reports how many fsyncs each one cost.
func BenchmarkAppendDurable(b *testing.B) {
	q := openQueue(b, Config{Dir: b.TempDir()})
	var n atomic.Int64
	before := q.Stats().Fsyncs
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.AppendDurable(context.Background(), testReview(int(n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(q.Stats().Fsyncs-before)/float64(b.N), "fsyncs/op")
}

func readDeadLetters(tb testing.TB, path string) []deadLetter {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []deadLetter
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var dl deadLetter
		if err := json.Unmarshal(sc.Bytes(), &dl); err != nil {
			tb.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		out = append(out, dl)
	}
	return out
}
