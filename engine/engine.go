// Package engine is the application core of the sidecar: it runs the review
// and due-list paths over the cache, the durable queue and the store, and
// manages seasons. It holds no protocol code; commands/ calls it.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/sync/singleflight"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	"github.com/srsproxy/srsproxy/engine/core"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// Cache is the upstream Redis holding card records (backend/redis.Cache
// implements it). Tokens are the opaque stored records, the expected values
// of compare-and-sets.
type Cache interface {
	Due(ctx context.Context, season, player, subject string, now int64, limit int) (srs.DuePage, error)
	Read(ctx context.Context, season, player, question string) (srs.CardRead, error)
	// Peek reads a card from the sidecar's own memory, without a round trip;
	// it may be stale (ok false: nothing there). Only a compare-and-set may
	// build on it: the swap fails if the card moved on.
	Peek(season, player, question string) (rd srs.CardRead, ok bool)
	Load(ctx context.Context, season, player string, cards []srs.Card) (bool, error)
	Swap(ctx context.Context, expected string, card srs.Card) (srs.SwapOutcome, error)
	Invalidate(ctx context.Context, season, player string) error
	// Seasons at scale: archive, rebuild, reconciliation.
	ClearSeason(ctx context.Context, season string) (int64, error)
	UserCards(ctx context.Context, season, player string) (map[string]srs.CachedCard, bool, error)
	// Cards reads some cards of a user-season (absent ones left out).
	Cards(ctx context.Context, season, player string, questions []string) (map[string]srs.CachedCard, bool, error)
	PutIfUnchanged(ctx context.Context, season, player string, puts []srs.CardPut) (int, error)
	LoadMany(ctx context.Context, season string, users map[string][]srs.Card) (map[string]bool, error)
	SampleUsers(ctx context.Context, season string, n int) ([]string, error)
	// Season settings as last read from the store, for a sidecar that meets
	// a season while MariaDB is down.
	PutSeasonSnapshot(ctx context.Context, s srs.Season) error
	SeasonSnapshot(ctx context.Context, season string) (srs.Season, bool, error)
}

// Store is the source of truth (backend/mariadb.Store implements it).
type Store interface {
	CreateSeason(ctx context.Context, s srs.Season) (srs.Season, error)
	Season(ctx context.Context, name string) (srs.Season, error)
	Seasons(ctx context.Context) ([]srs.Season, error)
	UpdateSeason(ctx context.Context, s srs.Season) error
	CountCards(ctx context.Context, season string) (int64, error)
	UserCards(ctx context.Context, season, player string) ([]srs.Card, error)
	Card(ctx context.Context, season, player, question string) (srs.Card, bool, error)
	DueCards(ctx context.Context, season, player, subject string, now int64, limit int) ([]srs.Card, error)
	CountDue(ctx context.Context, season, player, subject string, now int64) (int64, error)
	// LoggedReview finds a review in the log by its id, scoped to its card.
	LoggedReview(ctx context.Context, season, player, question, reviewID string) (srs.Review, bool, error)
	// Seasons at scale: archive, retention, rebuild jobs, cluster-wide locks.
	ArchiveSeason(ctx context.Context, season string) (mariadb.ArchiveResult, error)
	ArchiveInfo(ctx context.Context, season string) (cards, logRows int64, ok bool, err error)
	ArchivedCard(ctx context.Context, season, player, question string) (srs.Card, bool, error)
	PurgeArchive(ctx context.Context, season string) error
	CardsPage(ctx context.Context, season, afterPlayer, afterQuestion string, limit int) ([]srs.Card, error)
	CreateJob(ctx context.Context, j mariadb.Job) error
	UpdateJob(ctx context.Context, j mariadb.Job) error
	Job(ctx context.Context, id string) (mariadb.Job, bool, error)
	Jobs(ctx context.Context, state string) ([]mariadb.Job, error)
	TryLock(ctx context.Context, name string) (*mariadb.Lock, bool, error)
}

// Replica is a read-only copy of the store (a MariaDB replica): the reads
// that may lag the primary by the replication delay. backend/mariadb.Store
// implements it (mariadb.OpenReplica).
type Replica interface {
	DueCards(ctx context.Context, season, player, subject string, now int64, limit int) ([]srs.Card, error)
	CountDue(ctx context.Context, season, player, subject string, now int64) (int64, error)
	UserCards(ctx context.Context, season, player string) ([]srs.Card, error)
	ArchiveInfo(ctx context.Context, season string) (cards, logRows int64, ok bool, err error)
	ArchivedCard(ctx context.Context, season, player, question string) (srs.Card, bool, error)
}

// Journal is the durable local queue (writebehind.Queue implements it).
type Journal interface {
	// Hold writes r now but keeps it from the drainer until Release; Cancel
	// withdraws it. The review path holds its entry across the cache's
	// compare-and-set, and waits for its fsync before it (write ahead), so
	// the cache never shows a review that is on no disk. Release and Cancel
	// take effect in memory at once; their records need no fsync (recovery
	// does not depend on them, docs/CORE.md §3).
	Hold(r srs.Review) (uint64, error)
	Release(ticket uint64) error
	Cancel(ticket uint64) error
	// Append writes a decided review (the store path: no compare-and-set).
	Append(r srs.Review) (uint64, error)
	// Unsettled lists the recovered held entries nobody released or
	// cancelled (the last process stopped in between), by ticket.
	Unsettled() map[uint64]srs.Review
	// Wait blocks until the entry is durable.
	Wait(ctx context.Context, ticket uint64) error
	// Sync blocks until every entry written so far is durable.
	Sync(ctx context.Context) error
	// Pending lists the user-season's reviews not yet drained, in append order.
	Pending(season, player string) []srs.Review
	// PendingReview finds a not-yet-drained review by its id, scoped to its card.
	PendingReview(season, player, question, reviewID string) (srs.Review, bool)
}

// DirtyLog is the durable set of user-seasons whose cache entries may be
// stale because this sidecar wrote them without the cache.
type DirtyLog interface {
	Mark(season, player string) error // durable when it returns
	Clean(season, player string) error
	Marked() [][2]string
}

// Config configures an Engine. The zero value of each field means its default.
type Config struct {
	Sidecar   string        // this sidecar's id, recorded with each review
	SeasonTTL time.Duration // how long season settings are cached in memory, default 2s
	SafeMode  SafeModeConfig
	// Dirty persists the users this sidecar wrote without the cache, so a
	// restart still invalidates their stale cache entries (nil: in memory
	// only; internal/dirtyset implements it).
	Dirty DirtyLog
	// Replica serves Safe Mode's SRS.DUE and the reads of archived seasons
	// (nil: the store). Never the card read before a review, nor a lazy
	// load: those must see every drained write (read your writes).
	Replica   Replica
	Retention time.Duration // archives older than this become eligible for deletion, default 3 years
	// OnAlert tells operators about a problem found by a background job
	// (reconciliation above AlertRate); cmd/srsproxy posts it to the webhook.
	OnAlert func(event, text string)
	Now     func() time.Time
	Logger  *slog.Logger
	Meter   metric.Meter // nil: no metrics
	// CatchUpParallel is how many users a drained batch's cache catch-up
	// writes at once, default 16 (1: one after another, on the drainer's
	// goroutine). Each user is a read and a compare-and-set; one at a time,
	// a 2,000-review batch waited for thousands of round trips.
	CatchUpParallel int
}

// Year is 365.25 days, the unit of retention periods.
const Year = 8766 * time.Hour

// Engine runs the SRS paths. It is safe for concurrent use.
type Engine struct {
	cache   Cache
	store   Store
	replica Replica // the store when no replica is configured
	journal Journal
	cfg     Config
	log     *slog.Logger

	safe    *safeMode
	metrics engineMetrics

	jobs  sync.WaitGroup // background jobs (rebuilds)
	loads singleflight.Group
	cards keyedLocks // one review of a card at a time in this sidecar
	// users orders a load of a user-season (exclusive) after the reviews of
	// that user whose queue entry is held across the cache's compare-and-set
	// (shared): a load never reads the queue while a review it cannot see
	// yet has already reached the cache. Keyed, so a load stuck on MariaDB
	// holds up only its own user, who is not cached anyway.
	users keyedLocks
	// recomputed collects the rows the store recomputes during one drained
	// batch (Recomputed), for the cache catch-up after it.
	recomputeMu sync.Mutex
	recomputed  []srs.Card
	mu          sync.Mutex
	season      map[string]seasonEntry
	snapshots   map[string]srs.Season // the settings this sidecar last put in the cache's snapshot
}

type seasonEntry struct {
	season  srs.Season
	sched   *fsrs.Scheduler
	fetched time.Time
}

// New builds an Engine over its three dependencies. Start runs its
// background work (breaker probes, recovery).
func New(cache Cache, store Store, journal Journal, cfg Config) (*Engine, error) {
	cfg.SeasonTTL = cmp.Or(cfg.SeasonTTL, 2*time.Second)
	cfg.CatchUpParallel = cmp.Or(cfg.CatchUpParallel, 16)
	cfg.Retention = cmp.Or(cfg.Retention, 3*Year)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider().Meter("")
	}
	e := &Engine{
		cache: cache, store: store, replica: cfg.Replica, journal: journal, cfg: cfg, log: cfg.Logger,
		safe:   newSafeMode(cfg.SafeMode, cfg.Now),
		season: make(map[string]seasonEntry), snapshots: make(map[string]srs.Season),
	}
	if e.replica == nil {
		e.replica = store
	}
	var err error
	if e.metrics, err = newEngineMetrics(cfg.Meter); err != nil {
		return nil, err
	}
	if err := e.safeMetrics(cfg.Meter); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Engine) now() int64 { return e.cfg.Now().UnixMilli() }

// overlay applies this sidecar's not-yet-drained reviews to cards read from
// the store (core.Overlay).
func overlay(cards []srs.Card, pending []srs.Review) []srs.Card { return core.Overlay(cards, pending) }

// Recover settles what the last process left in the queue before serving
// (docs/CORE.md §3): each held entry nobody released or cancelled is
// dropped when a later attempt of the same review is queued, kept when the
// cache shows it, completed when the card is still its Before, and
// otherwise kept with its user marked dirty (reloaded before the cache
// serves it). Then cached cards older than a recovered review are brought
// forward; nothing is deleted, because a reload would miss other sidecars'
// undrained reviews.
func (e *Engine) Recover(ctx context.Context, users [][2]string) {
	if e.cfg.Dirty != nil {
		for _, u := range e.cfg.Dirty.Marked() {
			e.safe.markDirty(u[0], u[1]) // invalidated before the cache serves them
		}
	}
	unsettled := e.journal.Unsettled()
	for _, t := range slices.Sorted(maps.Keys(unsettled)) { // in queue order: deterministic, replayable
		e.settle(ctx, t, unsettled[t])
	}
	for _, u := range users {
		season, player := u[0], u[1]
		err := e.safe.call(func() error {
			cached, loaded, err := e.cache.UserCards(ctx, season, player)
			if err != nil || !loaded {
				return err
			}
			var puts []srs.CardPut
			for _, c := range overlay(nil, e.journal.Pending(season, player)) {
				cur, ok := cached[c.QuestionID]
				if !ok || c.NewerThan(cur.Card.Schedule) {
					puts = append(puts, srs.CardPut{Expected: cur.Token, Card: c})
				}
			}
			if len(puts) == 0 {
				return nil
			}
			n, err := e.cache.PutIfUnchanged(ctx, season, player, puts)
			if err == nil && n != len(puts) {
				err = fmt.Errorf("%d of %d recovered cards changed meanwhile", len(puts)-n, len(puts))
			}
			return err
		})
		if err != nil {
			e.log.Warn("recover cache from the queue; the user is reloaded before the cache serves it", "season", season, "player", player, "err", err)
			e.safe.markDirty(season, player)
		}
	}
}

// settle decides one recovered held entry (core.Settle) and carries it out.
func (e *Engine) settle(ctx context.Context, t uint64, r srs.Review) {
	_, sameID := e.journal.PendingReview(r.Season, r.Player, r.QuestionID, r.ID)
	var rd srs.CardRead
	readErr := e.safe.call(func() (err error) {
		rd, err = e.cache.Read(ctx, r.Season, r.Player, r.QuestionID)
		return err
	})
	decision := core.Settle(r, sameID, rd, readErr == nil)
	e.log.Debug("recover: settle a held review", "review", r.ID, "player", r.Player, "question", r.QuestionID, "decision", decision, "read_err", readErr)
	if decision == core.Complete {
		var out srs.SwapOutcome
		err := e.safe.call(func() (err error) {
			out, err = e.cache.Swap(ctx, rd.Token, r.Card())
			return err
		})
		decision = core.Keep
		if err != nil || out != srs.SwapStored {
			decision = core.KeepDirty
		}
	}
	switch decision {
	case core.Drop:
		e.log.Info("recover: dropping a held review that a later attempt of the same review replaced (never acknowledged)",
			"review", r.ID, "season", r.Season, "player", r.Player, "question", r.QuestionID)
		_ = e.journal.Cancel(t)
		return
	case core.KeepDirty:
		if err := e.markDirty(r.Season, r.Player); err != nil {
			e.log.Error("recover: persist a dirty mark", "season", r.Season, "player", r.Player, "err", err)
		}
	}
	if err := e.journal.Release(t); err != nil {
		e.log.Error("recover: release a held review", "review", r.ID, "err", err)
	}
}

// load fills the cache with a user-season from the store and the local queue.
// Concurrent misses of one user-season share one load. The store read has
// the store's own deadline; the user's lock is held for it, which holds up
// only this user's reviews (not cached, so they need the load anyway).
func (e *Engine) load(ctx context.Context, season, player string) error {
	_, err, _ := e.loads.Do(season+"\x00"+player, func() (any, error) {
		if down, err := e.storeDown(); down {
			return nil, fmt.Errorf("%w: load %s/%s: %v", srs.ErrStoreUnavailable, season, player, err)
		}
		unlock := e.users.Lock(season + "\x00" + player)
		defer unlock()
		// Pending first: an entry drained after this read is in the store read
		// that follows, so none falls between the two.
		pending := e.journal.Pending(season, player)
		cards, err := e.store.UserCards(ctx, season, player)
		if err != nil {
			return nil, fmt.Errorf("%w: load %s/%s: %v", srs.ErrStoreUnavailable, season, player, err)
		}
		e.metrics.loads.Add(ctx, 1)
		var wrote bool
		if err := e.safe.call(func() (err error) {
			wrote, err = e.cache.Load(ctx, season, player, overlay(cards, pending))
			return err
		}); err != nil || !wrote {
			return nil, err
		}
		// A drainer that committed after the store read above and found the
		// user not loaded skipped its catch-up; read again and catch up with
		// what changed (usually nothing: no cache write).
		again, err := e.store.UserCards(ctx, season, player)
		if err != nil {
			e.log.Debug("load: second read failed; the user is reloaded before the cache serves it", "season", season, "player", player, "err", err)
			return nil, e.markDirty(season, player)
		}
		before := make(map[string]srs.Schedule, len(cards))
		for _, c := range cards {
			before[c.QuestionID] = c.Schedule
		}
		changed := map[string]srs.Card{}
		for _, c := range again {
			if s, ok := before[c.QuestionID]; !ok || s != c.Schedule {
				changed[c.QuestionID] = c
			}
		}
		if len(changed) > 0 {
			if err := e.catchUpUser(ctx, season, player, changed); err != nil {
				return nil, errors.Join(err, e.markDirty(season, player))
			}
		}
		return nil, nil
	})
	return err
}

// storeCard reads one card from the store with the local queue overlaid.
func (e *Engine) storeCard(ctx context.Context, season, player, question string) (srs.Card, bool, error) {
	if down, err := e.storeDown(); down {
		return srs.Card{}, false, fmt.Errorf("%w: card %s/%s/%s: %v", srs.ErrStoreUnavailable, season, player, question, err)
	}
	// Pending first, as in load: a review drained between the two reads is
	// then in the store read, never in neither.
	pending := e.journal.Pending(season, player)
	c, found, err := e.store.Card(ctx, season, player, question)
	if err != nil {
		return srs.Card{}, false, fmt.Errorf("%w: card %s/%s/%s: %v", srs.ErrStoreUnavailable, season, player, question, err)
	}
	for _, r := range pending {
		if r.QuestionID == question && (!found || r.After.NewerThan(c.Schedule)) {
			c, found = r.Card(), true
		}
	}
	return c, found, nil
}

// ErrContention means a card or user kept changing under concurrent requests; the client should retry.
var ErrContention = errors.New("card kept changing under concurrent requests; retry")

// markDirty marks a user whose cache entry may be stale: durably first (a
// crash must not forget it), then in memory.
func (e *Engine) markDirty(season, player string) error {
	var err error
	if e.cfg.Dirty != nil {
		err = e.cfg.Dirty.Mark(season, player)
	}
	e.safe.markDirty(season, player)
	return err
}

// ensureClean invalidates a user's cache entry if this sidecar wrote the user
// without the cache (during an outage) and has not invalidated it since.
func (e *Engine) ensureClean(ctx context.Context, season, player string) error {
	if e.safe.dirtyGen(season, player) == 0 {
		return nil
	}
	return e.invalidate(ctx, season, player)
}
