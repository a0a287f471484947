// Package engine is the application core of the sidecar: it runs the review
// and due-list paths over the cache, the durable queue and the store, and
// manages seasons. It holds no protocol code; commands/ calls it.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"golang.org/x/sync/singleflight"

	"github.com/srsproxy/srsproxy/backend/mariadb"
	rcache "github.com/srsproxy/srsproxy/backend/redis"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

// Cache is the upstream Redis (backend/redis.Cache implements it).
type Cache interface {
	Due(ctx context.Context, season, player, subject string, now int64, limit int) (rcache.DueResult, error)
	Read(ctx context.Context, season, player, question, reviewID string) (rcache.ReadResult, error)
	Load(ctx context.Context, season, player string, cards []srs.Card) (bool, error)
	Swap(ctx context.Context, expected string, r srs.Review) (rcache.SwapResult, error)
	Invalidate(ctx context.Context, season, player string) error
	// Seasons at scale: archive, rebuild, reconciliation.
	ClearSeason(ctx context.Context, season string) (int64, error)
	UserCards(ctx context.Context, season, player string) (map[string]rcache.CachedCard, bool, error)
	PutIfUnchanged(ctx context.Context, season, player string, puts []rcache.Put) (int, error)
	LoadMany(ctx context.Context, season string, users map[string][]srs.Card) (map[string]bool, error)
	SampleUsers(ctx context.Context, season string, n int) ([]string, error)
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
	LoggedReview(ctx context.Context, season, reviewID string) (srs.Review, bool, error)
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
	// withdraws it. Writing before the cache's compare-and-set means a crash
	// can never leave the cache holding a review the queue lacks.
	Hold(r srs.Review) (uint64, error)
	Release(ticket uint64) error
	Cancel(ticket uint64) error
	// Unsettled lists the recovered held entries nobody released or
	// cancelled (the last process stopped in between), by ticket.
	Unsettled() map[uint64]srs.Review
	// Wait blocks until the entry is durable.
	Wait(ctx context.Context, ticket uint64) error
	// Pending lists the user-season's reviews not yet drained, in append order.
	Pending(season, player string) []srs.Review
	// PendingReview finds a not-yet-drained review by id.
	PendingReview(season, reviewID string) (srs.Review, bool)
}

// Config configures an Engine. The zero value of each field means its default.
type Config struct {
	Sidecar   string        // this sidecar's id, recorded with each review
	SeasonTTL time.Duration // how long season settings are cached in memory, default 2s
	// ReviewIDWindow is how long the cache remembers review ids (backend/redis
	// Options.ReviewIDTTL), default 1h.
	ReviewIDWindow time.Duration
	SafeMode       SafeModeConfig
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
	locks [256]sync.Mutex // per-card review locks, by hash
	// users orders a lazy load (write lock) after the reviews of that user
	// whose queue entry is held across the cache's compare-and-set (read
	// lock): a load never reads the queue while a review it cannot see yet
	// has already reached the cache.
	users  [256]sync.RWMutex
	seed   maphash.Seed
	mu     sync.Mutex
	season map[string]seasonEntry
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
	cfg.Retention = cmp.Or(cfg.Retention, 3*Year)
	cfg.ReviewIDWindow = cmp.Or(cfg.ReviewIDWindow, time.Hour)
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
		safe: newSafeMode(cfg.SafeMode, cfg.Now),
		seed: maphash.MakeSeed(), season: make(map[string]seasonEntry),
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
// the store, so a student never sees an acknowledged answer disappear.
func overlay(cards []srs.Card, pending []srs.Review) []srs.Card {
	if len(pending) == 0 {
		return cards
	}
	at := make(map[string]int, len(cards))
	for i, c := range cards {
		at[c.QuestionID] = i
	}
	for _, r := range pending {
		i, ok := at[r.QuestionID]
		switch {
		case !ok:
			at[r.QuestionID] = len(cards)
			cards = append(cards, r.Card())
		case r.After.NewerThan(cards[i].Schedule):
			cards[i] = r.Card()
		}
	}
	return cards
}

// append writes a review whose outcome is decided and returns its durability wait.
func (e *Engine) append(r srs.Review) (func(context.Context) error, error) {
	t, err := e.journal.Hold(r)
	if err != nil {
		return nil, err
	}
	if err := e.journal.Release(t); err != nil {
		return nil, err
	}
	return e.waiter(t), nil
}

func (e *Engine) waiter(t uint64) func(context.Context) error {
	return func(ctx context.Context) error { return e.journal.Wait(ctx, t) }
}

// Recover settles what the last process left in the queue before serving.
// A recovered review that was held across its compare-and-set and neither
// released nor cancelled is decided against the cache: it landed if the
// cache remembers its id, or if the card is still in the state it was
// computed from (then it is applied now); if another review moved the card
// on without it, it is cancelled — it was never acknowledged, and keeping it
// would fork the card's history. Then cached cards older than a recovered
// review are brought forward; nothing is deleted, because a reload would
// miss other sidecars' undrained reviews. When the cache cannot tell (down,
// or the student not cached), reviews are kept and the student is reloaded
// before the cache serves it.
func (e *Engine) Recover(ctx context.Context, users [][2]string) {
	for t, r := range e.journal.Unsettled() {
		keep, err := e.settle(ctx, r)
		switch {
		case err != nil:
			e.log.Warn("recover: cannot check an unsettled review against the cache; keeping it", "review", r.ID, "err", err)
			e.safe.markDirty(r.Season, r.Player)
			keep = true
		case !keep:
			e.log.Warn("recover: dropping a review that never reached the cache and was superseded (never acknowledged)",
				"review", r.ID, "season", r.Season, "player", r.Player, "question", r.QuestionID)
		}
		if keep {
			err = e.journal.Release(t)
		} else {
			err = e.journal.Cancel(t)
		}
		if err != nil {
			e.log.Error("recover: settle a review", "review", r.ID, "err", err)
		}
	}
	for _, u := range users {
		season, player := u[0], u[1]
		err := e.safe.call(func() error {
			cached, loaded, err := e.cache.UserCards(ctx, season, player)
			if err != nil || !loaded {
				return err
			}
			var puts []rcache.Put
			for _, c := range overlay(nil, e.journal.Pending(season, player)) {
				cur, ok := cached[c.QuestionID]
				if !ok || c.NewerThan(cur.Card.Schedule) {
					puts = append(puts, rcache.Put{Expected: cur.Raw, Card: c})
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

// settle decides whether an unsettled review is part of its card's history.
func (e *Engine) settle(ctx context.Context, r srs.Review) (keep bool, err error) {
	if e.now()-r.ReviewedAt > e.cfg.ReviewIDWindow.Milliseconds() {
		return true, nil // the cache may have forgotten its id: cannot tell, keep
	}
	var rd rcache.ReadResult
	err = e.safe.call(func() (err error) {
		rd, err = e.cache.Read(ctx, r.Season, r.Player, r.QuestionID, r.ID)
		return err
	})
	switch {
	case err != nil:
		return true, err
	case !rd.Loaded:
		return true, nil // nothing cached to compare with: the reload overlays it
	case rd.Dup != nil:
		return true, nil // the compare-and-set stored it
	case !rd.Found:
		return r.Before == srs.Schedule{}, nil // a new card nobody reviewed since
	}
	return rd.Card.Schedule == r.Before, nil
}

// load fills the cache with a user-season from the store and the local queue.
// Concurrent misses of one user-season share one load.
func (e *Engine) load(ctx context.Context, season, player string) error {
	_, err, _ := e.loads.Do(season+"\x00"+player, func() (any, error) {
		mu := e.userLock(season, player)
		mu.Lock()
		defer mu.Unlock()
		// Pending first: an entry drained after this read is in the store read
		// that follows, so none falls between the two.
		pending := e.journal.Pending(season, player)
		cards, err := e.store.UserCards(ctx, season, player)
		if err != nil {
			return nil, fmt.Errorf("load %s/%s: %w", season, player, err)
		}
		e.metrics.loads.Add(ctx, 1)
		return nil, e.safe.call(func() error {
			_, err := e.cache.Load(ctx, season, player, overlay(cards, pending))
			return err
		})
	})
	return err
}

// storeCard reads one card from the store with the local queue overlaid.
func (e *Engine) storeCard(ctx context.Context, season, player, question string) (srs.Card, bool, error) {
	// Pending first, as in load: a review drained between the two reads is
	// then in the store read, never in neither.
	pending := e.journal.Pending(season, player)
	c, found, err := e.store.Card(ctx, season, player, question)
	if err != nil {
		return srs.Card{}, false, err
	}
	for _, r := range pending {
		if r.QuestionID == question && (!found || r.After.NewerThan(c.Schedule)) {
			c, found = r.Card(), true
		}
	}
	return c, found, nil
}

// cardLock serialises the reviews of one card in this sidecar.
func (e *Engine) cardLock(season, player, question string) *sync.Mutex {
	h := maphash.String(e.seed, season+"\x00"+player+"\x00"+question)
	return &e.locks[h%uint64(len(e.locks))]
}

// userLock orders lazy loads of a user-season after its in-flight reviews.
func (e *Engine) userLock(season, player string) *sync.RWMutex {
	h := maphash.String(e.seed, season+"\x00"+player)
	return &e.users[h%uint64(len(e.users))]
}

// ErrUncheckable refuses a review whose id cannot be checked for a repeat.
var ErrUncheckable = errors.New("review id cannot be checked now; retry later")

// ErrContention means a card or user kept changing under concurrent requests; the client should retry.
var ErrContention = errors.New("card kept changing under concurrent requests; retry")
