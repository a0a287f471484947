package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/srs"
)

// rebuildPage is how many cards a rebuild reads per keyset page.
const rebuildPage = 5000

// StartRebuild starts a cache rebuild of a season and returns its job id at
// once; SRS.JOB polls it. The job runs in this sidecar under a cluster-wide
// lock named after it, saves its cursor as it goes and is resumed by Resume
// after a restart.
func (e *Engine) StartRebuild(ctx context.Context, season string) (string, error) {
	s, _, err := e.servingSeason(ctx, season)
	if err != nil {
		return "", err
	}
	total, err := e.store.CountCards(ctx, s.Name)
	if err != nil {
		return "", err
	}
	now := e.cfg.Now()
	j := mariadb.Job{ID: uuid.Must(uuid.NewV7()).String(), Kind: "rebuild", Season: s.Name, State: mariadb.JobRunning,
		Total: total, Owner: e.cfg.Sidecar, Started: now, Updated: now}
	if err := e.store.CreateJob(ctx, j); err != nil {
		return "", err
	}
	e.goJob(j)
	return j.ID, nil
}

// Job returns a job's progress.
func (e *Engine) Job(ctx context.Context, id string) (mariadb.Job, error) {
	j, ok, err := e.store.Job(ctx, id)
	if err != nil {
		return j, err
	}
	if !ok {
		return j, fmt.Errorf("%w: %s", mariadb.ErrUnknownJob, id)
	}
	return j, nil
}

// Resume restarts the running rebuild and optimize jobs that no sidecar
// holds (their owner stopped): a rebuild from its saved cursor, an
// optimize job from the beginning.
func (e *Engine) Resume(ctx context.Context) error {
	jobs, err := e.store.Jobs(ctx, mariadb.JobRunning)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Kind == "rebuild" || j.Kind == OptimizeKind {
			e.goJob(j)
		}
	}
	return nil
}

// goJob runs a job in the background if this sidecar gets its lock.
func (e *Engine) goJob(j mariadb.Job) {
	e.jobs.Add(1)
	go func() {
		defer e.jobs.Done()
		ctx, cancel := e.untilStop(context.Background())
		defer cancel()
		lock, ok, err := e.store.TryLock(ctx, "job:"+j.ID)
		if err != nil || !ok {
			return // another sidecar runs it
		}
		defer lock.Release()
		// The job may have finished meanwhile.
		if cur, found, err := e.store.Job(ctx, j.ID); err != nil || !found || cur.State != mariadb.JobRunning {
			return
		}
		j.Owner = e.cfg.Sidecar
		held, stop := e.whileHeld(ctx, lock)
		defer stop()
		if j.Kind == OptimizeKind {
			err = e.optimize(held, &j)
		} else {
			err = e.rebuild(held, &j)
		}
		switch {
		case err == nil:
			j.State, j.Finished = mariadb.JobDone, e.cfg.Now()
		case held.Err() != nil:
			// Shutdown or lost lock: the cursor is saved; Resume continues.
			e.log.Info("job interrupted; it resumes", "job", j.ID, "kind", j.Kind, "processed", j.Processed)
		default:
			j.State, j.Error, j.Finished = mariadb.JobFailed, err.Error(), e.cfg.Now()
			e.log.Error("job failed", "job", j.ID, "kind", j.Kind, "season", j.Season, "err", err)
		}
		if uerr := e.store.UpdateJob(context.Background(), j); uerr != nil {
			e.log.Error("save job", "job", j.ID, "err", uerr)
		}
	}()
}

// whileHeld returns a context cancelled when lock is lost (checked every few
// seconds on the lock's own connection).
func (e *Engine) whileHeld(ctx context.Context, lock *mariadb.Lock) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !lock.Held(ctx) {
					e.log.Warn("job lock lost; stopping", "err", ctx.Err())
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}

// rebuild streams a season's cards from the store in primary-key order and
// loads whole users with pipelined script calls. A user already cached is
// merged card by card, writing only cards the cache lacks or holds older
// than the store: a cache entry newer than its row (a review not yet
// drained) is never overwritten (invariant 4).
func (e *Engine) rebuild(ctx context.Context, j *mariadb.Job) error {
	for {
		page, err := e.store.CardsPage(ctx, j.Season, j.CursorPlayer, j.CursorQuestion, rebuildPage)
		if err != nil || len(page) == 0 {
			return err
		}
		users := groupUsers(page)
		if len(page) == rebuildPage {
			// A full page may end inside a user: never load part of a user.
			last := page[len(page)-1].Player
			if len(users) > 1 {
				page = page[:len(page)-len(users[last])] // it starts the next page
				delete(users, last)
			} else if users[last], err = e.store.UserCards(ctx, j.Season, last); err != nil {
				return err // one user fills the page: read all of it
			}
		}
		if err := e.loadUsers(ctx, j.Season, users); err != nil {
			return err
		}
		j.CursorPlayer, j.CursorQuestion = lastKey(users)
		for _, cards := range users {
			j.Processed += int64(len(cards))
		}
		if err := e.store.UpdateJob(ctx, *j); err != nil {
			return err
		}
	}
}

// lastKey is the greatest (player, question) loaded: the next page starts after it.
func lastKey(users map[string][]srs.Card) (player, question string) {
	for p, cards := range users {
		for _, c := range cards {
			if p > player || p == player && c.QuestionID > question {
				player, question = p, c.QuestionID
			}
		}
	}
	return player, question
}

func groupUsers(cards []srs.Card) map[string][]srs.Card {
	users := map[string][]srs.Card{}
	for _, c := range cards {
		users[c.Player] = append(users[c.Player], c)
	}
	return users
}

// loadUsers loads whole users; those already cached are merged. It takes
// each user's lock (in player order), as a lazy load does, and overlays this
// sidecar's undrained reviews: a user with reviews in the queue is read
// again from the store under its lock, pending first, so no review drained
// since the page was read falls between the two (docs/CORE.md §2).
func (e *Engine) loadUsers(ctx context.Context, season string, users map[string][]srs.Card) error {
	players := slices.Sorted(maps.Keys(users))
	for _, player := range players {
		unlock := e.users.Lock(season + "\x00" + player)
		defer unlock()
		pending := e.journal.Pending(season, player)
		if len(pending) == 0 {
			continue
		}
		fresh, err := e.store.UserCards(ctx, season, player)
		if err != nil {
			return fmt.Errorf("%w: rebuild %s/%s: %v", srs.ErrStoreUnavailable, season, player, err)
		}
		users[player] = overlay(fresh, pending)
	}
	var wrote map[string]bool
	if err := e.safe.call(func() (err error) {
		wrote, err = e.cache.LoadMany(ctx, season, users)
		return err
	}); err != nil {
		return err
	}
	for player, cards := range users {
		if wrote[player] {
			continue
		}
		if _, err := e.mergeUser(ctx, season, player, cards); err != nil {
			return err
		}
	}
	return nil
}

// mergeUser writes the cards the cache lacks or holds older than rows, and
// reports what it compared. Cards newer in the cache are left alone.
func (e *Engine) mergeUser(ctx context.Context, season, player string, rows []srs.Card) (mergeStats, error) {
	var st mergeStats
	rows = overlay(slices.Clone(rows), e.journal.Pending(season, player)) // never behind this sidecar's queue
	var cached map[string]srs.CachedCard
	var loaded bool
	if err := e.safe.call(func() (err error) {
		cached, loaded, err = e.cache.UserCards(ctx, season, player)
		return err
	}); err != nil || !loaded {
		return st, err
	}
	var puts []srs.CardPut
	inStore := make(map[string]bool, len(rows))
	for _, row := range rows {
		inStore[row.QuestionID] = true
		st.compared++
		c, ok := cached[row.QuestionID]
		switch {
		case ok && c.Card == row:
			continue
		case ok && c.Card.NewerThan(row.Schedule):
			st.pending++ // a review still in some queue: never reverted
			continue
		}
		st.differ++
		puts = append(puts, srs.CardPut{Expected: c.Token, Card: row})
	}
	for q := range cached {
		if !inStore[q] {
			st.pending++ // reviewed, not yet drained anywhere
		}
	}
	if len(puts) == 0 {
		return st, nil
	}
	err := e.safe.call(func() (err error) {
		n, err := e.cache.PutIfUnchanged(ctx, season, player, puts)
		st.corrected = max(n, 0)
		return err
	})
	return st, err
}

type mergeStats struct{ compared, differ, corrected, pending int }

// ReconcileReport is the reply of SRS.RECONCILE.
type ReconcileReport struct {
	Seasons        []string
	Sampled        int // cached cards compared with the store
	Discrepancies  int // cards whose cache was older than or different from the store
	Corrected      int
	SkippedPending int // cards newer in the cache than in the store: reviews not yet drained
	Rate           float64
	Alert          bool // Rate above AlertRate
}

// AlertRate is the discrepancy rate above which reconciliation alerts.
const AlertRate = 0.001

// Reconcile samples cached users (SRANDMEMBER on each season's registry; no
// scan of the store), compares their cache with the store and corrects the
// cache from the store — except cards the cache holds newer than the store
// (reviews still queued on some sidecar), which are skipped and counted.
// season "" reconciles every active season with its cache on.
func (e *Engine) Reconcile(ctx context.Context, season string, sample int) (ReconcileReport, error) {
	var rep ReconcileReport
	if season != "" {
		// A named season must exist and be served from the cache (issue 12:
		// an unknown season answered OK).
		if _, _, err := e.servingSeason(ctx, season); err != nil {
			return rep, err
		}
		rep.Seasons = []string{season}
	} else {
		all, err := e.store.Seasons(ctx)
		if err != nil {
			return rep, err
		}
		for _, s := range all {
			if s.IsActive && s.EnableCache && s.Archive == srs.ArchiveNone {
				rep.Seasons = append(rep.Seasons, s.Name)
			}
		}
	}
	for i, s := range rep.Seasons {
		want := (sample - rep.Sampled) / (len(rep.Seasons) - i) // the rest, shared by the seasons left
		if err := e.reconcileSeason(ctx, s, want, &rep); err != nil {
			return rep, err
		}
	}
	if rep.Sampled > 0 {
		rep.Rate = float64(rep.Discrepancies) / float64(rep.Sampled)
	}
	rep.Alert = rep.Rate > AlertRate
	e.metrics.reconciled.Add(ctx, int64(rep.Sampled))
	e.metrics.discrepancies.Add(ctx, int64(rep.Discrepancies))
	if rep.Alert && e.cfg.OnAlert != nil {
		e.cfg.OnAlert("reconcile_discrepancies", fmt.Sprintf("reconciliation found %d discrepancies in %d cached cards (%.3f%%, threshold %.1f%%) in %v; corrected %d from MariaDB, skipped %d with reviews pending",
			rep.Discrepancies, rep.Sampled, 100*rep.Rate, 100*AlertRate, rep.Seasons, rep.Corrected, rep.SkippedPending))
	}
	return rep, nil
}

// reconcileSeason samples users of one season until want cards are compared.
func (e *Engine) reconcileSeason(ctx context.Context, season string, want int, rep *ReconcileReport) error {
	seen := map[string]bool{}
	start := rep.Sampled
	// SRANDMEMBER draws distinct users per call but may repeat across calls;
	// stop when a few draws in a row bring nobody new (all sampled).
	for stale := 0; rep.Sampled-start < want && stale < 3; {
		var users []string
		if err := e.safe.call(func() (err error) {
			users, err = e.cache.SampleUsers(ctx, season, 256)
			return err
		}); err != nil {
			return err
		}
		fresh := 0
		for _, p := range users {
			if seen[p] || rep.Sampled-start >= want {
				continue
			}
			seen[p] = true
			fresh++
			rows, err := e.store.UserCards(ctx, season, p)
			if err != nil {
				return err
			}
			st, err := e.mergeUser(ctx, season, p, rows)
			if err != nil {
				return err
			}
			rep.Sampled += st.compared
			rep.Discrepancies += st.differ
			rep.Corrected += st.corrected
			rep.SkippedPending += st.pending
		}
		if fresh == 0 {
			stale++
		} else {
			stale = 0
		}
	}
	return nil
}
