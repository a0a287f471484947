package writebehind

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Report is what Check finds in a queue directory, or what Repair cut.
type Report struct {
	Dir           string
	Drained       uint64 // the drained checkpoint: entries up to it are in the store
	CheckpointErr string // why the checkpoint is not trusted ("" when it is); Open then replays everything
	Segments      []SegmentReport
	LastSeq       uint64 // sequence number of the last readable frame
	Entries       int    // undrained readable entries (cancelled ones left out)
	Held          int    // of them, written by Hold (awaiting a decision or released by a confirm record)
	Unsettled     int    // of the held ones, those with neither a confirm nor a cancel record
	Cancelled     int    // undrained entries dropped by a cancel record
	Damage        []Damage
	// Lost counts the sequence numbers after the checkpoint that cannot be
	// read, outside a damaged end: each was an acknowledged review or a
	// confirm or cancel record, so at most Lost acknowledged reviews are
	// lost.
	Lost uint64
	// RepairedLost counts the sequence numbers after the checkpoint that an
	// earlier Repair marked lost.
	RepairedLost uint64
	// Opens says Open would accept the directory (a damaged end is cut,
	// damage behind the checkpoint skipped).
	Opens bool
	// Saved lists the files where Repair kept the bytes it cut.
	Saved []string
}

// SegmentReport describes one segment file.
type SegmentReport struct {
	Path   string
	First  uint64 // sequence number its name gives
	Last   uint64 // last sequence number read in it (First-1 if none)
	Frames int    // readable frames: entries and records
	Bytes  int64
}

// Check reads the queue directory dir of the OS file system without
// changing it and reports what it holds and what is damaged; it may run
// beside the process that has the queue open. The error is for a directory
// that cannot be read at all.
func Check(dir string) (Report, error) { return CheckFS(OSFS{}, dir) }

// CheckFS is Check on fsys.
func CheckFS(fsys FS, dir string) (Report, error) {
	sc, err := scanDir(fsys, dir)
	if err != nil {
		return Report{Dir: dir}, err
	}
	return sc.report(), nil
}

func (sc *scanned) report() Report {
	r := Report{Dir: sc.dir, Drained: sc.drained, LastSeq: sc.last, Entries: len(sc.entries),
		Damage: sc.damage, RepairedLost: sc.lost, Opens: sc.fatal() == nil}
	if sc.ckptErr != nil {
		r.CheckpointErr = sc.ckptErr.Error()
	}
	for _, s := range sc.segments {
		last := s.last
		if s.frames == 0 {
			last = s.first - 1
		}
		r.Segments = append(r.Segments, SegmentReport{Path: s.path, First: s.first, Last: last, Frames: s.frames, Bytes: s.size})
	}
	for _, e := range sc.entries {
		if e.held {
			r.Held++
			if !sc.confirmed[e.seq] {
				r.Unsettled++
			}
		}
	}
	for seq := range sc.cancelled {
		if seq > sc.drained {
			r.Cancelled++
		}
	}
	for _, d := range sc.damage {
		r.Lost += d.Lost(sc.drained)
	}
	return r
}

// Format writes the report for people.
func (r Report) Format(w io.Writer) {
	fmt.Fprintf(w, "queue %s\n", r.Dir)
	if r.CheckpointErr != "" {
		fmt.Fprintf(w, "  drained checkpoint: unreadable (%s); every entry on disk counts as undrained\n", r.CheckpointErr)
	} else {
		fmt.Fprintf(w, "  drained checkpoint: entry %d\n", r.Drained)
	}
	fmt.Fprintf(w, "  segments: %d\n", len(r.Segments))
	for _, s := range r.Segments {
		fmt.Fprintf(w, "    %s  entries %d..%d  %d frames  %d bytes\n", s.Path, s.First, s.Last, s.Frames, s.Bytes)
	}
	fmt.Fprintf(w, "  last entry: %d\n", r.LastSeq)
	fmt.Fprintf(w, "  undrained entries: %d (held %d, of which unsettled %d; cancelled and dropped %d)\n",
		r.Entries, r.Held, r.Unsettled, r.Cancelled)
	if r.RepairedLost > 0 {
		fmt.Fprintf(w, "  marked lost by an earlier repair: %d entries after the checkpoint\n", r.RepairedLost)
	}
	if len(r.Damage) == 0 {
		fmt.Fprintf(w, "  damage: none\n")
	}
	for _, d := range r.Damage {
		fmt.Fprintf(w, "  damage: %s offset %d, %d bytes: %s\n", d.File, d.Offset, d.Bytes, d.Reason)
		switch {
		case d.Tail:
			fmt.Fprintf(w, "    the damaged end of the log, from entry %d on (a crash mid-write; Open cuts it off)\n", d.FirstSeq)
		case d.LastSeq < d.FirstSeq:
			fmt.Fprintf(w, "    no entry is unreadable (stray bytes)\n")
		case d.Drained:
			fmt.Fprintf(w, "    entries %d..%d unreadable, all drained already (the store has them; Open skips this)\n", d.FirstSeq, d.LastSeq)
		default:
			fmt.Fprintf(w, "    entries %d..%d unreadable; %d of them after the checkpoint (acknowledged reviews, or confirm/cancel records)\n",
				d.FirstSeq, d.LastSeq, d.Lost(r.Drained))
		}
	}
	if r.Lost > 0 {
		fmt.Fprintf(w, "  LOST: %d sequence numbers after the checkpoint cannot be read: up to %d acknowledged reviews\n", r.Lost, r.Lost)
	}
	if r.Opens {
		fmt.Fprintf(w, "  the queue opens\n")
	} else {
		fmt.Fprintf(w, "  the queue does NOT open; `srsproxy queue repair --queue-dir %s` cuts the damage\n", r.Dir)
	}
}

// Repair cuts every damaged part of the queue directory dir of the OS file
// system, keeping every readable frame: damaged bytes are replaced by a
// record naming the sequence numbers they held (so Open knows those entries
// are lost, not missing), a damaged end is cut, and a missing range of
// entries becomes a segment holding only such a record. The bytes cut are
// saved beside their segment (FILE.damaged-OFFSET). The directory must not
// be open in another process. The report is the state before the repair
// (what was cut and lost) with Saved filled in; Check after it reports the
// result. Overlapping segments are not repaired: that is an error.
func Repair(dir string) (Report, error) { return RepairFS(OSFS{}, dir) }

// RepairFS is Repair on fsys.
func RepairFS(fsys FS, dir string) (Report, error) {
	lock, err := fsys.Lock(dir)
	if err != nil {
		return Report{Dir: dir}, err
	}
	defer lock.Close()
	sc, err := scanDir(fsys, dir)
	if err != nil {
		return Report{Dir: dir}, err
	}
	r := sc.report()
	byFile := map[string][]Damage{}
	for _, d := range sc.damage {
		switch {
		case d.overlap:
			return r, fmt.Errorf("writebehind: repair: %s; move one of the overlapping segments away by hand", d.Error())
		case d.Bytes == 0 && d.Offset == 0 && d.LastSeq >= d.FirstSeq && isSegmentStartGap(sc, d):
			// Missing entries before a segment: a segment of one lost record.
			p := segmentPath(dir, d.FirstSeq)
			frame := appendFrame(nil, d.FirstSeq, lostRecord(d.LastSeq-d.FirstSeq+1))
			if err := writeFileDurable(fsys, p, frame); err != nil {
				return r, fmt.Errorf("writebehind: repair: %w", err)
			}
		default:
			byFile[d.File] = append(byFile[d.File], d)
		}
	}
	files := make([]string, 0, len(byFile))
	for f := range byFile {
		files = append(files, f)
	}
	slices.Sort(files)
	for _, f := range files {
		saved, err := repairSegment(fsys, f, byFile[f])
		r.Saved = append(r.Saved, saved...)
		if err != nil {
			return r, fmt.Errorf("writebehind: repair %s: %w", f, err)
		}
	}
	return r, nil
}

// isSegmentStartGap tells the damage of entries missing before a segment
// (between files) from a gap inside one.
func isSegmentStartGap(sc *scanned, d Damage) bool {
	for _, s := range sc.segments {
		if s.path == d.File {
			return d.LastSeq == s.first-1
		}
	}
	return false
}

// lostRecord is the payload of Repair's record for n unreadable entries.
func lostRecord(n uint64) []byte { return encodeSettle(payloadLost, n) }

// repairSegment rewrites one segment without its damaged parts.
func repairSegment(fsys FS, path string, ds []Damage) ([]string, error) {
	b, err := readFile(fsys, path)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ds, func(a, b Damage) int { return cmp.Compare(a.Offset, b.Offset) })
	var (
		out   []byte
		saved []string
		pos   int64
	)
	for _, d := range ds {
		if d.Offset < pos || d.Offset+d.Bytes > int64(len(b)) {
			return saved, errors.New("damage reports overlap; nothing rewritten")
		}
		out = append(out, b[pos:d.Offset]...)
		if !d.Tail && d.LastSeq >= d.FirstSeq {
			out = appendFrame(out, d.FirstSeq, lostRecord(d.LastSeq-d.FirstSeq+1))
		}
		if d.Bytes > 0 {
			name := fmt.Sprintf("%s.damaged-%d", path, d.Offset)
			if err := writeFileDurable(fsys, name, b[d.Offset:d.Offset+d.Bytes]); err != nil {
				return saved, err
			}
			saved = append(saved, name)
		}
		pos = d.Offset + d.Bytes
	}
	out = append(out, b[pos:]...)
	return saved, writeFileDurable(fsys, path, out)
}

// Summary is a one-line account of a report, for logs and the CLI.
func (r Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d undrained entries (%d unsettled), checkpoint %d, %d damaged parts", r.Entries, r.Unsettled, r.Drained, len(r.Damage))
	if r.Lost > 0 {
		fmt.Fprintf(&b, ", up to %d acknowledged reviews unreadable", r.Lost)
	}
	return b.String()
}
