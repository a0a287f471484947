package writebehind

import (
	"context"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// A held entry is on disk at once but invisible to the drainer and the
// overlay until Release; Cancel withdraws it, in memory and for recovery.
func TestHoldReleaseCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond})
	store := &memStore{}
	q.Start(context.Background(), store)

	first := appendDurable(t, q, 0, 1)[0]
	kept, cancelled, last := testReview(1), testReview(2), testReview(3)
	tk, err := q.Hold(kept)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := q.Hold(cancelled)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.PendingReview(kept.Season, kept.Player, kept.QuestionID, kept.ID); ok {
		t.Fatal("a held review is visible to PendingReview")
	}
	for _, r := range q.Pending(kept.Season, kept.Player) {
		if r.ID == kept.ID {
			t.Fatal("a held review is visible to Pending")
		}
	}
	if err := q.AppendDurable(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	// The drainer takes what is before the held entry and stops there.
	for deadline := time.Now().Add(5 * time.Second); len(store.reviews()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the entry before the held one was not drained")
		}
	}
	time.Sleep(20 * time.Millisecond) // a few more BatchWaits: nothing past the held entry
	equalReviews(t, store.reviews(), []srs.Review{first})

	if err := q.Cancel(tc); err != nil {
		t.Fatal(err)
	}
	if err := q.Cancel(tc); err == nil {
		t.Fatal("cancelling twice succeeded")
	}
	if _, ok := q.PendingReview(cancelled.Season, cancelled.Player, cancelled.QuestionID, cancelled.ID); ok {
		t.Fatal("a cancelled review is still pending")
	}
	// Recovery sees what the drainer will see: the cancelled entry is gone.
	equalReviews(t, readAll(t, dir), []srs.Review{kept, last})

	q.Release(tk)
	if err := q.Wait(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	flush(t, q)
	equalReviews(t, store.reviews(), []srs.Review{first, kept, last})
	if s := q.Stats(); s.Depth != 0 {
		t.Fatalf("Depth = %d after the drain", s.Depth)
	}
}

// A crash between Hold and the cache's compare-and-set leaves an entry with
// no cancel record: recovery treats it as a review to drain.
func TestHeldEntrySurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir})
	held, cancelled := testReview(10), testReview(11)
	if _, err := q.Hold(held); err != nil {
		t.Fatal(err)
	}
	tc, err := q.Hold(cancelled)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Cancel(tc); err != nil {
		t.Fatal(err)
	}
	released := testReview(12)
	tr, err := q.Hold(released)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Release(tr); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openQueue(t, Config{Dir: dir, BatchWait: time.Millisecond})
	// The entry neither released nor cancelled is unsettled: kept out of the
	// drain until its owner decides; the released one drains as usual.
	unsettled := q.Unsettled()
	if len(unsettled) != 1 {
		t.Fatalf("Unsettled = %v", unsettled)
	}
	var tk Ticket
	for k, r := range unsettled {
		if r != held {
			t.Fatalf("unsettled review %+v, want %+v", r, held)
		}
		tk = k
	}
	store := &memStore{}
	q.Start(context.Background(), store)
	if err := q.Release(tk); err != nil { // its owner found it reached the cache
		t.Fatal(err)
	}
	flush(t, q)
	equalReviews(t, store.reviews(), []srs.Review{held, released})
}
