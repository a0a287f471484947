package writebehind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// Store is what the drainer writes to; the MariaDB adapter implements it.
type Store interface {
	// ApplyReviews writes one batch in one transaction: each review is
	// logged once (idempotent by season, player, question and review ID:
	// review ids are unique per card) and its card moves
	// forward only (newer LastReview/Reps wins). err != nil means nothing
	// was committed and the whole batch is retried later. rejected lists
	// indexes of reviews the database refuses for good (e.g. their season's
	// partition is gone); those were not applied, the rest were committed.
	ApplyReviews(ctx context.Context, batch []srs.Review) (rejected []int, err error)
}

const rejectReason = "rejected by the store for good (e.g. the season's partition is gone); not applied"

// deadLetter is one line of the dead-letter file.
type deadLetter struct {
	At     time.Time  `json:"at"`
	Reason string     `json:"reason"`
	Seq    uint64     `json:"seq"`
	Review srs.Review `json:"review"`
}

// Start starts the drainer, which runs until ctx ends or Stop (the syncer
// already runs from Open). It does nothing if the drainer was started before
// or the queue is closed.
func (q *Queue) Start(ctx context.Context, store Store) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.drainDone != nil || q.closed {
		return
	}
	ctx, q.stopDrain = context.WithCancel(ctx)
	q.drainDone = make(chan struct{})
	go q.drainLoop(ctx, store)
}

// Stop stops the drainer and waits for it; a batch in flight is abandoned
// and stays on disk. Stop is idempotent.
func (q *Queue) Stop() {
	q.mu.RLock()
	stop, done := q.stopDrain, q.drainDone
	q.mu.RUnlock()
	if stop != nil {
		stop()
		<-done
	}
}

// Flush waits until every review appended before the call is drained. It
// returns ctx's error with what remains, or an error when no drainer runs.
func (q *Queue) Flush(ctx context.Context) error {
	q.mu.RLock()
	done := q.drainDone
	var target uint64 // the last pending entry; cancel records are never drained
	if n := len(q.ix.entries); n > 0 {
		target = q.ix.entries[n-1].seq
	}
	q.mu.RUnlock()
	if done == nil {
		return errors.New("writebehind: flush: the drainer was not started")
	}
	for {
		q.mu.RLock()
		progress, depth := q.drainedCh, len(q.ix.entries)
		finished := depth == 0 || q.ix.entries[0].seq > target
		q.mu.RUnlock()
		if finished {
			return nil
		}
		select {
		case <-progress:
		case <-done:
			return fmt.Errorf("writebehind: flush: drainer stopped with %d reviews pending", depth)
		case <-ctx.Done():
			return fmt.Errorf("writebehind: flush: %d reviews still pending: %w", depth, ctx.Err())
		}
	}
}

func (q *Queue) drainLoop(ctx context.Context, store Store) {
	defer close(q.drainDone)
	for {
		batch := q.nextBatch(ctx)
		if batch == nil || !q.drain(ctx, store, batch) {
			return
		}
	}
}

// nextBatch returns the oldest BatchSize pending entries, or fewer once
// BatchWait has passed since it first saw one; nil when ctx ends.
func (q *Queue) nextBatch(ctx context.Context) []*entry {
	var fill <-chan time.Time
	filled := false
	for {
		batch, n := q.takeBatch(filled)
		if batch != nil {
			return batch
		}
		if n > 0 && fill == nil {
			fill = time.After(q.cfg.BatchWait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		case <-q.kickDrain:
			filled = true
		case <-fill:
			filled = true
		}
	}
}

// takeBatch returns the drainable prefix of the queue (the entries before
// the first held one: a held review's outcome is not decided yet, and order
// must be kept), at most BatchSize, if it is full or partial is set; n is
// its length either way.
func (q *Queue) takeBatch(partial bool) (batch []*entry, n int) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	n = min(len(q.ix.entries), q.cfg.BatchSize)
	for i, e := range q.ix.entries[:n] {
		if e.held {
			n = i
			break
		}
	}
	if n == q.cfg.BatchSize || n > 0 && partial {
		batch = slices.Clone(q.ix.entries[:n])
	}
	return batch, n
}

// Kick makes the drainer try the store now instead of at the end of its
// backoff (the store was seen to come back) and take what is pending
// without waiting to fill a batch.
func (q *Queue) Kick() {
	select {
	case q.kickDrain <- struct{}{}:
	default:
	}
}

// drain applies batch to the store, retrying store errors with backoff until
// it succeeds, then removes the batch from the queue. It returns false if ctx
// ended first; the batch then stays queued.
func (q *Queue) drain(ctx context.Context, store Store, batch []*entry) bool {
	reviews, decoded := q.decodeBatch(batch)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff(attempt, q.cfg.RetryMin, q.cfg.RetryMax))
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			case <-q.kickDrain:
				t.Stop()
			}
		}
		start := q.cfg.Now()
		rejected, err := store.ApplyReviews(ctx, reviews)
		if err == nil {
			err = q.deadLetter(decoded, reviews, rejected)
		}
		if err == nil {
			if attempt > 0 {
				q.log.Warn("write-behind store recovered", "retries", attempt)
			}
			q.m.recordBatch(len(batch), q.cfg.Now().Sub(start))
			q.commit(batch)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		q.retries.Add(1)
		q.m.retries.Add(ctx, 1)
		if attempt == 0 {
			q.log.Warn("write-behind store failing; reviews wait on disk, retrying with backoff", "err", err, "batch", len(batch))
		}
	}
}

// decodeBatch decodes the reviews of a batch. An entry that does not decode
// (impossible: each was decoded when it was made) is logged and dropped
// from the store's batch; it is still removed from the queue with the rest.
func (q *Queue) decodeBatch(batch []*entry) ([]srs.Review, []*entry) {
	reviews := make([]srs.Review, 0, len(batch))
	kept := make([]*entry, 0, len(batch))
	for _, e := range batch {
		r, err := e.decode()
		if err != nil {
			q.log.Error("write-behind: undecodable entry dropped", "entry", e.seq, "err", err)
			continue
		}
		reviews = append(reviews, r)
		kept = append(kept, e)
	}
	return reviews, kept
}

// backoff returns the pause before retry number attempt (from 1): full
// jitter between lo and a ceiling that doubles per attempt up to hi.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	ceiling := lo
	for ; attempt > 0 && ceiling < hi; attempt-- {
		ceiling = min(2*ceiling, hi)
	}
	return lo + rand.N(ceiling-lo+1) //nolint:gosec // jitter needs no cryptographic randomness
}

// deadLetter appends the rejected reviews of batch to the dead-letter file
// and fsyncs it.
func (q *Queue) deadLetter(batch []*entry, reviews []srs.Review, rejected []int) error {
	if len(rejected) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	at := q.cfg.Now().UTC()
	var ids []string
	for _, i := range rejected {
		if i < 0 || i >= len(batch) {
			q.log.Error("write-behind store rejected an index outside the batch; ignored", "index", i, "batch", len(batch))
			continue
		}
		if err := enc.Encode(deadLetter{At: at, Reason: rejectReason, Seq: batch[i].seq, Review: reviews[i]}); err != nil {
			return fmt.Errorf("writebehind: dead letter: %w", err)
		}
		ids = append(ids, reviews[i].Season+"/"+reviews[i].Player+"/"+reviews[i].QuestionID+"/"+reviews[i].ID)
	}
	f, err := q.fs.OpenFile(q.cfg.DeadLetterPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("writebehind: dead letter: %w", err)
	}
	_, err = f.Write(buf.Bytes())
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("writebehind: dead letter: %w", err)
	}
	q.deadLetters.Add(uint64(len(ids)))
	q.m.deadLetters.Add(context.Background(), int64(len(ids)))
	q.log.Error("write-behind store rejected reviews for good; moved them to the dead-letter file",
		"count", len(ids), "file", q.cfg.DeadLetterPath, "reviews", ids, "reason", rejectReason)
	return nil
}

// commit removes a batch the store has committed from the queue, records the
// progress in the checkpoint (every entry before the first one still
// pending: drained or cancelled) and deletes the segments it covers, the
// tail too once it is fully drained and big. A failure after the removal
// only means the store sees these reviews again after a restart, which it
// ignores.
func (q *Queue) commit(batch []*entry) {
	q.mu.Lock()
	for _, e := range batch {
		q.ix.removeFirst(e)
	}
	ck := q.nextSeq - 1
	if len(q.ix.entries) > 0 {
		ck = q.ix.entries[0].seq - 1
	}
	now := q.cfg.Now()
	if len(batch) > 0 {
		q.lastLag = now.Sub(time.Unix(0, batch[0].at))
	}
	q.lastDrained, q.progress = now, now
	close(q.drainedCh)
	q.drainedCh = make(chan struct{})
	q.mu.Unlock()
	q.drained.Add(uint64(len(batch)))
	q.m.drained.Add(context.Background(), int64(len(batch)))

	if err := q.advanceCheckpoint(ck); err != nil {
		q.log.Warn("write-behind: cannot record drain progress; the store will see these reviews again after a restart", "err", err)
		return
	}
	q.mu.Lock()
	done := q.reclaim()
	q.mu.Unlock()
	for _, p := range done {
		if err := q.fs.Remove(p); err != nil {
			q.log.Warn("write-behind: cannot delete drained segment; Open will", "file", p, "err", err)
		}
	}
}
