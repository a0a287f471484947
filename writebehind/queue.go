// Package writebehind is the sidecar's durable local queue of acknowledged
// reviews and the drainer that writes them to the store (MariaDB) in batches.
//
// Append writes an entry to a segment log on local disk; Wait returns once an
// fsync covers it, and only then may SRS.REVIEW reply (invariant 1). One
// syncer goroutine fsyncs for all waiters (group commit) while appends go on
// writing. Every undrained entry is also kept in memory, indexed by
// user-season and by review id: that serves the read-your-writes overlay and
// feeds the drainer without reading the log back. The drainer applies
// batches to a Store and, only after the store has committed, advances a
// checkpoint and deletes drained segments. A crash in between replays reviews
// the store already has, which it ignores by review id (invariant 2).
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
package writebehind

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// Ticket identifies an appended entry; Wait(t) returns once it is durable.
type Ticket uint64

// Stats is a snapshot of the queue.
type Stats struct {
	Depth        int           // undrained reviews
	Bytes        int64         // their size in the log
	OldestAge    time.Duration // age of the oldest undrained review
	Drained      uint64        // reviews drained since Open, dead letters included
	Retries      uint64        // failed store calls that were retried
	DeadLetters  uint64        // reviews the store rejected for good
	Fsyncs       uint64        // fsyncs of the log
	LastDrainLag time.Duration // append-to-commit time of the oldest review of the last drained batch
}

var errClosed = errors.New("writebehind: queue closed")

// entry is one undrained review.
type entry struct {
	seq    uint64
	review srs.Review
	size   int64     // frame bytes in the log
	at     time.Time // when it was appended
	held   bool      // written, but not to be drained until Release
}

type userKey struct{ season, player string }

type reviewKey struct{ season, id string }

// Queue is a durable queue of acknowledged reviews. Its methods are safe for
// concurrent use.
type Queue struct {
	cfg        Config
	log        *slog.Logger
	m          instruments
	lock       *os.File
	checkpoint *os.File // written by the drainer only

	kick       chan struct{} // Wait → syncer: someone needs an fsync
	wake       chan struct{} // Append → drainer: there is work
	quit       chan struct{} // Close → syncer
	syncerDone chan struct{}

	mu sync.RWMutex
	// The log.
	file     *os.File // tail segment, O_APPEND
	tailSize int64
	segments []segment
	nextSeq  uint64
	durable  uint64        // every entry up to here is fsynced
	synced   chan struct{} // closed and replaced when durable, failed or closed change
	failed   error         // sticky: the log can no longer be trusted to persist appends
	closed   bool
	// The undrained entries.
	entries    []*entry // append order
	byUser     map[userKey][]*entry
	byID       map[reviewKey]*entry
	held       map[Ticket]*entry // entries awaiting Release or Cancel
	seasons    map[string]int
	bytes      int64
	drainedSeq uint64        // every entry up to here is drained
	drainedCh  chan struct{} // closed and replaced when drainedSeq advances
	lastLag    time.Duration
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
// and logged at WARN. Damage before the tail is an error naming the segment
// file and the entry, as is a directory already opened by another process.
func Open(cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	q := &Queue{
		cfg: cfg, log: cfg.Logger,
		kick: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		quit: make(chan struct{}), syncerDone: make(chan struct{}),
		synced: make(chan struct{}), drainedCh: make(chan struct{}),
		byUser: map[userKey][]*entry{}, byID: map[reviewKey]*entry{}, seasons: map[string]int{},
		held: map[Ticket]*entry{},
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
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("writebehind: %w", err)
		}
	}
	if q.lock, err = lockDir(dir); err != nil {
		return err
	}
	rec, err := recoverDir(dir, q.log)
	if err != nil {
		return err
	}
	if t := rec.torn; t != nil {
		if err := os.Truncate(t.path, t.offset); err != nil {
			return fmt.Errorf("writebehind: cut damaged tail: %w", err)
		}
		q.log.Warn("write-behind log ended in a damaged entry (a crash mid-write, before its fsync); cut it off",
			"file", t.path, "offset", t.offset, "bytes", t.size, "entry", t.seq)
	}
	if q.checkpoint, err = os.OpenFile(filepath.Join(dir, checkpointFile), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return fmt.Errorf("writebehind: %w", err)
	}
	// The checkpoint can be ahead of the log when a drained entry was lost
	// before its fsync; never hand out its sequence number again.
	q.nextSeq = max(rec.last, rec.drained) + 1
	// Delete the segments that hold only drained entries, the tail too when
	// everything is drained.
	segs := rec.segments
	if rec.last <= rec.drained {
		segs = nil
	}
	for len(segs) > 1 && segs[1].first <= rec.drained+1 {
		segs = segs[1:]
	}
	for _, s := range rec.segments[:len(rec.segments)-len(segs)] {
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("writebehind: remove drained segment: %w", err)
		}
	}
	if len(segs) == 0 {
		if q.file, err = createSegment(dir, q.nextSeq); err != nil {
			return fmt.Errorf("writebehind: %w", err)
		}
		segs = []segment{{q.nextSeq, q.file.Name()}}
	} else if q.file, err = os.OpenFile(segs[len(segs)-1].path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
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
	q.drainedSeq = q.nextSeq - 1
	if len(rec.entries) > 0 {
		q.drainedSeq = rec.entries[0].seq - 1
	}
	for _, e := range rec.entries {
		q.index(e)
		if e.held && !rec.confirmed[e.seq] {
			// Unsettled: written by Hold, neither released nor cancelled
			// before the last process stopped. It stays held until the
			// owner decides it (Unsettled, then Release or Cancel).
			q.held[Ticket(e.seq)] = e
		} else {
			e.held = false
		}
	}
	q.m, err = newInstruments(q.cfg.Meter, q.Stats)
	return err
}

// Append writes r to the log now (one write syscall, so a full or failing
// disk surfaces here) and indexes it as pending. It returns srs.ErrQueueFull
// when the undrained bytes would pass Config.MaxBytes (nothing is written),
// or a wrapped disk error; either way r is not queued and must not be
// acknowledged. After an fsync failure every Append fails: the log can no
// longer prove what it holds.
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

// Release makes a held entry an ordinary pending entry. It writes a confirm
// record (no fsync of its own: the wait for the review's durability covers
// it), so recovery knows the entry was settled. An error means the record
// was not written: the entry stays held in this process.
func (q *Queue) Release(t Ticket) error {
	q.mu.Lock()
	e, ok := q.held[t]
	if !ok {
		q.mu.Unlock()
		return fmt.Errorf("writebehind: release: entry %d is not held", t)
	}
	if _, err := q.write(encodeSettle(payloadConfirm, e.seq)); err != nil {
		q.mu.Unlock()
		return fmt.Errorf("writebehind: release: %w", err)
	}
	e.held = false
	delete(q.held, t)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// Unsettled lists the recovered entries whose review may or may not have
// reached the cache (see Hold); each must be settled with Release or Cancel
// before the drainer can pass it.
func (q *Queue) Unsettled() map[Ticket]srs.Review {
	q.mu.RLock()
	defer q.mu.RUnlock()
	out := make(map[Ticket]srs.Review, len(q.held))
	for t, e := range q.held {
		out[t] = e.review
	}
	return out
}

// Cancel withdraws a held entry: it writes a cancel record (so recovery drops
// the entry too) and forgets the entry. An error means the cancel record was
// not written; the entry stays held in this process and would be recovered
// after a restart.
func (q *Queue) Cancel(t Ticket) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.held[t]
	if !ok {
		return fmt.Errorf("writebehind: cancel: entry %d is not held", t)
	}
	if _, err := q.write(encodeSettle(payloadCancel, e.seq)); err != nil {
		return fmt.Errorf("writebehind: cancel: %w", err)
	}
	delete(q.held, t)
	q.remove(e)
	return nil
}

func (q *Queue) append(r srs.Review, held bool) (Ticket, error) {
	at := q.cfg.Now()
	payload := encodeEntry(nil, at.UnixMilli(), r)
	if held {
		payload[0] = payloadHeldVersion
	}
	if len(payload) > maxPayload {
		return 0, fmt.Errorf("writebehind: review %q encodes to %d bytes, over the %d-byte limit", r.ID, len(payload), maxPayload)
	}
	size := int64(frameHeader + len(payload))
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes+size > q.cfg.MaxBytes && !q.closed && q.failed == nil {
		return 0, srs.ErrQueueFull
	}
	seq, err := q.write(payload)
	if err != nil {
		return 0, fmt.Errorf("writebehind: append: %w", err)
	}
	e := &entry{seq: seq, review: r, size: size, at: at, held: held}
	q.index(e)
	if held {
		q.held[Ticket(seq)] = e
	} else {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return Ticket(seq), nil
}

// write appends one frame to the log and returns its sequence number.
// Called with q.mu held.
func (q *Queue) write(payload []byte) (uint64, error) {
	switch {
	case q.closed:
		return 0, errClosed
	case q.failed != nil:
		return 0, q.failed
	}
	if q.tailSize >= q.cfg.segmentSize {
		if err := q.rotate(); err != nil {
			return 0, err
		}
	}
	seq := q.nextSeq
	frame := appendFrame(make([]byte, 0, frameHeader+len(payload)), seq, payload)
	if n, err := q.file.Write(frame); err != nil {
		if n > 0 {
			// Take the partial frame back, or later entries would follow damage.
			if terr := q.file.Truncate(q.tailSize); terr != nil {
				q.fail(fmt.Errorf("writebehind: cannot remove a partial entry from %s: %w", q.file.Name(), terr))
			}
		}
		return 0, err
	}
	q.tailSize += int64(len(frame))
	q.nextSeq++
	return seq, nil
}

// Wait returns nil once the entry of t is durable: under FsyncAlways after an
// fsync that covers it, under FsyncInterval at once. It returns the fsync
// error if the log failed first, or ctx's error.
func (q *Queue) Wait(ctx context.Context, t Ticket) error {
	if q.cfg.Fsync == FsyncInterval {
		return nil
	}
	for {
		q.mu.RLock()
		durable, failed, closed, synced := q.durable, q.failed, q.closed, q.synced
		q.mu.RUnlock()
		switch {
		case uint64(t) <= durable:
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
// (the read-your-writes overlay), or nil.
func (q *Queue) Pending(season, player string) []srs.Review {
	q.mu.RLock()
	defer q.mu.RUnlock()
	es := q.byUser[userKey{season, player}]
	if len(es) == 0 {
		return nil
	}
	out := make([]srs.Review, 0, len(es))
	for _, e := range es {
		if !e.held {
			out = append(out, e.review)
		}
	}
	return out
}

// PendingUsers lists the user-seasons with undrained reviews, each once.
func (q *Queue) PendingUsers() [][2]string {
	q.mu.RLock()
	defer q.mu.RUnlock()
	out := make([][2]string, 0, len(q.byUser))
	for u := range q.byUser {
		out = append(out, [2]string{u.season, u.player})
	}
	return out
}

// PendingReview returns the undrained review with this id in this season.
func (q *Queue) PendingReview(season, reviewID string) (srs.Review, bool) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	e, ok := q.byID[reviewKey{season, reviewID}]
	if !ok || e.held {
		return srs.Review{}, false
	}
	return e.review, true
}

// PendingSeasons returns the number of undrained reviews per season.
func (q *Queue) PendingSeasons() map[string]int {
	q.mu.RLock()
	defer q.mu.RUnlock()
	out := make(map[string]int, len(q.seasons))
	for s, n := range q.seasons {
		out[s] = n
	}
	return out
}

// Stats returns a snapshot of the queue.
func (q *Queue) Stats() Stats {
	q.mu.RLock()
	defer q.mu.RUnlock()
	s := Stats{
		Depth: len(q.entries), Bytes: q.bytes, LastDrainLag: q.lastLag,
		Drained: q.drained.Load(), Retries: q.retries.Load(),
		DeadLetters: q.deadLetters.Load(), Fsyncs: q.fsyncs.Load(),
	}
	if len(q.entries) > 0 {
		s.OldestAge = q.cfg.Now().Sub(q.entries[0].at)
	}
	return s
}

// Close stops the drainer, fsyncs and closes the log. Undrained entries stay
// on disk for the next Open. Later calls return the first call's result.
func (q *Queue) Close() error {
	q.Stop()
	q.closeOnce.Do(func() {
		close(q.quit)
		<-q.syncerDone
		q.mu.Lock()
		defer q.mu.Unlock()
		var err error
		if q.failed == nil {
			if err = q.file.Sync(); err == nil {
				q.fsynced(q.nextSeq - 1)
			}
		}
		q.closed = true
		q.signalSynced()
		q.closeErr = errors.Join(err, q.m.reg.Unregister(), q.closeFiles())
	})
	return q.closeErr
}

// ReadAll decodes every undrained entry in a queue directory, in append
// order, without opening it for writing; it may run beside the process that
// has the queue open. A damaged last entry is left out, as Open would cut it.
func ReadAll(dir string) ([]srs.Review, error) {
	rec, err := recoverDir(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	out := make([]srs.Review, len(rec.entries))
	for i, e := range rec.entries {
		out[i] = e.review
	}
	return out, nil
}

func (q *Queue) closeFiles() error {
	var errs []error
	for _, f := range []*os.File{q.file, q.checkpoint, q.lock} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// index adds e to the pending index. Called with q.mu held.
func (q *Queue) index(e *entry) {
	r := e.review
	q.entries = append(q.entries, e)
	uk := userKey{r.Season, r.Player}
	q.byUser[uk] = append(q.byUser[uk], e)
	q.byID[reviewKey{r.Season, r.ID}] = e
	q.seasons[r.Season]++
	q.bytes += e.size
}

// unindex removes the oldest pending entry, e. Called with q.mu held.
func (q *Queue) unindex(e *entry) {
	q.entries[0] = nil
	q.entries = q.entries[1:]
	q.unindexUser(e)
}

// remove takes a cancelled entry out of the pending index wherever it is
// (held entries are near the tail). Called with q.mu held.
func (q *Queue) remove(e *entry) {
	if i := slices.Index(q.entries, e); i >= 0 {
		q.entries = slices.Delete(q.entries, i, i+1)
	}
	q.unindexUser(e)
}

func (q *Queue) unindexUser(e *entry) {
	r := e.review
	uk := userKey{r.Season, r.Player}
	es := q.byUser[uk]
	if i := slices.Index(es, e); i >= 0 {
		es = slices.Delete(es, i, i+1)
	}
	if len(es) > 0 {
		q.byUser[uk] = es
	} else {
		delete(q.byUser, uk)
	}
	if q.byID[reviewKey{r.Season, r.ID}] == e {
		delete(q.byID, reviewKey{r.Season, r.ID})
	}
	if q.seasons[r.Season]--; q.seasons[r.Season] == 0 {
		delete(q.seasons, r.Season)
	}
	q.bytes -= e.size
}

// rotate fsyncs the tail segment, which makes it final, and starts the next
// one. Called with q.mu held; appends wait for this one fsync per segment.
func (q *Queue) rotate() error {
	if err := q.file.Sync(); err != nil {
		q.fail(fmt.Errorf("writebehind: fsync %s: %w", q.file.Name(), err))
		return q.failed
	}
	q.fsynced(q.nextSeq - 1)
	f, err := createSegment(q.cfg.Dir, q.nextSeq)
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

// syncLoop is the one goroutine that fsyncs the log: on demand from Wait
// under FsyncAlways, on a ticker under FsyncInterval.
func (q *Queue) syncLoop() {
	defer close(q.syncerDone)
	var tick <-chan time.Time
	if q.cfg.Fsync == FsyncInterval {
		t := time.NewTicker(q.cfg.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-q.quit:
			return
		case <-q.kick:
		case <-tick:
		}
		q.sync()
	}
}

// sync fsyncs the tail segment without holding q.mu, so appends go on while
// the disk flushes; the fsync covers every entry written before it started,
// which is what the waiters of all those entries share.
func (q *Queue) sync() {
	q.mu.RLock()
	f, upto, idle := q.file, q.nextSeq-1, q.failed != nil || q.nextSeq-1 <= q.durable
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
	case errors.Is(err, os.ErrClosed):
		// rotate fsynced and closed f meanwhile, covering upto.
	default:
		q.fail(fmt.Errorf("writebehind: fsync %s: %w", f.Name(), err))
	}
}

// fsynced records an fsync covering every entry up to upto. Called with q.mu held.
func (q *Queue) fsynced(upto uint64) {
	q.fsyncs.Add(1)
	q.m.fsyncs.Add(context.Background(), 1)
	q.durable = max(q.durable, upto)
	q.signalSynced()
}

// fail makes the log refuse appends from now on. Called with q.mu held.
func (q *Queue) fail(err error) {
	q.log.Error("write-behind log failed; refusing reviews until restart", "err", err)
	q.failed = err
	q.signalSynced()
}

func (q *Queue) signalSynced() {
	close(q.synced)
	q.synced = make(chan struct{})
}
