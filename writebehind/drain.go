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
	// logged once (idempotent by season and review ID) and its card moves
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
	if n := len(q.entries); n > 0 {
		target = q.entries[n-1].seq
	}
	q.mu.RUnlock()
	if done == nil {
		return errors.New("writebehind: flush: the drainer was not started")
	}
	for {
		q.mu.RLock()
		progress, depth := q.drainedCh, len(q.entries)
		finished := depth == 0 || q.entries[0].seq > target
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
		var batch []*entry
		q.mu.RLock()
		// Only the entries before the first held one: a held review's
		// outcome is not decided yet, and order must be kept.
		n := min(len(q.entries), q.cfg.BatchSize)
		for i, e := range q.entries[:n] {
			if e.held {
				n = i
				break
			}
		}
		if n == q.cfg.BatchSize || n > 0 && filled {
			batch = slices.Clone(q.entries[:n])
		}
		q.mu.RUnlock()
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
		case <-fill:
			filled = true
		}
	}
}

// drain applies batch to the store, retrying store errors with backoff until
// it succeeds, then removes the batch from the queue. It returns false if ctx
// ended first; the batch then stays queued.
func (q *Queue) drain(ctx context.Context, store Store, batch []*entry) bool {
	reviews := make([]srs.Review, len(batch))
	for i, e := range batch {
		reviews[i] = e.review
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(backoff(attempt, q.cfg.RetryMin, q.cfg.RetryMax))
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		start := q.cfg.Now()
		rejected, err := store.ApplyReviews(ctx, reviews)
		if err == nil {
			err = q.deadLetter(batch, rejected)
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
func (q *Queue) deadLetter(batch []*entry, rejected []int) error {
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
		if err := enc.Encode(deadLetter{At: at, Reason: rejectReason, Seq: batch[i].seq, Review: batch[i].review}); err != nil {
			return fmt.Errorf("writebehind: dead letter: %w", err)
		}
		ids = append(ids, batch[i].review.Season+"/"+batch[i].review.ID)
	}
	f, err := os.OpenFile(q.cfg.DeadLetterPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
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
// progress in the checkpoint and deletes the segments it emptied. A failure
// after the removal only means the store sees these reviews again after a
// restart, which it ignores.
func (q *Queue) commit(batch []*entry) {
	last := batch[len(batch)-1].seq
	q.mu.Lock()
	for _, e := range batch {
		q.unindex(e)
	}
	q.drainedSeq = last
	q.lastLag = q.cfg.Now().Sub(batch[0].at)
	close(q.drainedCh)
	q.drainedCh = make(chan struct{})
	q.mu.Unlock()
	q.drained.Add(uint64(len(batch)))
	q.m.drained.Add(context.Background(), int64(len(batch)))

	if err := writeCheckpoint(q.checkpoint, last); err != nil {
		q.log.Warn("write-behind: cannot record drain progress; the store will see these reviews again after a restart", "err", err)
		return
	}
	q.mu.Lock()
	var done []segment
	for len(q.segments) > 1 && q.segments[1].first <= last+1 {
		done = append(done, q.segments[0])
		q.segments = q.segments[1:]
	}
	q.mu.Unlock()
	for _, s := range done {
		if err := os.Remove(s.path); err != nil {
			q.log.Warn("write-behind: cannot delete drained segment; Open will", "err", err)
		}
	}
}
