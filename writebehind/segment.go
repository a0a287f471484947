package writebehind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A queue directory holds
//
//	00000000000000000001.wal  segments, named by the sequence number of their first entry
//	drained                   checkpoint: every entry up to this sequence number is in the store
//	lock                      flock'ed by the process that has the queue open
//	deadletter.jsonl          reviews the store rejected (default path)
//
// A segment is a run of frames, each (little-endian)
//
//	crc     uint32  CRC-32C of the rest of the frame
//	length  uint32  payload length, 1..maxPayload
//	seq     uint64  sequence number, consecutive across segments
//	payload         the encoded entry (codec.go)
//
// The sequence number in every frame lets recovery tell a torn tail (damage
// with nothing intact after it) from corruption before the tail.
const (
	frameHeader    = 16
	maxPayload     = 64 << 10
	segmentExt     = ".wal"
	checkpointFile = "drained"
	lockFile       = "lock"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], castagnoli))
	return dst
}

// readFrame decodes the frame at the start of b; ok is false unless b starts
// with a whole frame whose checksum matches.
func readFrame(b []byte) (seq uint64, payload []byte, size int, ok bool) {
	if len(b) < frameHeader {
		return 0, nil, 0, false
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n == 0 || n > maxPayload || int(n) > len(b)-frameHeader {
		return 0, nil, 0, false
	}
	size = frameHeader + int(n)
	if crc32.Checksum(b[4:size], castagnoli) != binary.LittleEndian.Uint32(b) {
		return 0, nil, 0, false
	}
	return binary.LittleEndian.Uint64(b[8:]), b[frameHeader:size], size, true
}

// intactFrameAfter reports whether an intact frame numbered seq or later
// starts anywhere in b.
func intactFrameAfter(b []byte, seq uint64) bool {
	for p := 0; p+frameHeader <= len(b); p++ {
		if s := binary.LittleEndian.Uint64(b[p+8:]); s < seq || s-seq > uint64(len(b)) {
			continue // cannot be a later entry of this log; skip the checksum
		}
		if _, _, _, ok := readFrame(b[p:]); ok {
			return true
		}
	}
	return false
}

type segment struct {
	first uint64 // sequence number of its first entry
	path  string
}

func segmentPath(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", first, segmentExt))
}

func listSegments(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir) // sorted by name, so by first sequence number
	if err != nil {
		return nil, fmt.Errorf("writebehind: %w", err)
	}
	var segs []segment
	for _, de := range des {
		base, ok := strings.CutSuffix(de.Name(), segmentExt)
		if !ok || len(base) != 20 || !de.Type().IsRegular() {
			continue
		}
		if first, err := strconv.ParseUint(base, 10, 64); err == nil && first > 0 {
			segs = append(segs, segment{first, filepath.Join(dir, de.Name())})
		}
	}
	return segs, nil
}

// createSegment starts an empty segment and makes its directory entry durable.
func createSegment(dir string, first uint64) (*os.File, error) {
	f, err := os.OpenFile(segmentPath(dir, first), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// recovered is what a queue directory holds.
type recovered struct {
	drained  uint64    // checkpoint; 0 when missing or unreadable
	segments []segment // in sequence order
	entries  []*entry  // undrained intact entries in order
	last     uint64    // sequence number of the last intact entry (the tail's first − 1 if empty)
	torn     *tornTail // damaged end of the last segment, if any
	// confirmed are the held entries a confirm record released.
	confirmed map[uint64]bool
}

// tornTail is the damaged end of the last segment: a crash mid-write.
type tornTail struct {
	path   string
	offset int64  // first damaged byte
	size   int64  // bytes from offset to the end of the file
	seq    uint64 // sequence number the damaged entry would have had
}

// recoverDir reads a queue directory without changing it. Damage at the end
// of the last segment is reported in torn; damage anywhere else, a gap in the
// sequence numbers or an undecodable entry is an error naming file and entry.
func recoverDir(dir string, log *slog.Logger) (*recovered, error) {
	drained, err := readCheckpoint(filepath.Join(dir, checkpointFile))
	if err != nil {
		log.Warn("write-behind checkpoint unreadable; replaying every entry on disk (the store ignores duplicates)", "err", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	rec := &recovered{drained: drained, segments: segs, confirmed: map[uint64]bool{}}
	for i, s := range segs {
		if i > 0 && s.first != rec.last+1 {
			return nil, fmt.Errorf("writebehind: %s starts at entry %d but the previous segment ends at entry %d", s.path, s.first, rec.last)
		}
		rec.last = s.first - 1
		if err := rec.readSegment(s, i == len(segs)-1); err != nil {
			return nil, err
		}
	}
	if drained > 0 && len(segs) > 0 && segs[0].first > drained+1 {
		return nil, fmt.Errorf("writebehind: entries %d to %d are missing: the oldest segment is %s but only entries up to %d were drained",
			drained+1, segs[0].first-1, segs[0].path, drained)
	}
	return rec, nil
}

func (rec *recovered) readSegment(s segment, isLast bool) error {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("writebehind: %w", err)
	}
	for off := 0; off < len(b); {
		want := rec.last + 1
		seq, payload, size, ok := readFrame(b[off:])
		if !ok {
			if !isLast || intactFrameAfter(b[off+1:], want) {
				return fmt.Errorf("writebehind: %s: entry %d at offset %d is damaged and intact entries follow it", s.path, want, off)
			}
			rec.torn = &tornTail{path: s.path, offset: int64(off), size: int64(len(b) - off), seq: want}
			return nil
		}
		if seq != want {
			return fmt.Errorf("writebehind: %s: offset %d holds entry %d where entry %d belongs", s.path, off, seq, want)
		}
		if kind, target, ok := decodeSettle(payload); ok {
			if kind == payloadCancel {
				rec.cancel(target)
			} else {
				rec.confirmed[target] = true
			}
		} else if seq > rec.drained {
			at, r, err := decodeEntry(payload)
			if err != nil {
				return fmt.Errorf("writebehind: %s: entry %d at offset %d: %w", s.path, seq, off, err)
			}
			rec.entries = append(rec.entries, &entry{seq: seq, review: r, size: int64(size), at: time.UnixMilli(at),
				held: payload[0] == payloadHeldVersion})
		}
		rec.last = seq
		off += size
	}
	return nil
}

// cancel drops the recovered entry with sequence number target, if present
// (a cancelled entry already behind the checkpoint was never drained either).
func (rec *recovered) cancel(target uint64) {
	for i := len(rec.entries) - 1; i >= 0; i-- {
		if rec.entries[i].seq == target {
			rec.entries = slices.Delete(rec.entries, i, i+1)
			return
		}
	}
}

// readCheckpoint returns 0 and no error when there is no checkpoint yet, and
// 0 and an error when it cannot be trusted (replaying from the start is safe).
func readCheckpoint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && len(b) == 0:
		return 0, nil
	case err != nil:
		return 0, err
	case len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.LittleEndian.Uint32(b[8:]):
		return 0, fmt.Errorf("%s: bad checksum", path)
	}
	return binary.LittleEndian.Uint64(b), nil
}

// writeCheckpoint overwrites the checkpoint in place, so it needs no new disk
// blocks when the disk is full; a torn write fails the checksum and is ignored.
func writeCheckpoint(f *os.File, seq uint64) error {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, 12), seq)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}
