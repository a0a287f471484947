package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/srsproxy/srsproxy/srs"
)

// ReviewStore is what the write-behind drainer writes to
// (writebehind.Store; backend/mariadb.Store implements it).
type ReviewStore interface {
	ApplyReviews(ctx context.Context, batch []srs.Review) (rejected []int, err error)
}

// DrainTo wraps the store the drainer writes to: after each committed batch
// the cache is brought up to the batch (CatchUp), before the queue forgets
// the batch, so a crash in between redoes both.
func (e *Engine) DrainTo(store ReviewStore) ReviewStore { return drainStore{e, store} }

type drainStore struct {
	e     *Engine
	store ReviewStore
}

// ApplyReviews commits the batch, then catches the cache up with the rows
// it wrote: each card's newest review, or the row the store recomputed from
// the log (reported through Engine.Recomputed while the call runs).
func (d drainStore) ApplyReviews(ctx context.Context, batch []srs.Review) ([]int, error) {
	d.e.recomputeMu.Lock()
	d.e.recomputed = nil
	d.e.recomputeMu.Unlock()
	rejected, err := d.store.ApplyReviews(ctx, batch)
	d.e.recomputeMu.Lock()
	recomputed := d.e.recomputed
	d.e.recomputed = nil
	d.e.recomputeMu.Unlock()
	if err != nil {
		return rejected, err
	}
	rows := map[cardKey]srs.Card{}
	var order []cardKey
	for i, r := range batch {
		if slices.Contains(rejected, i) {
			continue
		}
		k := cardKey{r.Season, r.Player, r.QuestionID}
		cur, ok := rows[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || r.After.NewerThan(cur.Schedule) {
			rows[k] = r.Card()
		}
	}
	for _, c := range recomputed {
		k := cardKey{c.Season, c.Player, c.QuestionID}
		if _, ok := rows[k]; !ok {
			order = append(order, k)
		}
		rows[k] = c
	}
	out := make([]srs.Card, 0, len(order))
	for _, k := range order {
		out = append(out, rows[k])
	}
	d.e.CatchUp(ctx, out)
	return rejected, nil
}

type cardKey struct{ season, player, question string }

// Recomputed is told by the store of a card row it recomputed from the
// review log while applying a batch (a late or forked review); the drainer
// then writes that row to the cache (backend/mariadb's Store.OnRecompute).
func (e *Engine) Recomputed(c srs.Card) {
	e.recomputeMu.Lock()
	e.recomputed = append(e.recomputed, c)
	e.recomputeMu.Unlock()
}

// CatchUp makes sure no cached card is older than, or forked from, the rows
// a drained batch wrote (invariant 4). A load by another sidecar cannot see
// this sidecar's undrained reviews, so it may have cached a card from before
// them; and a row the store recomputed from the log is the truth a cached
// fork must take. One script per user reads the cards, and only cards behind
// are written (compare-and-set); a cached card newer than its row is left
// alone. When the cache cannot answer, the users are marked dirty (durably),
// so they are invalidated before this sidecar serves them from the cache.
func (e *Engine) CatchUp(ctx context.Context, rows []srs.Card) {
	type user struct{ season, player string }
	byUser := map[user]map[string]srs.Card{}
	var order []user
	for _, c := range rows {
		u := user{c.Season, c.Player}
		if byUser[u] == nil {
			byUser[u] = map[string]srs.Card{}
			order = append(order, u)
		}
		byUser[u][c.QuestionID] = c
	}
	one := func(u user) {
		if !e.seasonCached(u.season) {
			return // the season does not use the cache
		}
		if err := e.catchUpUser(ctx, u.season, u.player, byUser[u]); err != nil {
			e.log.Debug("catch-up after drain failed; the user is reloaded before the cache serves it", "season", u.season, "player", u.player, "err", err)
			if err := e.markDirty(u.season, u.player); err != nil {
				e.log.Error("persist a dirty mark", "season", u.season, "player", u.player, "err", err)
			}
		}
	}
	if e.cfg.CatchUpParallel <= 1 || len(order) == 1 {
		for _, u := range order {
			one(u)
		}
		return
	}
	var g errgroup.Group // users are independent; all are done when CatchUp returns
	g.SetLimit(e.cfg.CatchUpParallel)
	for _, u := range order {
		g.Go(func() error {
			one(u)
			return nil
		})
	}
	_ = g.Wait()
}

// catchUpUser writes the reviews' cards the cache holds older (or lacks),
// reading again when a card changed between the read and the write. Its
// calls skip admission control: the drainer is one goroutine, and shedding
// it under client overload would stall the drain (srsbench's 10,000-connection
// mixed load drained 129 rows/s while its catch-ups were shed) and mark every
// user dirty.
func (e *Engine) catchUpUser(ctx context.Context, season, player string, rows map[string]srs.Card) error {
	questions := slices.Sorted(maps.Keys(rows))
	for range 3 {
		var cached map[string]srs.CachedCard
		var loaded bool
		if err := e.safe.callCommitted(ctx, func() (err error) {
			cached, loaded, err = e.cache.Cards(ctx, season, player, questions)
			return err
		}); err != nil || !loaded {
			return err
		}
		var puts []srs.CardPut
		for _, q := range questions {
			row := rows[q]
			cur, ok := cached[q]
			if !ok || row.NewerThan(cur.Card.Schedule) || cur.Card.Schedule != row.Schedule && !cur.Card.NewerThan(row.Schedule) {
				puts = append(puts, srs.CardPut{Expected: cur.Token, Card: row})
			}
		}
		if len(puts) == 0 {
			return nil
		}
		var n int
		if err := e.safe.callCommitted(ctx, func() (err error) {
			n, err = e.cache.PutIfUnchanged(ctx, season, player, puts)
			return err
		}); err != nil {
			return fmt.Errorf("catch-up put: %w", err)
		}
		if n < 0 || n == len(puts) {
			return nil // written, or no longer cached
		}
	}
	return fmt.Errorf("%w: catch-up of %s/%s", ErrContention, season, player)
}

// seasonCached reports whether a season uses the cache, from the settings in
// memory (the drainer must not wait on the store); unknown seasons count as
// cached.
func (e *Engine) seasonCached(name string) bool {
	e.mu.Lock()
	ent, ok := e.season[name]
	e.mu.Unlock()
	return !ok || ent.season.EnableCache
}
