package writebehind

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// writeQueue appends n reviews to a fresh queue in dir, closes it and
// returns them with the path of the last segment.
func writeQueue(tb testing.TB, dir string, n int, segmentSize int64) ([]srs.Review, string) {
	tb.Helper()
	q := openQueue(tb, Config{Dir: dir, segmentSize: segmentSize})
	want := appendDurable(tb, q, 0, n)
	if err := q.Close(); err != nil {
		tb.Fatal(err)
	}
	segs := segmentFiles(tb, dir)
	return want, segs[len(segs)-1]
}

func editFile(tb testing.TB, path string, edit func([]byte) []byte) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// A damaged last entry (a crash mid-write) is cut off and logged; Open
// succeeds with everything before it, and the log takes appends again.
func TestTornTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(b []byte, last int) []byte // last: offset of the last frame
		keep int                             // entries of 10 that survive
	}{
		{"truncated mid-payload", func(b []byte, _ int) []byte { return b[:len(b)-5] }, 9},
		{"truncated mid-header", func(b []byte, last int) []byte { return b[:last+7] }, 9},
		{"payload byte flipped", func(b []byte, _ int) []byte { b[len(b)-1] ^= 0xff; return b }, 9},
		{"checksum byte flipped", func(b []byte, last int) []byte { b[last] ^= 0x01; return b }, 9},
		{"length byte flipped", func(b []byte, last int) []byte { b[last+4] ^= 0x01; return b }, 9},
		{"zero-filled tail", func(b []byte, _ int) []byte { return append(b, make([]byte, 4096)...) }, 10},
		{"partial frame appended", func(b []byte, last int) []byte { return append(b, b[last:last+20]...) }, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			want, seg := writeQueue(t, dir, 10, 0)
			offs := frameOffsets(t, seg)
			editFile(t, seg, func(b []byte) []byte { return tt.edit(b, offs[len(offs)-1]) })

			log, logs := newLogger()
			q := openQueue(t, Config{Dir: dir, Logger: log})
			if d := q.Stats().Depth; d != tt.keep {
				t.Fatalf("Depth = %d, want %d", d, tt.keep)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), seg) {
				t.Errorf("no WARN naming %s:\n%s", seg, logs)
			}
			want = append(want[:tt.keep], appendDurable(t, q, 100, 2)...)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			equalReviews(t, readAll(t, dir), want)
		})
	}
}

// Damage before the tail is not a torn write: Open and ReadAll refuse with
// an error that names the file and the entry.
func TestCorruptionBeforeTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(t *testing.T, segs []string) (file, msg string)
	}{
		{"payload byte in the middle", func(t *testing.T, segs []string) (string, string) {
			seg := segs[len(segs)-1]
			offs := frameOffsets(t, seg)
			editFile(t, seg, func(b []byte) []byte { b[offs[len(offs)/2]+frameHeader+3] ^= 0x20; return b })
			return seg, "is damaged"
		}},
		{"length byte in the middle", func(t *testing.T, segs []string) (string, string) {
			seg := segs[len(segs)-1]
			offs := frameOffsets(t, seg)
			editFile(t, seg, func(b []byte) []byte { b[offs[1]+4] ^= 0x40; return b })
			return seg, "is damaged"
		}},
		{"torn older segment", func(t *testing.T, segs []string) (string, string) {
			editFile(t, segs[0], func(b []byte) []byte { return b[:len(b)-3] })
			return segs[0], "is damaged"
		}},
		{"missing segment", func(t *testing.T, segs []string) (string, string) {
			if err := os.Remove(segs[1]); err != nil {
				t.Fatal(err)
			}
			return segs[2], "previous segment ends"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeQueue(t, dir, 40, 1024)
			segs := segmentFiles(t, dir)
			if len(segs) < 3 {
				t.Fatalf("%d segments, want several", len(segs))
			}
			file, msg := tt.damage(t, segs)
			_, err := Open(Config{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), msg) {
				t.Fatalf("Open = %v, want an error naming %s and containing %q", err, file, msg)
			}
			if _, err := ReadAll(dir); err == nil {
				t.Fatal("ReadAll succeeded on a corrupt queue")
			}
		})
	}
}

// Reviews may be drained before their fsync; if a crash then loses them from
// the log, the checkpoint is ahead of the log and new entries must get
// sequence numbers after it, or the next recovery would skip them.
func TestCheckpointAheadOfLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond})
	appendDurable(t, q, 0, 5)
	q.Start(t.Context(), &memStore{})
	flush(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segmentFiles(t, dir)[0]
	editFile(t, seg, func(b []byte) []byte { return b[:len(b)-5] }) // lose drained entry 5

	q = openQueue(t, Config{Dir: dir})
	if d := q.Stats().Depth; d != 0 {
		t.Fatalf("Depth = %d, want 0", d)
	}
	if tk, err := q.Append(testReview(9)); err != nil || tk != 6 {
		t.Fatalf("Append = %d, %v; want ticket 6", tk, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	equalReviews(t, readAll(t, dir), []srs.Review{testReview(9)})
}

// An unreadable checkpoint is not trusted: every entry still on disk is
// replayed (the store ignores the ones it has).
func TestBadCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond})
	want := appendDurable(t, q, 0, 5)
	q.Start(t.Context(), &memStore{})
	flush(t, q)
	want = append(want, appendDurable(t, q, 5, 3)...)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	editFile(t, filepath.Join(dir, checkpointFile), func(b []byte) []byte { b[0] ^= 1; return b })
	log, logs := newLogger()
	q = openQueue(t, Config{Dir: dir, Logger: log})
	if d := q.Stats().Depth; d != len(want) {
		t.Fatalf("Depth = %d, want %d", d, len(want))
	}
	if !strings.Contains(logs.String(), "checkpoint unreadable") {
		t.Errorf("no WARN about the checkpoint:\n%s", logs)
	}
}

// FuzzRecover damages the tail of a segment (cut, then arbitrary bytes
// appended): Open never panics, agrees with ReadAll, and recovers a prefix of
// what was written, or fails.
func FuzzRecover(f *testing.F) {
	src := f.TempDir()
	want, seg := writeQueue(f, src, 5, 0)
	base, err := os.ReadFile(seg)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(nil), uint16(0))
	f.Add([]byte(nil), uint16(3))
	f.Add(make([]byte, 40), uint16(0))
	f.Add(base[:30], uint16(10))
	f.Add(bytes.Repeat([]byte{0xff}, 64), uint16(100))
	f.Fuzz(func(t *testing.T, tail []byte, cut uint16) {
		dir := t.TempDir()
		data := append(slices.Clone(base[:len(base)-int(cut)%(len(base)+1)]), tail...)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(seg)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, rerr := ReadAll(dir)
		q, err := Open(Config{Dir: dir})
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Open = %v but ReadAll = %v", err, rerr)
		}
		if err != nil {
			return
		}
		defer q.Close()
		if d := q.Stats().Depth; d != len(got) {
			t.Fatalf("Depth = %d, ReadAll = %d", d, len(got))
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("entry %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		if int(cut)%(len(base)+1) == 0 && len(got) < len(want) {
			t.Fatalf("appending bytes lost entries: %d of %d left", len(got), len(want))
		}
	})
}
