package writebehind

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

var (
	powerLossSeeds = flag.Int("powerloss.seeds", 400, "seeds TestPowerLoss runs")
	powerLossSeed  = flag.Int64("powerloss.seed", -1, "run TestPowerLoss for this seed only")
)

// TestPowerLoss drives a queue over the strict in-memory file system with
// random appends (plain, held then released, held then cancelled, held and
// left unsettled), drains, a disk that fills up and frees again
// (SetCapacity) and power cuts: at random moments and in the middle of
// operations (CrashAfter), then reopens it. After every reopen and
// at the end it checks that
//
//   - every review whose Wait returned nil (acknowledged) is recovered or in
//     the store;
//   - no entry whose cancel record was made durable is ever drained, or
//     recovered;
//   - no entry is drained twice in one process, nor again after the drain
//     that took it recorded its checkpoint (only a crash between the store's
//     commit and the checkpoint may replay it, which the store absorbs).
//
// A failing seed is printed; -powerloss.seed=N replays it.
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	seeds := make([]int64, 0, *powerLossSeeds)
	if *powerLossSeed >= 0 {
		seeds = append(seeds, *powerLossSeed)
	} else {
		n := *powerLossSeeds
		if testing.Short() {
			n = min(n, 50)
		}
		for s := range n {
			seeds = append(seeds, int64(s))
		}
	}
	start := time.Now()
	var crashes, ops int
	for _, seed := range seeds {
		c, o, err := powerLossRun(seed)
		if err != nil {
			t.Fatalf("seed %d: %v\nreplay: go test ./writebehind/ -run TestPowerLoss -powerloss.seed=%d -v", seed, err, seed)
		}
		crashes, ops = crashes+c, ops+o
	}
	took := time.Since(start)
	t.Logf("%d seeds, %d operations, %d crashes in %v: %.0f seeds/s",
		len(seeds), ops, crashes, took.Round(time.Millisecond), float64(len(seeds))/took.Seconds())
}

type plStore struct {
	applied      map[string]srs.Review
	gen          map[string]bool // drained in this process
	checkpointed map[string]bool // drained by a drain whose checkpoint was written
	cancelled    map[string]bool // cancel record durable
}

type plInflight struct {
	t      Ticket
	r      srs.Review
	waited bool
}

func powerLossRun(seed int64) (crashes, ops int, err error) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	fsys := NewStrictMemFS()
	cfg := Config{
		FS: fsys, Dir: "/q", Logger: slog.New(slog.DiscardHandler),
		BatchSize: 1 + rng.IntN(6), segmentSize: int64(300 + rng.IntN(1500)),
		tailReclaim: int64(200 + rng.IntN(800)), reserveSize: 512,
	}
	ctx := context.Background()
	st := &plStore{applied: map[string]srs.Review{}, gen: map[string]bool{}, checkpointed: map[string]bool{}, cancelled: map[string]bool{}}
	acked := map[string]srs.Review{}
	var (
		uncertainCancels []string // cancelled in this process, record not yet covered by an fsync
		inflight         []plInflight
		next             int
		capped           bool
	)
	newReview := func() srs.Review {
		r := testReview(next)
		r.ID = fmt.Sprintf("s%d-%d", seed, next)
		next++
		return r
	}
	waited := func() { // an fsync covered everything written before this point
		for _, id := range uncertainCancels {
			st.cancelled[id] = true
		}
		uncertainCancels = uncertainCancels[:0]
	}

	var q *Queue
	// cancelled notes a Cancel: its record counts as durable after the next
	// successful Wait if it was written at once (none is waiting to be
	// written again after a refusal by a full disk).
	cancelled := func(id string) {
		if q.Stats().UnwrittenSettles == 0 {
			uncertainCancels = append(uncertainCancels, id)
		}
	}
	reopen := func() error {
		// What recovery sees must hold every acknowledged review not in
		// the store, and no entry with a durable cancel record.
		onDisk, err := ReadAllFS(fsys, "/q")
		if err != nil && q != nil {
			return fmt.Errorf("ReadAll after a crash: %w", err)
		}
		seen := map[string]bool{}
		for _, r := range onDisk {
			seen[r.ID] = true
			if st.cancelled[r.ID] {
				return fmt.Errorf("entry %s recovered although its cancel record was durable", r.ID)
			}
		}
		for id := range acked {
			if _, ok := st.applied[id]; !ok && !seen[id] {
				return fmt.Errorf("acknowledged review %s lost (not on disk, not in the store)", id)
			}
		}
		if q, err = Open(cfg); err != nil {
			return fmt.Errorf("Open after a crash: %w", err)
		}
		st.gen = map[string]bool{}
		uncertainCancels, inflight = nil, nil
		for t, r := range q.Unsettled() {
			if _, ok := acked[r.ID]; ok || rng.IntN(2) == 0 {
				if err := q.Release(t); err != nil {
					return err
				}
			} else {
				if err := q.Cancel(t); err != nil {
					return err
				}
				cancelled(r.ID)
			}
		}
		return nil
	}
	crash := func() error {
		crashes++
		if !fsys.Crashed() {
			fsys.Crash() // power cut now
		}
		q.Close() // every write fails: the handles died with the power
		fsys.Crash()
		return reopen()
	}
	drain := func() error {
		batch, _ := q.takeBatch(true)
		if batch == nil {
			return nil
		}
		reviews, _ := q.decodeBatch(batch)
		for _, r := range reviews {
			switch {
			case st.cancelled[r.ID]:
				return fmt.Errorf("drained %s although its cancel record was durable", r.ID)
			case st.gen[r.ID]:
				return fmt.Errorf("drained %s twice in one process", r.ID)
			case st.checkpointed[r.ID]:
				return fmt.Errorf("drained %s again after its drain's checkpoint was written", r.ID)
			}
			st.gen[r.ID] = true
			st.applied[r.ID] = r
		}
		q.commit(batch)
		if !fsys.Crashed() && q.ckpt.Load() >= batch[len(batch)-1].seq { // the checkpoint was written
			for _, r := range reviews {
				st.checkpointed[r.ID] = true
			}
		}
		return nil
	}
	if err := reopen(); err != nil {
		return crashes, ops, err
	}
	defer func() { q.Close() }()

	steps := 40 + rng.IntN(60)
	for range steps {
		ops++
		if fsys.Crashed() || rng.IntN(20) == 0 {
			if err := crash(); err != nil {
				return crashes, ops, err
			}
		}
		if rng.IntN(12) == 0 {
			fsys.CrashAfter(rng.IntN(12))
		}
		if rng.IntN(15) == 0 { // the disk fills up, or space returns
			if capped {
				fsys.SetCapacity(0)
			} else {
				fsys.SetCapacity(fsys.Used() + int64(rng.IntN(1500)))
			}
			capped = !capped
		}
		switch op := rng.IntN(12); {
		case op < 4: // plain append, acknowledged once Wait returns
			r := newReview()
			if t, err := q.Append(r); err == nil && q.Wait(ctx, t) == nil {
				acked[r.ID] = r
				waited()
			}
		case op < 6: // Hold, Wait, CAS stored → Release
			r := newReview()
			if t, err := q.Hold(r); err == nil {
				if q.Wait(ctx, t) == nil {
					waited()
					if err := q.Release(t); err != nil {
						return crashes, ops, fmt.Errorf("Release: %w", err)
					}
					acked[r.ID] = r
				} else if err := q.Cancel(t); err != nil {
					return crashes, ops, fmt.Errorf("Cancel: %w", err)
				}
			}
		case op < 7: // Hold, Wait, CAS conflict → Cancel
			r := newReview()
			if t, err := q.Hold(r); err == nil {
				if q.Wait(ctx, t) == nil {
					waited()
				}
				if err := q.Cancel(t); err != nil {
					return crashes, ops, fmt.Errorf("Cancel: %w", err)
				}
				cancelled(r.ID)
			}
		case op < 8: // Hold and leave it in flight (the CAS is under way)
			r := newReview()
			if t, err := q.Hold(r); err == nil {
				w := q.Wait(ctx, t) == nil
				if w {
					waited()
				}
				inflight = append(inflight, plInflight{t, r, w})
			}
		case op < 9: // settle an entry in flight
			if len(inflight) == 0 {
				continue
			}
			i := rng.IntN(len(inflight))
			f := inflight[i]
			inflight = append(inflight[:i], inflight[i+1:]...)
			if f.waited && rng.IntN(2) == 0 {
				if err := q.Release(f.t); err != nil {
					return crashes, ops, fmt.Errorf("Release: %w", err)
				}
				acked[f.r.ID] = f.r
			} else {
				if err := q.Cancel(f.t); err != nil {
					return crashes, ops, fmt.Errorf("Cancel: %w", err)
				}
				cancelled(f.r.ID)
			}
		default:
			if err := drain(); err != nil {
				return crashes, ops, err
			}
		}
	}
	// Power and space back for good; settle what is in flight, drain
	// everything; the queue must take reviews again.
	fsys.CrashAfter(-1)
	fsys.SetCapacity(0)
	if err := crash(); err != nil {
		return crashes, ops, err
	}
	for range 10_000 {
		if q.Stats().Depth == 0 {
			break
		}
		if err := drain(); err != nil {
			return crashes, ops, err
		}
	}
	if d := q.Stats().Depth; d != 0 {
		return crashes, ops, fmt.Errorf("%d entries left after draining to the end", d)
	}
	if err := q.AppendDurable(ctx, newReview()); err != nil {
		return crashes, ops, fmt.Errorf("append at the end: %w", err)
	}
	if err := q.Health(); err != nil {
		return crashes, ops, fmt.Errorf("Health at the end: %w", err)
	}
	for id := range acked {
		if _, ok := st.applied[id]; !ok {
			return crashes, ops, fmt.Errorf("acknowledged review %s never reached the store", id)
		}
	}
	return crashes, ops, nil
}
