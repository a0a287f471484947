// Package writebehind is the sidecar's durable local queue of acknowledged
// reviews and the drainer that writes them to the store (MariaDB) in batches.
//
// Append writes an entry to a segment log on local disk; Wait returns once an
// fsync covers it, and only then may SRS.REVIEW reply (invariant 1). One
// syncer goroutine fsyncs for all waiters (group commit) while appends go on
// writing. Every undrained entry is also kept in memory (its encoded bytes,
// indexed by user-season and by card and review id): that serves the
// read-your-writes overlay and feeds the drainer without reading the log
// back. The drainer applies batches to a Store and, only after the store has
// committed, advances a checkpoint and deletes drained segments. A crash in
// between replays reviews the store already has, which it ignores by review
// id (invariant 2).
//
// The file layer is an interface (FS), so tests run the queue over a strict
// in-memory file system that forgets every write not covered by an fsync
// when it "crashes" (NewStrictMemFS).
//
// The log is written here rather than with github.com/tidwall/wal (v1.2.1):
// that library adds an entry to its in-memory segment before the write
// syscall and keeps it there when the write fails, so after one ENOSPC its
// memory and its file disagree and later appends can land behind a torn
// frame; its Sync holds the lock that writes need, so appends stop during
// every fsync; TruncateFront rewrites the rest of the head segment on every
// drain; and its length prefix has no checksum, so a damaged length in the
// middle of a segment looks like a torn tail. See segment.go for the format.
//
// An error from Append means the review was not queued. An error from Wait
// (a failed fsync, ctx done) leaves the outcome unknown, as any timeout
// does: the entry may still be on disk and be drained, so a client retry
// must reuse the review id.
//
// A disk that refuses writes (full, failing) makes Append return an error
// wrapping *srs.QueueDiskError and Health report it, once logged per
// episode; it clears by itself with the first append that succeeds. Release
// and Cancel never fail because of the disk: their decision is applied in
// memory at once and their record is written again later if the disk
// refuses it, with a small preallocated reserve given back to make room.
package writebehind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// Ticket identifies an appended entry; Wait(t) returns once it is durable.
type Ticket uint64

// Stats is a snapshot of the queue.
type Stats struct {
	Depth        int           // undrained reviews, held ones included
	Held         int           // entries awaiting Release or Cancel (unsettled ones included)
	Bytes        int64         // their size in the log
	Memory       int64         // estimated heap of the in-memory index
	OldestAge    time.Duration // now minus the append time of the oldest undrained review; 0 when empty
	Drained      uint64        // reviews drained since Open, dead letters included
	Retries      uint64        // failed store calls that were retried
	DeadLetters  uint64        // reviews the store rejected for good
	Fsyncs       uint64        // fsyncs of the log
	LastDrainLag time.Duration // append-to-commit time of the oldest review of the last drained batch
	// LastDrained is when the drainer last committed a batch; zero before
	// the first one since Open.
	LastDrained time.Time
	// Stalled says reviews are waiting and nothing has been drained for
	// Config.StallAfter (counted from the later of the last commit, Open
	// and the oldest review's append): the store is down, or a held entry
	// is never settled.
	Stalled bool
	// UnwrittenSettles counts confirm and cancel records the disk refused,
	// waiting to be written again (their decisions already apply).
	UnwrittenSettles int
}

var errClosed = errors.New("writebehind: queue closed")

type settleRec struct {
	kind   byte
	target uint64
}

// settleRetry is how often the syncer writes refused settle records again.
const settleRetry = 250 * time.Millisecond

// Queue is a durable queue of acknowledged reviews. Its methods are safe for
// concurrent use.
type Queue struct {
	cfg  Config
	fs   FS
	log  *slog.Logger
	m    instruments
	lock io.Closer

	ckptMu     sync.Mutex // serializes checkpoint writes
	checkpoint File
	ckpt       atomic.Uint64 // the durable checkpoint

	kick       chan struct{} // Wait → syncer: someone needs an fsync
	wake       chan struct{} // Append, Release → drainer: there is work
	kickDrain  chan struct{} // Kick → drainer: retry the store now
	quit       chan struct{} // Close → syncer
	syncerDone chan struct{}

	mu sync.RWMutex
	// The log.
	file     File // tail segment, O_APPEND
	tailSize int64
	segments []segment
	nextSeq  uint64
	durable  uint64        // every entry up to here is fsynced
	synced   chan struct{} // closed and replaced when durable, failed or closed change
	failed   error         // sticky *srs.QueueDiskError: the log can no longer be trusted to persist appends
	closed   bool
	scratch  []byte // payload buffer
	frameBuf []byte
	// Disk trouble.
	diskErr     *srs.QueueDiskError // the current episode; nil when the disk takes writes
	diskSince   time.Time
	refused     int
	settleWarn  bool // the episode's settle-write warning was logged
	reserve     File // nil without one
	reserveSize int64
	unwritten   []settleRec
	unwrittenN  atomic.Int32
	episode     atomic.Bool // diskErr != nil, for the syncer
	// The undrained entries.
	ix          index
	held        map[Ticket]*entry // entries awaiting Release or Cancel
	drainedCh   chan struct{}     // closed and replaced when the drainer commits
	lastLag     time.Duration
	lastDrained time.Time
	progress    time.Time // last commit, or Open
	// The drainer.
	stopDrain context.CancelFunc
	drainDone chan struct{}

	drained, retries, deadLetters, fsyncs atomic.Uint64
	closeOnce                             sync.Once
	closeErr                              error
}

// Open opens the queue in cfg.Dir, creating it if needed, and recovers every
// undrained entry into memory. A damaged last entry (a crash mid-write: a
// partial frame or a bad checksum with nothing intact after it) is cut off
// and logged at WARN, as is damage in entries the checkpoint says are
// drained. Damage that makes undrained entries unreadable is an error naming
// the segment file, the offset and the entries (see Check and Repair), as is
// a directory already opened by another process.
func Open(cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	q := &Queue{
		cfg: cfg, fs: cfg.FS, log: cfg.Logger,
		kick: make(chan struct{}, 1), wake: make(chan struct{}, 1), kickDrain: make(chan struct{}, 1),
		quit: make(chan struct{}), syncerDone: make(chan struct{}),
		synced: make(chan struct{}), drainedCh: make(chan struct{}),
		ix: newIndex(), held: map[Ticket]*entry{},
	}
	if err := q.open(); err != nil {
		return nil, errors.Join(err, q.closeFiles())
	}
	go q.syncLoop()
	return q, nil
}

func (q *Queue) open() (err error) {
	dir := q.cfg.Dir
	for _, d := range []string{dir, filepath.Dir(q.cfg.DeadLetterPath)} {
		if err := q.fs.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("writebehind: %w", err)
		}
	}
	if q.lock, err = q.fs.Lock(dir); err != nil {
		return err
	}
	sc, err := scanDir(q.fs, dir)
	if err != nil {
		return err
	}
	if sc.ckptErr != nil {
		q.log.Warn("write-behind checkpoint unreadable; replaying every entry on disk (the store ignores duplicates)", "err", sc.ckptErr)
	}
	if d := sc.fatal(); d != nil {
		what := fmt.Sprintf("%d undrained entries cannot be read", d.Lost(sc.drained))
		if d.overlap {
			what = "the log's order is broken"
		}
		return fmt.Errorf("%s; %s, so the queue is not opened: see `srsproxy queue check --queue-dir %s`, and `srsproxy queue repair` to cut the damage",
			d.Error(), what, dir)
	}
	for _, d := range sc.damage {
		if !d.Tail {
			q.log.Warn("write-behind log damage where no undrained entry is lost (drained entries or stray bytes); skipped",
				"file", d.File, "offset", d.Offset, "bytes", d.Bytes, "first_entry", d.FirstSeq, "last_entry", d.LastSeq, "reason", d.Reason)
		}
	}
	if sc.lost > 0 {
		q.log.Warn("write-behind log holds entries a repair could not read; they are skipped", "entries", sc.lost)
	}
	if q.checkpoint, err = q.fs.OpenFile(filepath.Join(dir, checkpointFile), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return fmt.Errorf("writebehind: %w", err)
	}
	if q.reserve, err = q.fs.OpenFile(filepath.Join(dir, reserveFile), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return fmt.Errorf("writebehind: %w", err)
	}
	q.ckpt.Store(sc.drained)
	if fi, err := q.checkpoint.Stat(); err == nil && fi.Size() != 12 {
		// Give the checkpoint its 12 bytes now, so every later write is in
		// place and needs no new space on a full disk.
		if err := writeCheckpoint(q.checkpoint, sc.drained); err != nil {
			q.log.Warn("write-behind: cannot write the checkpoint (is the disk full?)", "err", err)
		}
	}
	// The checkpoint can be ahead of the log when a drained entry was lost
	// before its fsync; never hand out its sequence number again.
	q.nextSeq = max(sc.last, sc.drained) + 1
	// Delete the segments that hold only drained entries, the tail too when
	// everything is drained.
	segs := make([]segment, len(sc.segments))
	for i, s := range sc.segments {
		segs[i] = s.segment
	}
	all := segs
	if sc.last <= sc.drained {
		segs = nil
	}
	for len(segs) > 1 && segs[1].first <= sc.drained+1 {
		segs = segs[1:]
	}
	for _, s := range all[:len(all)-len(segs)] {
		if err := q.fs.Remove(s.path); err != nil {
			return fmt.Errorf("writebehind: remove drained segment: %w", err)
		}
	}
	if len(segs) == 0 {
		if q.file, err = createSegment(q.fs, dir, q.nextSeq); err != nil {
			return fmt.Errorf("writebehind: %w", err)
		}
		segs = []segment{{q.nextSeq, q.file.Name()}}
	} else if q.file, err = q.fs.OpenFile(segs[len(segs)-1].path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return fmt.Errorf("writebehind: %w", err)
	}
	if t := sc.tail(); t != nil {
		if t.File == q.file.Name() {
			if err := q.file.Truncate(t.Offset); err != nil {
				return fmt.Errorf("writebehind: cut damaged tail: %w", err)
			}
		}
		q.log.Warn("write-behind log ended in a damaged entry (a crash mid-write, before its fsync); cut it off",
			"file", t.File, "offset", t.Offset, "bytes", t.Bytes, "entry", t.FirstSeq)
	}
	if err := q.fs.SyncDir(dir); err != nil { // the checkpoint and reserve entries, the removals
		return fmt.Errorf("writebehind: %w", err)
	}
	fi, err := q.file.Stat()
	if err != nil {
		return fmt.Errorf("writebehind: %w", err)
	}
	// Entries the previous process wrote but never fsynced become durable now.
	if err := q.file.Sync(); err != nil {
		return fmt.Errorf("writebehind: fsync %s: %w", q.file.Name(), err)
	}
	q.tailSize, q.segments, q.durable = fi.Size(), segs, q.nextSeq-1
	if fi, err := q.reserve.Stat(); err == nil {
		q.reserveSize = fi.Size()
	}
	if err := q.restoreReserve(); err != nil {
		q.log.Warn("write-behind: cannot preallocate the reserve for settle records (is the disk full?); going on without", "err", err)
	} else if err := q.reserve.Sync(); err != nil {
		q.log.Warn("write-behind: fsync of the reserve failed", "err", err)
	}
	for _, e := range sc.entries {
		q.ix.add(e)
		if e.held && !sc.confirmed[e.seq] {
			// Unsettled: written by Hold, neither released nor cancelled
			// before the last process stopped. It stays held until the
			// owner decides it (Unsettled, then Release or Cancel).
			q.held[Ticket(e.seq)] = e
		} else {
			e.held = false
		}
	}
	q.progress = q.cfg.Now()
	q.m, err = newInstruments(q.cfg.Meter, q.Stats, q.Health)
	return err
}

// Append writes r to the log now (one write syscall, so a full or failing
// disk surfaces here) and indexes it as pending. It returns srs.ErrQueueFull
// when the undrained bytes would pass Config.MaxBytes or the index's memory
// Config.MaxMemory (nothing is written), and an error wrapping
// *srs.QueueDiskError when the disk refuses the write or the log failed (an
// fsync error: every later Append fails too, the log can no longer prove
// what it holds); either way r is not queued and must not be acknowledged.
func (q *Queue) Append(r srs.Review) (Ticket, error) {
	return q.append(r, false)
}

// Hold is Append for a review whose outcome is not decided yet: the entry is
// written at once (so a crash after the caller acts on it still finds it),
// but the drainer, Pending and PendingReview ignore it until Release. Cancel
// withdraws it. The review path holds its entry across the cache's
// compare-and-set, which can lose to a concurrent review.
func (q *Queue) Hold(r srs.Review) (Ticket, error) {
	return q.append(r, true)
}

// Release makes a held entry an ordinary pending entry at once. It writes a
// confirm record (no fsync of its own: the wait for the review's durability
// covers it), so recovery knows the entry was settled; if the disk refuses
// the record, it is written again later, and a restart before that finds the
// entry unsettled. The only error is for a ticket that is not held.
func (q *Queue) Release(t Ticket) error {
	q.mu.Lock()
	e, ok := q.held[t]
	if !ok {
		q.mu.Unlock()
		return fmt.Errorf("writebehind: release: entry %d is not held", t)
	}
	e.held = false
	delete(q.held, t)
	q.settle(payloadConfirm, e.seq)
	q.mu.Unlock()
	q.signalWork()
	return nil
}

// Cancel withdraws a held entry at once: it is forgotten, never drained, and
// a cancel record tells recovery to drop it too. If the disk refuses the
// record, it is written again later; a restart before that finds the entry
// unsettled (never acknowledged, so its owner may keep or drop it). The only
// error is for a ticket that is not held.
func (q *Queue) Cancel(t Ticket) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.held[t]
	if !ok {
		return fmt.Errorf("writebehind: cancel: entry %d is not held", t)
	}
	delete(q.held, t)
	q.ix.remove(e)
	q.settle(payloadCancel, e.seq)
	return nil
}

// Unsettled lists the entries awaiting Release or Cancel; after Open, the
// recovered ones whose review may or may not have reached the cache (see
// Hold). Each must be settled before the drainer can pass it.
func (q *Queue) Unsettled() map[Ticket]srs.Review {
	q.mu.RLock()
	defer q.mu.RUnlock()
	out := make(map[Ticket]srs.Review, len(q.held))
	for t, e := range q.held {
		if r, err := e.decode(); err == nil {
			out[t] = r
		}
	}
	return out
}

// Health returns nil while the queue can accept reviews; otherwise an error
// wrapping *srs.QueueDiskError (the disk refuses writes, or an fsync failed
// and the log is failed for good), or an error for a closed queue.
func (q *Queue) Health() error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	switch {
	case q.closed:
		return errClosed
	case q.failed != nil:
		return q.failed
	case q.diskErr != nil:
		return q.diskErr
	}
	return nil
}

func (q *Queue) append(r srs.Review, held bool) (Ticket, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.writable(); err != nil {
		return 0, fmt.Errorf("writebehind: append: %w", err)
	}
	now := q.cfg.Now()
	q.scratch = encodeEntry(q.scratch[:0], now.UnixMilli(), r, held)
	payload := q.scratch
	if len(payload) > maxPayload {
		return 0, fmt.Errorf("writebehind: review %q encodes to %d bytes, over the %d-byte limit", r.ID, len(payload), maxPayload)
	}
	ep, err := splitEntry(payload)
	if err != nil {
		return 0, fmt.Errorf("writebehind: append: %w", err)
	}
	e := &entry{at: now.UnixNano(), review: append(make([]byte, 0, len(ep.review)), ep.review...),
		size: int32(frameHeader + len(payload)), held: held}
	if q.ix.bytes+int64(e.size) > q.cfg.MaxBytes || q.ix.mem+e.memCost() > q.cfg.MaxMemory {
		return 0, srs.ErrQueueFull
	}
	if q.diskErr != nil {
		// Space for a review only once the reserve for settle records is whole.
		if err := q.restoreReserve(); err != nil {
			return 0, q.refuse(err)
		}
	}
	seq, err := q.write(payload)
	if err != nil {
		if q.failed != nil {
			return 0, fmt.Errorf("writebehind: append: %w", q.failed)
		}
		return 0, q.refuse(err)
	}
	q.endEpisode()
	if len(q.unwritten) > 0 {
		q.flushSettles()
	}
	e.seq = seq
	q.ix.add(e)
	if held {
		q.held[Ticket(seq)] = e
	} else {
		q.signalWork()
	}
	return Ticket(seq), nil
}

func (q *Queue) writable() error {
	switch {
	case q.closed:
		return errClosed
	case q.failed != nil:
		return q.failed
	}
	return nil
}

// refuse counts a review the disk refused, starting an episode (logged once)
// with the first. Called with q.mu held.
func (q *Queue) refuse(err error) error {
	q.startEpisode(err)
	q.refused++
	return fmt.Errorf("writebehind: append: %w", &srs.QueueDiskError{Dir: q.cfg.Dir, Err: err})
}

// startEpisode records that the disk refuses writes. Called with q.mu held.
func (q *Queue) startEpisode(err error) {
	if q.diskErr != nil {
		return
	}
	q.diskErr = &srs.QueueDiskError{Dir: q.cfg.Dir, Err: err}
	q.diskSince, q.refused = q.cfg.Now(), 0
	q.episode.Store(true)
	select {
	case q.kick <- struct{}{}: // the syncer starts probing
	default:
	}
	q.log.Error("write-behind queue cannot write to its disk; refusing reviews until it can (logged once until it clears)",
		"dir", q.cfg.Dir, "err", err)
	// Make room if everything is drained: the tail holds only drained
	// entries and trailing records.
	if len(q.ix.entries) == 0 && q.ckpt.Load() < q.nextSeq-1 {
		if err := q.advanceCheckpoint(q.nextSeq - 1); err != nil {
			return
		}
	}
	for _, p := range q.reclaim() {
		if err := q.fs.Remove(p); err != nil {
			q.log.Warn("write-behind: cannot delete drained segment", "file", p, "err", err)
		}
	}
}

// endEpisode ends a disk episode after a successful write. Called with q.mu held.
func (q *Queue) endEpisode() {
	if q.diskErr == nil {
		return
	}
	q.log.Warn("write-behind queue disk takes writes again; accepting reviews",
		"dir", q.cfg.Dir, "refused", q.refused, "after", q.cfg.Now().Sub(q.diskSince).String())
	q.diskErr, q.settleWarn = nil, false
	q.episode.Store(false)
}

// probeSize is the padding record a probe writes: room for a few reviews.
const probeSize = 4 << 10

// probe tests the disk during an episode, so it clears without reviews
// coming (a sidecar that is not ready gets none): the reserve must fit
// again, then a padding record of probeSize, which is taken back at once
// (a crash before that leaves a record recovery ignores).
func (q *Queue) probe() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.diskErr == nil || q.writable() != nil {
		return
	}
	if err := q.restoreReserve(); err != nil {
		return
	}
	pad := make([]byte, probeSize)
	pad[0] = payloadPad
	q.frameBuf = appendFrame(q.frameBuf[:0], q.nextSeq, pad)
	_, err := q.file.Write(q.frameBuf)
	if terr := q.file.Truncate(q.tailSize); terr != nil {
		q.fail(fmt.Errorf("writebehind: cannot remove a probe record from %s: %w", q.file.Name(), terr))
		return
	}
	if err != nil {
		return
	}
	q.endEpisode()
	if len(q.unwritten) > 0 {
		q.flushSettles()
	}
}

// settle writes a confirm or cancel record best effort: a refused record is
// written again later, with the reserve given back to make room. Called with
// q.mu held.
func (q *Queue) settle(kind byte, target uint64) {
	if q.closed || q.failed != nil {
		return // nothing more is written; recovery finds the entry unsettled
	}
	if len(q.unwritten) > 0 {
		q.flushSettles()
	}
	_, err := q.write(encodeSettle(kind, target))
	if err == nil || q.failed != nil {
		return
	}
	q.startEpisode(err)
	if q.releaseReserve() {
		if _, err = q.write(encodeSettle(kind, target)); err == nil || q.failed != nil {
			return
		}
	}
	q.unwritten = append(q.unwritten, settleRec{kind, target})
	q.unwrittenN.Store(int32(len(q.unwritten)))
	select {
	case q.kick <- struct{}{}: // the syncer starts its retry timer
	default:
	}
	if !q.settleWarn {
		q.settleWarn = true
		q.log.Warn("write-behind: the disk refused a confirm or cancel record; its decision applies and the record is written again later",
			"dir", q.cfg.Dir, "err", err)
	}
}

// flushSettles writes the refused settle records again, dropping those the
// checkpoint already covers. Called with q.mu held.
func (q *Queue) flushSettles() {
	ck := q.ckpt.Load()
	var rest []settleRec
	for i, s := range q.unwritten {
		if s.target <= ck {
			continue
		}
		if q.closed || q.failed != nil {
			break
		}
		if _, err := q.write(encodeSettle(s.kind, s.target)); err != nil {
			rest = append(rest, q.unwritten[i:]...)
			break
		}
	}
	q.unwritten = rest
	q.unwrittenN.Store(int32(len(rest)))
}

// releaseReserve gives the reserve's space back to the file system, so
// settle records fit; false if there is none. Called with q.mu held.
func (q *Queue) releaseReserve() bool {
	if q.reserve == nil || q.reserveSize == 0 {
		return false
	}
	if err := q.reserve.Truncate(0); err != nil {
		return false
	}
	q.reserveSize = 0
	return true
}

// restoreReserve grows the reserve back to its full size; on failure it
// gives back what it took. Called with q.mu held (or from open).
func (q *Queue) restoreReserve() error {
	if q.reserve == nil || q.reserveSize >= q.cfg.reserveSize {
		return nil
	}
	if _, err := q.reserve.WriteAt(make([]byte, q.cfg.reserveSize-q.reserveSize), q.reserveSize); err != nil {
		if terr := q.reserve.Truncate(q.reserveSize); terr != nil {
			q.reserveSize = q.cfg.reserveSize // unknown; assume it took the space
		}
		return err
	}
	q.reserveSize = q.cfg.reserveSize
	return nil
}

// write appends one frame to the log and returns its sequence number.
// Called with q.mu held.
func (q *Queue) write(payload []byte) (uint64, error) {
	if err := q.writable(); err != nil {
		return 0, err
	}
	if q.tailSize >= q.cfg.segmentSize {
		if err := q.rotate(); err != nil {
			return 0, err
		}
	}
	seq := q.nextSeq
	q.frameBuf = appendFrame(q.frameBuf[:0], seq, payload)
	if n, err := q.file.Write(q.frameBuf); err != nil {
		if n > 0 {
			// Take the partial frame back, or later entries would follow damage.
			if terr := q.file.Truncate(q.tailSize); terr != nil {
				q.fail(fmt.Errorf("writebehind: cannot remove a partial entry from %s: %w", q.file.Name(), terr))
			}
		}
		return 0, err
	}
	q.tailSize += int64(len(q.frameBuf))
	q.nextSeq++
	return seq, nil
}

// Wait returns nil once the entry of t is durable: under FsyncAlways after an
// fsync that covers it, under FsyncInterval at once. It returns the fsync
// error (wrapping *srs.QueueDiskError) if the log failed first, or ctx's error.
func (q *Queue) Wait(ctx context.Context, t Ticket) error {
	if q.cfg.Fsync == FsyncInterval {
		return nil
	}
	return q.waitDurable(ctx, uint64(t))
}

// Sync blocks until every entry and record written before the call is
// durable, under either FsyncMode (it asks the syncer for an fsync). Its
// errors are Wait's.
func (q *Queue) Sync(ctx context.Context) error {
	q.mu.RLock()
	upto := q.nextSeq - 1
	q.mu.RUnlock()
	return q.waitDurable(ctx, upto)
}

func (q *Queue) waitDurable(ctx context.Context, t uint64) error {
	for {
		q.mu.RLock()
		durable, failed, closed, synced := q.durable, q.failed, q.closed, q.synced
		q.mu.RUnlock()
		switch {
		case t <= durable:
			return nil
		case failed != nil:
			return failed
		case closed:
			return errClosed
		}
		select {
		case q.kick <- struct{}{}:
		default: // a kick is already pending; the syncer will cover t
		}
		select {
		case <-synced:
		case <-ctx.Done():
			return fmt.Errorf("writebehind: wait for fsync: %w", ctx.Err())
		}
	}
}

// AppendDurable appends r and waits until it is durable; see Append and Wait.
func (q *Queue) AppendDurable(ctx context.Context, r srs.Review) error {
	t, err := q.Append(r)
	if err != nil {
		return err
	}
	return q.Wait(ctx, t)
}

// Pending returns the undrained reviews of one user-season in append order
// (the read-your-writes overlay), or nil. Held entries are left out.
func (q *Queue) Pending(season, player string) []srs.Review {
	q.mu.RLock()
	defer q.mu.RUnlock()
	var out []srs.Review
	for _, e := range q.ix.user(season, player) {
		if e.held {
			continue
		}
		if r, err := e.decode(); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// PendingUsers lists the user-seasons with undrained reviews, each once.
func (q *Queue) PendingUsers() [][2]string {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.ix.users()
}

// PendingReview returns the newest undrained, not held review with this id
// on this card (season, player, question): review ids are unique per card.
func (q *Queue) PendingReview(season, player, question, reviewID string) (srs.Review, bool) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	e := q.ix.card(season, player, question, reviewID)
	if e == nil {
		return srs.Review{}, false
	}
	r, err := e.decode()
	return r, err == nil
}

// PendingSeasons returns the number of undrained reviews per season.
func (q *Queue) PendingSeasons() map[string]int {
	q.mu.RLock()
	defer q.mu.RUnlock()
	out := make(map[string]int, len(q.ix.seasons))
	for s, n := range q.ix.seasons {
		out[s] = n
	}
	return out
}

// Stats returns a snapshot of the queue.
func (q *Queue) Stats() Stats {
	q.mu.RLock()
	defer q.mu.RUnlock()
	s := Stats{
		Depth: len(q.ix.entries), Held: len(q.held), Bytes: q.ix.bytes, Memory: q.ix.mem,
		LastDrainLag: q.lastLag, LastDrained: q.lastDrained, UnwrittenSettles: len(q.unwritten),
		Drained: q.drained.Load(), Retries: q.retries.Load(),
		DeadLetters: q.deadLetters.Load(), Fsyncs: q.fsyncs.Load(),
	}
	if len(q.ix.entries) > 0 {
		now := q.cfg.Now()
		oldest := time.Unix(0, q.ix.entries[0].at)
		s.OldestAge = max(0, now.Sub(oldest))
		since := q.progress
		if oldest.After(since) {
			since = oldest
		}
		s.Stalled = now.Sub(since) > q.cfg.StallAfter
	}
	return s
}

// Close stops the drainer, writes what settle records it can, fsyncs and
// closes the log. Undrained entries stay on disk for the next Open. Later
// calls return the first call's result.
func (q *Queue) Close() error {
	q.Stop()
	q.closeOnce.Do(func() {
		close(q.quit)
		<-q.syncerDone
		q.mu.Lock()
		defer q.mu.Unlock()
		if len(q.unwritten) > 0 {
			q.flushSettles()
		}
		var err error
		if q.failed == nil {
			if err = q.file.Sync(); err == nil {
				q.fsynced(q.nextSeq - 1)
			}
		}
		q.closed = true
		q.signalSynced()
		var unreg error
		if q.m.reg != nil {
			unreg = q.m.reg.Unregister()
		}
		q.closeErr = errors.Join(err, unreg, q.closeFiles())
	})
	return q.closeErr
}

// ReadAll decodes every undrained entry in a queue directory of the OS file
// system, in append order, without opening it for writing; it may run beside
// the process that has the queue open. A damaged last entry is left out, as
// Open would cut it; damage Open would refuse is an error.
func ReadAll(dir string) ([]srs.Review, error) { return ReadAllFS(OSFS{}, dir) }

// ReadAllFS is ReadAll on fsys.
func ReadAllFS(fsys FS, dir string) ([]srs.Review, error) {
	sc, err := scanDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	if d := sc.fatal(); d != nil {
		return nil, d
	}
	out := make([]srs.Review, len(sc.entries))
	for i, e := range sc.entries {
		if out[i], err = e.decode(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (q *Queue) closeFiles() error {
	var errs []error
	for _, f := range []io.Closer{q.file, q.checkpoint, q.reserve, q.lock} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// rotate fsyncs the tail segment, which makes it final, and starts the next
// one. Called with q.mu held; appends wait for this one fsync per segment.
func (q *Queue) rotate() error {
	if err := q.file.Sync(); err != nil {
		q.fail(fmt.Errorf("writebehind: fsync %s: %w", q.file.Name(), err))
		return q.failed
	}
	q.fsynced(q.nextSeq - 1)
	f, err := createSegment(q.fs, q.cfg.Dir, q.nextSeq)
	if err != nil {
		return err
	}
	if err := q.file.Close(); err != nil {
		q.log.Warn("write-behind: close full segment", "file", q.file.Name(), "err", err)
	}
	q.file, q.tailSize = f, 0
	q.segments = append(q.segments, segment{q.nextSeq, f.Name()})
	return nil
}

// reclaim drops the segments the durable checkpoint covers from the list
// and returns their paths to delete: whole segments before the tail, and
// the tail itself when everything in it is covered and it is big (or the
// disk refuses writes): it is replaced by an empty segment. Called with q.mu
// held.
func (q *Queue) reclaim() []string {
	ck := q.ckpt.Load()
	var done []string
	for len(q.segments) > 1 && q.segments[1].first <= ck+1 {
		done = append(done, q.segments[0].path)
		q.segments = q.segments[1:]
	}
	if len(q.segments) == 1 && len(q.ix.entries) == 0 && ck == q.nextSeq-1 && q.segments[0].first < q.nextSeq &&
		(q.tailSize >= q.cfg.tailReclaim || q.diskErr != nil) && q.failed == nil && !q.closed {
		old := q.segments[0]
		if err := q.rotate(); err != nil {
			q.log.Warn("write-behind: cannot start a new segment to reclaim the drained tail", "file", old.path, "err", err)
			return done
		}
		done = append(done, old.path)
		q.segments = q.segments[1:]
	}
	return done
}

// advanceCheckpoint durably records that every entry up to seq is drained
// or cancelled. Safe without q.mu.
func (q *Queue) advanceCheckpoint(seq uint64) error {
	q.ckptMu.Lock()
	defer q.ckptMu.Unlock()
	if seq <= q.ckpt.Load() {
		return nil
	}
	if err := writeCheckpoint(q.checkpoint, seq); err != nil {
		return err
	}
	q.ckpt.Store(seq)
	return nil
}

// syncLoop is the one goroutine that fsyncs the log: on demand from Wait
// under FsyncAlways, on a ticker under FsyncInterval. It also writes refused
// settle records again and probes a disk that refuses writes.
func (q *Queue) syncLoop() {
	defer close(q.syncerDone)
	var tick <-chan time.Time
	if q.cfg.Fsync == FsyncInterval {
		t := time.NewTicker(q.cfg.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var retry, probe <-chan time.Time
		if q.unwrittenN.Load() > 0 {
			retry = time.After(settleRetry)
		}
		if q.episode.Load() {
			probe = time.After(q.cfg.diskProbe)
		}
		select {
		case <-q.quit:
			return
		case <-q.kick:
		case <-tick:
		case <-retry:
			q.mu.Lock()
			q.flushSettles()
			q.mu.Unlock()
		case <-probe:
			q.probe()
		}
		q.sync()
	}
}

// sync fsyncs the tail segment without holding q.mu, so appends go on while
// the disk flushes; the fsync covers every entry written before it started,
// which is what the waiters of all those entries share.
func (q *Queue) sync() {
	q.mu.RLock()
	f, upto, idle := q.file, q.nextSeq-1, q.failed != nil || q.closed || q.nextSeq-1 <= q.durable
	q.mu.RUnlock()
	if idle {
		return
	}
	err := f.Sync()
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case err == nil:
		q.fsynced(upto)
	case errors.Is(err, os.ErrClosed) && f != q.file:
		// rotate fsynced and closed f meanwhile, covering upto.
	default:
		q.fail(fmt.Errorf("writebehind: fsync %s: %w", f.Name(), err))
	}
}

// fsynced records an fsync covering every entry up to upto. Called with q.mu held.
func (q *Queue) fsynced(upto uint64) {
	q.fsyncs.Add(1)
	if q.m.fsyncs != nil {
		q.m.fsyncs.Add(context.Background(), 1)
	}
	q.durable = max(q.durable, upto)
	q.signalSynced()
}

// fail makes the log refuse appends from now on. Called with q.mu held.
func (q *Queue) fail(err error) {
	if q.failed != nil {
		return
	}
	q.log.Error("write-behind log failed; refusing reviews until restart", "err", err)
	q.failed = &srs.QueueDiskError{Dir: q.cfg.Dir, Err: err}
	q.signalSynced()
}

func (q *Queue) signalSynced() {
	close(q.synced)
	q.synced = make(chan struct{})
}

func (q *Queue) signalWork() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
