package writebehind

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A queue directory holds
//
//	00000000000000000001.wal  segments, named by the sequence number of their first entry
//	drained                   checkpoint: every entry up to this sequence number is in the store (or cancelled)
//	reserve                   preallocated bytes, given back when a settle record meets a full disk
//	lock                      flock'ed by the process that has the queue open
//	deadletter.jsonl          reviews the store rejected (default path)
//
// A segment is a run of frames, each (little-endian)
//
//	crc     uint32  CRC-32C of the rest of the frame
//	length  uint32  payload length, 1..maxPayload
//	seq     uint64  sequence number, consecutive across segments
//	payload         the encoded entry or record (codec.go)
//
// The sequence number in every frame lets recovery tell a torn tail (damage
// with nothing intact after it) from corruption before the tail, and say
// which entries damage made unreadable.
const (
	frameHeader    = 16
	maxPayload     = 64 << 10
	segmentExt     = ".wal"
	checkpointFile = "drained"
	reserveFile    = "reserve"
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

// findFrame returns the offset and sequence number of the first intact frame
// numbered seq or later that starts in b at from or after; -1 if none.
func findFrame(b []byte, from int, seq uint64) (int, uint64) {
	for p := from; p+frameHeader <= len(b); p++ {
		if s := binary.LittleEndian.Uint64(b[p+8:]); s < seq || s-seq > uint64(len(b)) {
			continue // cannot be a later entry of this log; skip the checksum
		}
		if s, _, _, ok := readFrame(b[p:]); ok {
			return p, s
		}
	}
	return -1, 0
}

type segment struct {
	first uint64 // sequence number of its first entry
	path  string
}

func segmentPath(dir string, first uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", first, segmentExt))
}

func listSegments(fsys FS, dir string) ([]segment, error) {
	names, err := fsys.ReadDir(dir) // sorted by name, so by first sequence number
	if err != nil {
		return nil, fmt.Errorf("writebehind: %w", err)
	}
	var segs []segment
	for _, name := range names {
		base, ok := strings.CutSuffix(name, segmentExt)
		if !ok || len(base) != 20 {
			continue
		}
		if first, err := strconv.ParseUint(base, 10, 64); err == nil && first > 0 {
			segs = append(segs, segment{first, filepath.Join(dir, name)})
		}
	}
	return segs, nil
}

// createSegment starts an empty segment and makes its directory entry durable.
func createSegment(fsys FS, dir string, first uint64) (File, error) {
	f, err := fsys.OpenFile(segmentPath(dir, first), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := fsys.SyncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Damage is a part of a queue directory that cannot be read.
type Damage struct {
	File     string // the segment file (for missing entries: the one after the gap)
	Offset   int64  // first damaged byte in File
	Bytes    int64  // damaged bytes from Offset (0 for missing entries)
	FirstSeq uint64 // first sequence number that cannot be read
	// LastSeq is the last sequence number that cannot be read; LastSeq <
	// FirstSeq when no entry is lost (stray bytes between frames). It is
	// not known for a damaged end (Tail).
	LastSeq uint64
	// Tail is a damaged end of the log with nothing intact after it: a
	// crash mid-write, before the fsync. Open cuts it off.
	Tail bool
	// Drained says every unreadable entry is at or before the drained
	// checkpoint: the store has them, so Open logs the damage and skips it.
	Drained bool
	Reason  string // what is wrong, for people
	overlap bool   // segments claim the same sequence numbers
}

// Lost returns how many sequence numbers after the drained checkpoint the
// damage made unreadable (each an acknowledged review, or a confirm or
// cancel record); 0 for a damaged end, whose extent is unknown.
func (d Damage) Lost(drained uint64) uint64 {
	if d.Tail || d.LastSeq < d.FirstSeq || d.LastSeq <= drained {
		return 0
	}
	return d.LastSeq - max(d.FirstSeq, drained+1) + 1
}

func (d Damage) fatal(drained uint64) bool {
	return !d.Tail && (d.overlap || d.Lost(drained) > 0)
}

// Error describes the damage as Open reports it.
func (d Damage) Error() string {
	return fmt.Sprintf("writebehind: %s: %s", d.File, d.Reason)
}

// scanned is what a queue directory holds.
type scanned struct {
	dir       string
	drained   uint64 // checkpoint; 0 when missing or unreadable
	ckptErr   error  // why the checkpoint was not trusted
	segments  []segInfo
	entries   []*entry // undrained intact entries, cancelled ones left out, in order
	last      uint64   // sequence number of the last readable frame (the first segment's first − 1 if none)
	confirmed map[uint64]bool
	cancelled map[uint64]bool
	damage    []Damage
	lost      uint64 // sequence numbers after the checkpoint covered by Repair's lost records
}

type segInfo struct {
	segment
	size   int64
	frames int
	last   uint64 // last sequence number read in it
}

// tail returns the damaged end of the log, if any.
func (sc *scanned) tail() *Damage {
	if n := len(sc.damage); n > 0 && sc.damage[n-1].Tail {
		return &sc.damage[n-1]
	}
	return nil
}

// fatal returns the first damage that stops Open.
func (sc *scanned) fatal() *Damage {
	for i := range sc.damage {
		if sc.damage[i].fatal(sc.drained) {
			return &sc.damage[i]
		}
	}
	return nil
}

// scanDir reads a queue directory without changing it. An unreadable
// checkpoint is reported in ckptErr (and taken as 0: replaying is safe);
// every damage in damage. Only a failing file system is an error.
func scanDir(fsys FS, dir string) (*scanned, error) {
	sc := &scanned{dir: dir, confirmed: map[uint64]bool{}, cancelled: map[uint64]bool{}}
	sc.drained, sc.ckptErr = readCheckpoint(fsys, filepath.Join(dir, checkpointFile))
	segs, err := listSegments(fsys, dir)
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		sc.last = segs[0].first - 1
		if sc.drained > 0 && segs[0].first > sc.drained+1 {
			sc.add(Damage{File: segs[0].path, FirstSeq: sc.drained + 1, LastSeq: segs[0].first - 1,
				Reason: fmt.Sprintf("entries %d to %d are missing: this is the oldest segment but only entries up to %d were drained",
					sc.drained+1, segs[0].first-1, sc.drained)})
		}
	}
	for i, s := range segs {
		if s.first != sc.last+1 {
			d := Damage{File: s.path, FirstSeq: sc.last + 1, LastSeq: s.first - 1,
				Reason: fmt.Sprintf("starts at entry %d but the previous segment ends at entry %d", s.first, sc.last)}
			if s.first <= sc.last {
				d.FirstSeq, d.LastSeq, d.overlap = s.first, s.first-1, true
			}
			sc.add(d)
			sc.last = s.first - 1
		}
		b, err := readFile(fsys, s.path)
		if err != nil {
			return nil, fmt.Errorf("writebehind: %w", err)
		}
		var next uint64
		if i+1 < len(segs) {
			next = segs[i+1].first
		}
		sc.segments = append(sc.segments, segInfo{segment: s, size: int64(len(b))})
		sc.scanSegment(s, b, next)
	}
	kept := sc.entries[:0]
	for _, e := range sc.entries {
		if !sc.cancelled[e.seq] {
			kept = append(kept, e)
		}
	}
	clear(sc.entries[len(kept):])
	sc.entries = kept
	return sc, nil
}

func (sc *scanned) add(d Damage) {
	d.Drained = !d.Tail && d.LastSeq <= sc.drained
	sc.damage = append(sc.damage, d)
}

// scanSegment reads the frames of s; next is the first sequence number of
// the following segment, 0 if s is the last.
func (sc *scanned) scanSegment(s segment, b []byte, next uint64) {
	info := &sc.segments[len(sc.segments)-1]
	for off := 0; off < len(b); {
		want := sc.last + 1
		seq, payload, size, ok := readFrame(b[off:])
		switch {
		case ok && seq < want:
			sc.add(Damage{File: s.path, Offset: int64(off), Bytes: int64(size), FirstSeq: want, LastSeq: want - 1,
				Reason: fmt.Sprintf("offset %d holds entry %d where entry %d belongs", off, seq, want)})
			off += size
			continue
		case ok && seq > want:
			sc.add(Damage{File: s.path, Offset: int64(off), FirstSeq: want, LastSeq: seq - 1,
				Reason: fmt.Sprintf("offset %d holds entry %d where entry %d belongs: entries %d to %d are missing", off, seq, want, want, seq-1)})
			sc.last = seq - 1
		case !ok:
			p, pseq := findFrame(b, off+1, want)
			switch {
			case p < 0 && next == 0:
				sc.add(Damage{File: s.path, Offset: int64(off), Bytes: int64(len(b) - off), FirstSeq: want, Tail: true,
					Reason: fmt.Sprintf("the log ends in a damaged entry %d at offset %d (%d bytes)", want, off, len(b)-off)})
				return
			case p < 0:
				sc.add(Damage{File: s.path, Offset: int64(off), Bytes: int64(len(b) - off), FirstSeq: want, LastSeq: next - 1,
					Reason: fmt.Sprintf("entry %d at offset %d is damaged and intact entries follow it (entries %d to %d unreadable)", want, off, want, next-1)})
				sc.last = max(sc.last, next-1)
				return
			default:
				sc.add(Damage{File: s.path, Offset: int64(off), Bytes: int64(p - off), FirstSeq: want, LastSeq: pseq - 1,
					Reason: fmt.Sprintf("entry %d at offset %d is damaged and intact entries follow it (entries %d to %d unreadable)", want, off, want, pseq-1)})
				sc.last = max(sc.last, pseq-1)
				off = p
				continue
			}
		}
		sc.frame(s, int64(off), seq, payload, size)
		info.frames++
		info.last = sc.last
		off += size
	}
}

// frame takes one intact frame whose sequence number is the expected one.
func (sc *scanned) frame(s segment, off int64, seq uint64, payload []byte, size int) {
	sc.last = seq
	if payload[0] == payloadPad {
		return
	}
	if kind, n, ok := decodeSettle(payload); ok {
		switch kind {
		case payloadCancel:
			sc.cancelled[n] = true
		case payloadConfirm:
			sc.confirmed[n] = true
		case payloadLost:
			n = max(n, 1)
			sc.last = seq + n - 1
			if sc.last > sc.drained {
				sc.lost += sc.last - max(seq, sc.drained+1) + 1
			}
		}
		return
	}
	if seq <= sc.drained {
		return // drained: the store has it
	}
	e, err := newEntry(seq, payload, int32(size))
	if err != nil {
		sc.add(Damage{File: s.path, Offset: off, Bytes: int64(size), FirstSeq: seq, LastSeq: seq,
			Reason: fmt.Sprintf("entry %d at offset %d cannot be decoded: %v", seq, off, err)})
		return
	}
	sc.entries = append(sc.entries, e)
}

// newEntry checks an entry payload (it must decode) and keeps its review
// bytes, copied so the frame's buffer can go.
func newEntry(seq uint64, payload []byte, size int32) (*entry, error) {
	ep, err := splitEntry(payload)
	if err != nil {
		return nil, err
	}
	if _, ok := wireKeys(ep.review); !ok {
		return nil, errTruncatedPayload
	}
	if _, err := decodeWire(ep.review, ep.legacy); err != nil {
		return nil, err
	}
	return &entry{seq: seq, review: bytes.Clone(ep.review), size: size, at: ep.at * 1e6,
		held: ep.held, legacy: ep.legacy}, nil
}

// readCheckpoint returns 0 and no error when there is no checkpoint yet, and
// 0 and an error when it cannot be trusted (replaying from the start is safe).
func readCheckpoint(fsys FS, path string) (uint64, error) {
	b, err := readFile(fsys, path)
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
func writeCheckpoint(f File, seq uint64) error {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, 12), seq)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}
