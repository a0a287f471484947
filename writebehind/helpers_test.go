package writebehind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

func testReview(i int) srs.Review {
	at := int64(1_767_225_600_000) + int64(i)*1000
	return srs.Review{
		ID: fmt.Sprintf("r%05d", i), Season: "SEASON-2026", Player: fmt.Sprintf("p%d", i%7),
		QuestionID: fmt.Sprintf("q%d", i%13), Subject: "math", Topic: "algebra", Stage: "s1",
		Grade: srs.Grade(1 + i%4), ReviewedAt: at, DurationMS: int64(1000 + i), ElapsedDays: i % 30,
		Before: srs.Schedule{State: srs.StateReview, Step: 0, Stability: 1.5, Difficulty: 5.25, Due: at - 1, LastReview: at - 86_400_000, Reps: i, Lapses: 1,
			LastID: srs.ReviewHash(fmt.Sprintf("r%05d", i-7)), Recall: 0.875},
		After: srs.Schedule{State: srs.StateRelearning, Step: 1, Stability: 0.75, Difficulty: 6.5, Due: at + 600_000, LastReview: at, Reps: i + 1, Lapses: 2,
			LastID: srs.ReviewHash(fmt.Sprintf("r%05d", i)), Recall: 0.5},
		Sidecar: "node-1",
	}
}

// asV1 is r as release 1's encoding keeps it: without LastID and Recall.
func asV1(r srs.Review) srs.Review {
	r.Before.LastID, r.Before.Recall, r.After.LastID, r.After.Recall = 0, 0, 0, 0
	return r
}

func openQueue(tb testing.TB, cfg Config) *Queue {
	tb.Helper()
	q, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { q.Close() })
	return q
}

// appendDurable appends testReview(from) … testReview(from+n-1) and returns them.
func appendDurable(tb testing.TB, q *Queue, from, n int) []srs.Review {
	tb.Helper()
	var out []srs.Review
	for i := from; i < from+n; i++ {
		r := testReview(i)
		if err := q.AppendDurable(context.Background(), r); err != nil {
			tb.Fatalf("AppendDurable(%d): %v", i, err)
		}
		out = append(out, r)
	}
	return out
}

func readAll(tb testing.TB, dir string) []srs.Review {
	tb.Helper()
	got, err := ReadAll(dir)
	if err != nil {
		tb.Fatalf("ReadAll: %v", err)
	}
	return got
}

func equalReviews(tb testing.TB, got, want []srs.Review) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d reviews, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			tb.Fatalf("review %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func flush(tb testing.TB, q *Queue) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Flush(ctx); err != nil {
		tb.Fatalf("Flush: %v", err)
	}
}

// memStore is an in-memory Store: it fails the next `failures` calls and
// rejects the reviews `reject` picks.
type memStore struct {
	mu       sync.Mutex
	applied  []srs.Review
	calls    int
	failures int
	reject   func(srs.Review) bool
}

func (s *memStore) ApplyReviews(_ context.Context, batch []srs.Review) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failures > 0 {
		s.failures--
		return nil, errors.New("mariadb: connection refused")
	}
	var rejected []int
	for i, r := range batch {
		if s.reject != nil && s.reject(r) {
			rejected = append(rejected, i)
			continue
		}
		s.applied = append(s.applied, r)
	}
	return rejected, nil
}

func (s *memStore) reviews() []srs.Review {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]srs.Review(nil), s.applied...)
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// segmentFiles lists the segment paths of dir in order.
func segmentFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	segs, err := listSegments(OSFS{}, dir)
	if err != nil {
		tb.Fatal(err)
	}
	var paths []string
	for _, s := range segs {
		paths = append(paths, s.path)
	}
	return paths
}

// frameOffsets returns the offset of every frame in a segment file.
func frameOffsets(tb testing.TB, path string) []int {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var offs []int
	for off := 0; off < len(b); {
		_, _, size, ok := readFrame(b[off:])
		if !ok {
			tb.Fatalf("%s: bad frame at %d", path, off)
		}
		offs = append(offs, off)
		off += size
	}
	return offs
}
