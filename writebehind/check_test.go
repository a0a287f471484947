package writebehind

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// drainedThenPending writes 10 entries, drains them (the tail keeps them:
// it is small), then 5 more left pending; it returns the pending reviews and
// the segment path.
func drainedThenPending(t *testing.T, dir string) ([]srs.Review, string) {
	t.Helper()
	q := openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond})
	appendDurable(t, q, 0, 10)
	q.Start(t.Context(), &memStore{})
	flush(t, q)
	q.Stop()
	want := appendDurable(t, q, 10, 5)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	return want, segs[0]
}

// A flipped byte in an entry the checkpoint says is drained is logged and
// skipped: the store has it.
func TestCorruptionBeforeCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want, seg := drainedThenPending(t, dir)
	offs := frameOffsets(t, seg)
	editFile(t, seg, func(b []byte) []byte { b[offs[2]+frameHeader+5] ^= 0x10; return b })

	rep, err := Check(dir)
	if err != nil || !rep.Opens || len(rep.Damage) != 1 || !rep.Damage[0].Drained || rep.Lost != 0 {
		t.Fatalf("Check = %+v, %v; want one drained damage, opens", rep, err)
	}
	log, logs := newLogger()
	q := openQueue(t, Config{Dir: dir, Logger: log})
	if d := q.Stats().Depth; d != 5 {
		t.Fatalf("Depth = %d, want 5", d)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), seg) {
		t.Fatalf("no WARN naming %s:\n%s", seg, logs)
	}
	q.Close()
	equalReviews(t, readAll(t, dir), want)
}

// Damage after the checkpoint with intact entries after it stops Open with
// the file and offset; Check reports the entries; Repair cuts only the
// damaged frame, says one entry is lost, and the queue opens with the rest.
func TestCheckAndRepairDamagedEntry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want, seg := drainedThenPending(t, dir)
	offs := frameOffsets(t, seg)
	bad := offs[12] // entry 13, the third pending one
	editFile(t, seg, func(b []byte) []byte { b[bad+frameHeader+9] ^= 0x04; return b })

	_, err := Open(Config{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), "offset "+strconv.Itoa(bad)) ||
		!strings.Contains(err.Error(), "queue check") {
		t.Fatalf("Open = %v, want an error naming %s, offset %d and the check command", err, seg, bad)
	}
	rep, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Opens || rep.Lost != 1 || len(rep.Damage) != 1 || rep.Damage[0].FirstSeq != 13 || rep.Damage[0].LastSeq != 13 ||
		rep.Damage[0].Offset != int64(bad) || rep.Drained != 10 || rep.Entries != 4 {
		t.Fatalf("Check = %+v", rep)
	}
	var out bytes.Buffer
	rep.Format(&out)
	for _, s := range []string{"entries 13..13 unreadable", "up to 1 acknowledged reviews", "does NOT open", "drained checkpoint: entry 10"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}

	cut, err := Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cut.Lost != 1 || len(cut.Saved) != 1 {
		t.Fatalf("Repair = %+v", cut)
	}
	if b, err := os.ReadFile(cut.Saved[0]); err != nil || len(b) != offs[13]-bad {
		t.Fatalf("saved damaged bytes: %d bytes, %v; want %d", len(b), err, offs[13]-bad)
	}
	after, err := Check(dir)
	if err != nil || !after.Opens || len(after.Damage) != 0 || after.RepairedLost != 1 || after.Entries != 4 {
		t.Fatalf("Check after Repair = %+v, %v", after, err)
	}
	q := openQueue(t, Config{Dir: dir})
	want = append(want[:2:2], want[3:]...)
	if d := q.Stats().Depth; d != 4 {
		t.Fatalf("Depth = %d, want 4", d)
	}
	more := appendDurable(t, q, 50, 1)
	q.Close()
	equalReviews(t, readAll(t, dir), append(want, more...))
}

// A missing segment is a gap; Repair records it as lost in a segment of its
// own and keeps everything else.
func TestRepairMissingSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	all, _ := writeQueue(t, dir, 40, 1024)
	segs := segmentFiles(t, dir)
	gone := len(frameOffsets(t, segs[1]))
	if err := os.Remove(segs[1]); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(dir)
	if err != nil || rep.Opens || rep.Lost != uint64(gone) {
		t.Fatalf("Check = %+v, %v; want %d lost", rep, err, gone)
	}
	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	first := len(frameOffsets(t, segs[0]))
	want := append(all[:first:first], all[first+gone:]...)
	equalReviews(t, readAll(t, dir), want)
	q := openQueue(t, Config{Dir: dir})
	if d := q.Stats().Depth; d != len(want) {
		t.Fatalf("Depth = %d, want %d", d, len(want))
	}
}

// Repair refuses a directory that is open.
func TestRepairNeedsTheLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openQueue(t, Config{Dir: dir})
	if _, err := Repair(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Repair of an open queue = %v", err)
	}
}

// FuzzRepair damages a segment anywhere (a flipped byte, bytes inserted, a
// cut): Repair never fails on it, the queue opens afterwards, and what it
// holds is the original entries in order with only some left out.
func FuzzRepair(f *testing.F) {
	src := NewStrictMemFS()
	q := memQueue(f, src, Config{})
	want := appendDurable(f, q, 0, 8)
	q.Close()
	base, err := readFile(src, segmentPath("/q", 1))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint16(300), byte(1), []byte(nil), uint16(0))
	f.Add(uint16(20), byte(0x80), []byte("garbage"), uint16(0))
	f.Add(uint16(900), byte(0), bytes.Repeat([]byte{0}, 40), uint16(7))
	f.Fuzz(func(t *testing.T, pos uint16, flip byte, insert []byte, cut uint16) {
		data := bytes.Clone(base)
		p := int(pos) % len(data)
		data[p] ^= flip
		data = append(data[:p], append(bytes.Clone(insert), data[p:]...)...)
		data = data[:len(data)-int(cut)%(len(data)+1)]
		fsys := NewStrictMemFS()
		fsys.MkdirAll("/q", 0o750)
		if err := writeFileDurable(fsys, segmentPath("/q", 1), data); err != nil {
			t.Fatal(err)
		}
		if _, err := RepairFS(fsys, "/q"); err != nil {
			t.Fatalf("Repair: %v", err)
		}
		rep, err := CheckFS(fsys, "/q")
		if err != nil || !rep.Opens {
			t.Fatalf("Check after Repair = %+v, %v", rep, err)
		}
		got, err := ReadAllFS(fsys, "/q")
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for _, r := range got {
			for i < len(want) && want[i] != r {
				i++
			}
			if i == len(want) {
				t.Fatalf("after Repair the queue holds %+v, not one of the original entries in order", r)
			}
			i++
		}
		q, err := Open(Config{FS: fsys, Dir: "/q"})
		if err != nil {
			t.Fatalf("Open after Repair: %v", err)
		}
		q.Close()
	})
}
