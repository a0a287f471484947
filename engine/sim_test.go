package engine

// The deterministic simulation of docs/CORE.md §8: 2–4 real Engines (one per
// simulated sidecar) over an in-memory cache, store and per-sidecar queues.
// Every port call is a yield point of a cooperative scheduler: one actor
// (a client, a drainer, a recovering sidecar) runs at a time, and one seed
// picks which runs next, the clock, and every fault — sidecar crashes at any
// yield point (unsynced queue writes are lost), cache loss and eviction, a
// Redis that fails or times out after or before applying a swap, MariaDB
// cuts, a full queue disk. After the clients finish, faults stop, crashed
// sidecars recover, every sidecar touches every student and the queues
// drain; then invariants 1–4 are checked. A failing seed is printed;
// `go test ./engine -run TestSimulation -sim.seed=N -v` replays it.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/srsproxy/srsproxy/engine/core"
	"github.com/srsproxy/srsproxy/fsrs"
	"github.com/srsproxy/srsproxy/srs"
)

var (
	simSeeds = flag.Int("sim.seeds", 2000, "number of simulation seeds")
	simSeed  = flag.Uint64("sim.seed", 0, "run only this simulation seed (replay)")
)

const simSeason = "SEASON-2026"

var (
	errCrash     = errors.New("sim: sidecar crashed")
	errRedisDown = errors.New("sim: redis down")
	errRedisSlow = errors.New("sim: redis timeout")
	errStoreDown = errors.New("sim: mariadb down")
	errFsync     = errors.New("sim: fsync failed")
)

type scopedID struct{ player, question, id string }

// actor is one simulated thread of control; it runs only while the
// scheduler has resumed it.
type actor struct {
	name   string
	resume chan bool // true: the sidecar it is inside crashed
	in     int       // sidecar whose port it is parked in; -1 none
	done   bool
	body   func(a *actor)
}

// simDirty is a sidecar's durable dirty set (it survives crashes).
type simDirty struct{ users map[[2]string]bool }

func (d *simDirty) Mark(season, player string) error {
	d.users[[2]string{season, player}] = true
	return nil
}

func (d *simDirty) Clean(season, player string) error {
	delete(d.users, [2]string{season, player})
	return nil
}

func (d *simDirty) Marked() [][2]string {
	return slices.SortedFunc(maps.Keys(d.users), func(a, b [2]string) int { return cmp.Compare(a[0]+a[1], b[0]+b[1]) })
}

type simSidecar struct {
	id      int
	dirty   *simDirty
	state   string // "running", "recovering"
	eng     *Engine
	journal *simJournal
	gen     int // bumped per crash; actors of an older generation are aborted
	// near is the sidecar's in-memory copy of users it read (the adapter's
	// near-cache): Peek answers from it, possibly stale; a crash loses it.
	near map[string]map[string]srs.Card
	busy *actor // the actor whose request is in flight: one at a time per sidecar, so the
	// engine's own locks never block an actor outside a yield point (the
	// interleaving of requests inside one sidecar is left to the race tests)
}

type world struct {
	t      testing.TB
	rng    *rand.Rand
	now    int64
	sched  *fsrs.Scheduler
	season srs.Season

	actors  []*actor
	current *actor
	parked  chan struct{}

	sidecars []*simSidecar
	faults   bool
	// faults in force
	redisDown, storeDown bool
	diskFull             map[int]bool

	// the shared cache: user → card → record
	cache map[string]map[string]srs.Card
	// the store: the review log, in insertion order, and its index
	log      []srs.Review
	logIndex map[scopedID]int

	acks   map[scopedID][]srs.Review // replies sent (duplicate or not)
	fresh  map[scopedID]int          // non-duplicate acknowledgements
	trace  []string
	steps  int
	events map[string]int
}

func (w *world) tracef(format string, args ...any) {
	if len(w.trace) < 4000 {
		w.trace = append(w.trace, fmt.Sprintf("%6d t=%d ", w.steps, w.now)+fmt.Sprintf(format, args...))
	}
}

// yield parks the current actor inside sidecar sc's port call; it returns
// errCrash when the sidecar crashed meanwhile (the caller unwinds).
func (w *world) yield(sc int) {
	a := w.current
	if a == nil {
		return // not an actor (a background goroutine): no interleaving point
	}
	gen := w.sidecars[sc].gen
	a.in = sc
	w.parked <- struct{}{}
	crashed := <-a.resume
	a.in = -1
	if crashed || w.sidecars[sc].gen != gen {
		panic(errCrash)
	}
}

func (w *world) spawn(name string, body func(a *actor)) {
	a := &actor{name: name, resume: make(chan bool), in: -1, body: body}
	w.actors = append(w.actors, a)
	go func() {
		defer func() {
			if r := recover(); r != nil && !isCrash(r) {
				w.t.Errorf("actor %s panicked: %v", name, r)
			}
			a.done = true
			w.parked <- struct{}{}
		}()
		<-a.resume
		body(a)
	}()
}

// step resumes one actor until it parks again.
func (w *world) step(a *actor, crash bool) {
	w.current = a
	a.resume <- crash
	<-w.parked
	w.current = nil
}

// --- ports ------------------------------------------------------------------

type simCache struct {
	w  *world
	sc int
}

func userKeyOf(season, player string) string { return season + "|" + player }

func token(c srs.Card) string { return fmt.Sprintf("%+v", c) }

func (c simCache) enter() error {
	c.w.yield(c.sc)
	if c.w.redisDown {
		return errRedisDown
	}
	return nil
}

func (c simCache) Due(ctx context.Context, season, player, subject string, now int64, limit int) (srs.DuePage, error) {
	if err := c.enter(); err != nil {
		return srs.DuePage{}, err
	}
	u, ok := c.w.cache[userKeyOf(season, player)]
	if !ok {
		return srs.DuePage{}, nil
	}
	c.remember(season, player, u)
	page := srs.DuePage{Loaded: true}
	for _, q := range slices.Sorted(maps.Keys(u)) {
		card := u[q]
		if card.Due > now && (page.NextDue == 0 || card.Due < page.NextDue) {
			page.NextDue = card.Due
		}
		if card.Due <= now && (subject == "" || card.Subject == subject) {
			page.Total++
			if len(page.Cards) < limit {
				page.Cards = append(page.Cards, card)
			}
		}
	}
	return page, nil
}

func (c simCache) Read(ctx context.Context, season, player, question string) (srs.CardRead, error) {
	if err := c.enter(); err != nil {
		return srs.CardRead{}, err
	}
	u, ok := c.w.cache[userKeyOf(season, player)]
	if !ok {
		return srs.CardRead{}, nil
	}
	c.remember(season, player, u)
	card, found := u[question]
	rd := srs.CardRead{Loaded: true, Found: found}
	if found {
		rd.CachedCard = srs.CachedCard{Card: card, Token: token(card)}
	}
	return rd, nil
}

// remember copies a user into the sidecar's near memory, as the adapter's
// near-cache keeps the snapshot a read fetched.
func (c simCache) remember(season, player string, u map[string]srs.Card) {
	sc := c.w.sidecars[c.sc]
	if sc.near == nil {
		sc.near = map[string]map[string]srs.Card{}
	}
	sc.near[userKeyOf(season, player)] = maps.Clone(u)
}

// Peek answers from the sidecar's near memory: no yield, no fault, maybe stale.
func (c simCache) Peek(season, player, question string) (srs.CardRead, bool) {
	u, ok := c.w.sidecars[c.sc].near[userKeyOf(season, player)]
	if !ok {
		return srs.CardRead{}, false
	}
	card, found := u[question]
	rd := srs.CardRead{Loaded: true, Found: found}
	if found {
		rd.CachedCard = srs.CachedCard{Card: card, Token: token(card)}
	}
	return rd, true
}

func (c simCache) Load(ctx context.Context, season, player string, cards []srs.Card) (bool, error) {
	if err := c.enter(); err != nil {
		return false, err
	}
	k := userKeyOf(season, player)
	if _, ok := c.w.cache[k]; ok {
		return false, nil
	}
	u := map[string]srs.Card{}
	for _, card := range cards {
		u[card.QuestionID] = card
	}
	c.w.cache[k] = u
	return true, nil
}

func (c simCache) Swap(ctx context.Context, expected string, card srs.Card) (srs.SwapOutcome, error) {
	if err := c.enter(); err != nil {
		return 0, err
	}
	apply := func() srs.SwapOutcome {
		u, ok := c.w.cache[userKeyOf(card.Season, card.Player)]
		if !ok {
			return srs.SwapNotLoaded
		}
		cur, found := u[card.QuestionID]
		if found && token(cur) != expected || !found && expected != "" {
			return srs.SwapConflict
		}
		u[card.QuestionID] = card
		if near := c.w.sidecars[c.sc].near[userKeyOf(card.Season, card.Player)]; near != nil {
			near[card.QuestionID] = card
		}
		return srs.SwapStored
	}
	if c.w.faults && c.w.rng.IntN(20) == 0 {
		// A timeout: the script ran or not; the caller cannot tell.
		if c.w.rng.IntN(2) == 0 {
			apply()
			c.w.event("swap-timeout-landed")
		} else {
			c.w.event("swap-timeout-lost")
		}
		return 0, errRedisSlow
	}
	return apply(), nil
}

func (c simCache) Invalidate(ctx context.Context, season, player string) error {
	if err := c.enter(); err != nil {
		return err
	}
	delete(c.w.cache, userKeyOf(season, player))
	delete(c.w.sidecars[c.sc].near, userKeyOf(season, player))
	return nil
}

func (c simCache) UserCards(ctx context.Context, season, player string) (map[string]srs.CachedCard, bool, error) {
	if err := c.enter(); err != nil {
		return nil, false, err
	}
	u, ok := c.w.cache[userKeyOf(season, player)]
	if !ok {
		return nil, false, nil
	}
	out := make(map[string]srs.CachedCard, len(u))
	for q, card := range u {
		out[q] = srs.CachedCard{Card: card, Token: token(card)}
	}
	return out, true, nil
}

func (c simCache) Cards(ctx context.Context, season, player string, questions []string) (map[string]srs.CachedCard, bool, error) {
	if err := c.enter(); err != nil {
		return nil, false, err
	}
	u, ok := c.w.cache[userKeyOf(season, player)]
	if !ok {
		return nil, false, nil
	}
	out := map[string]srs.CachedCard{}
	for _, q := range questions {
		if card, found := u[q]; found {
			out[q] = srs.CachedCard{Card: card, Token: token(card)}
		}
	}
	return out, true, nil
}

func (c simCache) PutIfUnchanged(ctx context.Context, season, player string, puts []srs.CardPut) (int, error) {
	if err := c.enter(); err != nil {
		return 0, err
	}
	u, ok := c.w.cache[userKeyOf(season, player)]
	if !ok {
		return -1, nil
	}
	n := 0
	for _, p := range puts {
		cur, found := u[p.Card.QuestionID]
		if found && token(cur) == p.Expected || !found && p.Expected == "" {
			u[p.Card.QuestionID] = p.Card
			n++
		}
	}
	return n, nil
}

func (c simCache) ClearSeason(context.Context, string) (int64, error) { panic("not simulated") }
func (c simCache) LoadMany(context.Context, string, map[string][]srs.Card) (map[string]bool, error) {
	panic("not simulated")
}
func (c simCache) SampleUsers(context.Context, string, int) ([]string, error) { panic("not simulated") }

// simStore is MariaDB: the review log is the truth and a card row is the
// replay of its log in reviewed_at order (docs/CORE.md §5).
type simStore struct {
	Store // the methods the simulation does not use panic (nil)
	w     *world
	sc    int
}

func (s simStore) enter() error {
	s.w.yield(s.sc)
	if s.w.storeDown {
		return errStoreDown
	}
	return nil
}

func (s simStore) Season(ctx context.Context, name string) (srs.Season, error) {
	if name != simSeason {
		return srs.Season{}, srs.ErrUnknownSeason
	}
	return s.w.season, nil
}

func (s simStore) Seasons(ctx context.Context) ([]srs.Season, error) {
	return []srs.Season{s.w.season}, nil
}

func (s simStore) UserCards(ctx context.Context, season, player string) ([]srs.Card, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	return s.w.rows(player), nil
}

func (s simStore) Card(ctx context.Context, season, player, question string) (srs.Card, bool, error) {
	if err := s.enter(); err != nil {
		return srs.Card{}, false, err
	}
	for _, c := range s.w.rows(player) {
		if c.QuestionID == question {
			return c, true, nil
		}
	}
	return srs.Card{}, false, nil
}

func (s simStore) DueCards(ctx context.Context, season, player, subject string, now int64, limit int) ([]srs.Card, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	var out []srs.Card
	for _, c := range s.w.rows(player) {
		if c.Due <= now && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s simStore) CountDue(ctx context.Context, season, player, subject string, now int64) (int64, error) {
	cards, err := s.DueCards(ctx, season, player, subject, now, 1<<30)
	return int64(len(cards)), err
}

func (s simStore) LoggedReview(ctx context.Context, season, player, question, id string) (srs.Review, bool, error) {
	if err := s.enter(); err != nil {
		return srs.Review{}, false, err
	}
	i, ok := s.w.logIndex[scopedID{player, question, id}]
	if !ok {
		return srs.Review{}, false, nil
	}
	return s.w.log[i], true, nil
}

// rows replays a player's review log: one card per question.
func (w *world) rows(player string) []srs.Card {
	byQ := map[string][]srs.Review{}
	for _, r := range w.log {
		if r.Player == player {
			byQ[r.QuestionID] = append(byQ[r.QuestionID], r)
		}
	}
	var out []srs.Card
	for _, q := range slices.Sorted(maps.Keys(byQ)) {
		out = append(out, w.replay(byQ[q]))
	}
	return out
}

func (w *world) replay(log []srs.Review) srs.Card {
	log = slices.Clone(log)
	sort.SliceStable(log, func(i, j int) bool { return log[i].ReviewedAt < log[j].ReviewedAt })
	first := log[0]
	card := srs.Card{Season: first.Season, Player: first.Player, QuestionID: first.QuestionID}
	for _, r := range log {
		next := core.Next(w.sched, card, core.Request{Season: r.Season, Player: r.Player, Question: r.QuestionID,
			Grade: r.Grade, At: r.ReviewedAt, AtGiven: true, ID: r.ID, IDGiven: true})
		card = next.Card()
	}
	return card
}

// apply is the drainer's transaction: idempotent by scoped id.
func (w *world) apply(batch []srs.Review) {
	for _, r := range batch {
		k := scopedID{r.Player, r.QuestionID, r.ID}
		if _, ok := w.logIndex[k]; ok {
			continue
		}
		w.logIndex[k] = len(w.log)
		w.log = append(w.log, r)
	}
}

type simEntry struct {
	seq       uint64
	r         srs.Review
	held      bool // not drainable (Hold without Release)
	cancelled bool
	settleSeq uint64 // the Release/Cancel record; 0 none
}

// simJournal is one sidecar's queue: written entries become durable at the
// next fsync; a crash keeps only what an fsync covered.
type simJournal struct {
	w       *world
	sc      int
	entries []*simEntry // undrained, append order
	nextSeq uint64
	durable uint64
}

func (j *simJournal) write(r srs.Review, held bool) (uint64, error) {
	j.w.yield(j.sc)
	if j.w.diskFull[j.sc] {
		return 0, &srs.QueueDiskError{Dir: "sim", Err: errors.New("no space left on device")}
	}
	j.nextSeq++
	j.entries = append(j.entries, &simEntry{seq: j.nextSeq, r: r, held: held})
	return j.nextSeq, nil
}

func (j *simJournal) Hold(r srs.Review) (uint64, error)   { return j.write(r, true) }
func (j *simJournal) Append(r srs.Review) (uint64, error) { return j.write(r, false) }

func (j *simJournal) find(t uint64) *simEntry {
	for _, e := range j.entries {
		if e.seq == t {
			return e
		}
	}
	return nil
}

func (j *simJournal) settle(t uint64, cancel bool) error {
	e := j.find(t)
	if e == nil || !e.held {
		return fmt.Errorf("sim: entry %d is not held", t)
	}
	e.held, e.cancelled = false, cancel
	j.nextSeq++
	e.settleSeq = j.nextSeq
	return nil
}

func (j *simJournal) Release(t uint64) error { return j.settle(t, false) }
func (j *simJournal) Cancel(t uint64) error  { return j.settle(t, true) }

func (j *simJournal) Unsettled() map[uint64]srs.Review {
	out := map[uint64]srs.Review{}
	for _, e := range j.entries {
		if e.held {
			out[e.seq] = e.r
		}
	}
	return out
}

func (j *simJournal) fsync() error {
	j.w.yield(j.sc)
	if j.w.faults && j.w.rng.IntN(50) == 0 {
		return errFsync
	}
	j.durable = j.nextSeq
	return nil
}

func (j *simJournal) Wait(ctx context.Context, t uint64) error {
	if t <= j.durable {
		return nil
	}
	return j.fsync()
}

func (j *simJournal) Sync(ctx context.Context) error {
	if j.nextSeq <= j.durable {
		return nil
	}
	return j.fsync()
}

func (j *simJournal) Pending(season, player string) []srs.Review {
	var out []srs.Review
	for _, e := range j.entries {
		if !e.held && !e.cancelled && e.r.Season == season && e.r.Player == player {
			out = append(out, e.r)
		}
	}
	return out
}

func (j *simJournal) PendingReview(season, player, question, id string) (srs.Review, bool) {
	for _, e := range j.entries {
		if !e.held && !e.cancelled && e.r.Season == season && e.r.Player == player && e.r.QuestionID == question && e.r.ID == id {
			return e.r, true
		}
	}
	return srs.Review{}, false
}

func (j *simJournal) users() [][2]string {
	seen := map[string]bool{}
	var out [][2]string
	for _, e := range j.entries {
		if !seen[e.r.Player] {
			seen[e.r.Player] = true
			out = append(out, [2]string{e.r.Season, e.r.Player})
		}
	}
	return out
}

// crash keeps what an fsync covered: later entries are gone, and a settle
// record written after the last fsync is lost (the entry is held again).
func (j *simJournal) crash() {
	var kept []*simEntry
	for _, e := range j.entries {
		if e.seq > j.durable {
			continue
		}
		if e.settleSeq > j.durable {
			e.held, e.cancelled, e.settleSeq = true, false, 0
		}
		if !e.cancelled {
			kept = append(kept, e)
		}
	}
	j.entries = kept
	j.nextSeq = j.durable
}

// batch returns the drainable prefix (up to the first held entry, at most
// 8 reviews) and how many entries it spans.
func (j *simJournal) batch() ([]srs.Review, int) {
	n := 0
	var batch []srs.Review
	for n < len(j.entries) && !j.entries[n].held && len(batch) < 8 {
		if !j.entries[n].cancelled {
			batch = append(batch, j.entries[n].r)
		}
		n++
	}
	return batch, n
}

// forget drops the first n entries once their batch is committed.
func (j *simJournal) forget(n int) { j.entries = j.entries[n:] }

// simApply is the drainer's store: the review log. Like backend/mariadb, it
// reports the rows that are not the batch's newest review (a late or forked
// review made it replay the log).
type simApply struct {
	w  *world
	sc *simSidecar
}

func (s simApply) ApplyReviews(ctx context.Context, batch []srs.Review) ([]int, error) {
	s.w.apply(batch)
	newest := map[string]srs.Review{}
	for _, r := range batch {
		k := r.Player + "|" + r.QuestionID
		if cur, ok := newest[k]; !ok || r.After.NewerThan(cur.After) {
			newest[k] = r
		}
	}
	for _, k := range slices.Sorted(maps.Keys(newest)) {
		r := newest[k]
		for _, row := range s.w.rows(r.Player) {
			if row.QuestionID == r.QuestionID && row.Schedule != r.After {
				s.sc.eng.Recomputed(row)
			}
		}
	}
	return nil, nil
}

// drain applies one batch through the sidecar's engine (store commit, then
// the cache catch-up) and forgets it; a crash in between redoes it.
func (w *world) drain(sc *simSidecar) (n int) {
	batch, span := sc.journal.batch()
	if span == 0 {
		return 0
	}
	gen := sc.gen
	defer func() {
		if r := recover(); r != nil {
			if !isCrash(r) {
				panic(r)
			}
			n = 0 // crashed: the entries stay (or were lost with the crash)
		}
	}()
	if _, err := sc.eng.DrainTo(simApply{w, sc}).ApplyReviews(context.Background(), batch); err != nil {
		return 0
	}
	if sc.gen == gen {
		sc.journal.forget(span)
	}
	return len(batch)
}

// --- the run ------------------------------------------------------------------

func (w *world) event(name string) { w.events[name]++ }

func (w *world) newEngine(sc *simSidecar) *Engine {
	e, err := New(simCache{w, sc.id}, simStore{w: w, sc: sc.id}, sc.journal, Config{
		Sidecar: fmt.Sprintf("sc%d", sc.id),
		Dirty:   sc.dirty,
		// The season never changes here: no background refresh, whose
		// goroutine would read the clock outside the scheduler.
		SeasonTTL: 1 << 62,
		// Catch-ups one user after another on the drainer's actor: other
		// goroutines would call the ports outside the scheduler.
		CatchUpParallel: 1,
		Now:             func() time.Time { return time.UnixMilli(w.now) },
		Logger:          slog.New(slog.NewTextHandler(traceWriter{w, sc.id}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SafeMode: SafeModeConfig{Failures: 3, OpenFor: time.Hour, Unavailable: func(err error) bool {
			return errors.Is(err, errRedisDown) || errors.Is(err, errRedisSlow)
		}},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

func (w *world) crash(sc *simSidecar) {
	w.tracef("crash sc%d", sc.id)
	w.event("crash")
	sc.gen++
	sc.journal.crash()
	sc.near = nil
	sc.state = "recovering"
	sc.eng = nil
	sc.busy = nil
	w.spawnRecovery(sc)
}

func (w *world) spawnRecovery(sc *simSidecar) {
	gen := sc.gen
	w.spawn(fmt.Sprintf("recover-sc%d-%d", sc.id, gen), func(a *actor) {
		defer func() {
			if r := recover(); isCrash(r) {
				return // crashed again while recovering: a new recovery runs
			} else if r != nil {
				panic(r)
			}
		}()
		e := w.newEngine(sc)
		e.Recover(context.Background(), sc.journal.users())
		if sc.gen == gen {
			sc.eng, sc.state = e, "running"
			w.tracef("sc%d recovered", sc.id)
		}
	})
}

// traceWriter puts an engine's log lines into the run's trace.
type traceWriter struct {
	w  *world
	sc int
}

func (t traceWriter) Write(p []byte) (int, error) {
	t.w.tracef("sc%d log: %s", t.sc, strings.TrimSpace(string(p)))
	return len(p), nil
}

// answer is one answer a client gives and retries until it gets a reply.
type answer struct {
	player, question, id string
	grade                srs.Grade
	at                   int64 // 0: the sidecar's now
}

func (w *world) spawnClient(name string, answers []answer) {
	w.spawn(name, func(a *actor) {
		for _, ans := range answers {
			w.send(a, ans)
		}
	})
}

// send delivers one answer, retrying (maybe on another sidecar) until a
// reply that is not retryable, at most 12 times.
func (w *world) send(a *actor, ans answer) {
	first := w.now
	for attempt := range 12 {
		if attempt == 1 && ans.at == 0 {
			// A retry carries the time of the first attempt as AT (the
			// README's advice; docs/CORE.md §2 says why).
			ans.at = first
		}
		sc := w.pickRunning(a)
		sc.busy = a
		res, err := w.review(sc, ans)
		if sc.busy == a {
			sc.busy = nil // not if a crash and a restart let another request in
		}
		switch {
		case errors.Is(err, errCrash):
			continue // no reply: retry
		case err == nil:
			k := scopedID{ans.player, ans.question, ans.id}
			r := res.Review
			if r.Player != ans.player || r.QuestionID != ans.question || r.ID != ans.id {
				w.t.Errorf("reply for %+v carries another review: %+v", ans, r)
			}
			w.acks[k] = append(w.acks[k], r)
			if !res.Duplicate {
				w.fresh[k]++
			}
			w.tracef("%s ack sc%d %v dup=%v reps=%d", a.name, sc.id, k, res.Duplicate, r.After.Reps)
			return
		case errors.Is(err, srs.ErrReviewTooOld):
			w.tracef("%s too old %v: %v", a.name, ans, err)
			return
		default:
			w.tracef("%s error sc%d %v: %v", a.name, sc.id, ans.id, err)
		}
	}
}

// review runs one request in a sidecar; a crash during it is errCrash.
func (w *world) review(sc *simSidecar, ans answer) (res ReviewResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			if !isCrash(r) {
				panic(r)
			}
			err = errCrash
		}
	}()
	e := sc.eng
	res, err = e.Review(context.Background(), ReviewRequest{Player: ans.player, Season: simSeason,
		Question: ans.question, Grade: ans.grade, At: ans.at, ID: ans.id})
	if err == nil && res.Wait != nil {
		err = res.Wait(context.Background())
	}
	return res, err
}

// pickRunning returns a running sidecar, letting others run while none is.
func (w *world) pickRunning(a *actor) *simSidecar {
	for {
		var up []*simSidecar
		for _, sc := range w.sidecars {
			if sc.state == "running" && sc.busy == nil {
				up = append(up, sc)
			}
		}
		if len(up) > 0 {
			return up[w.rng.IntN(len(up))]
		}
		w.idle(a)
	}
}

// idle parks an actor outside any sidecar until it is scheduled again.
func (w *world) idle(a *actor) {
	w.parked <- struct{}{}
	if <-a.resume {
		panic(errCrash) // the run is over
	}
}

// isCrash reports the simulation's crash panic, also when singleflight
// re-panicked it wrapped.
func isCrash(r any) bool {
	return r == errCrash || strings.Contains(fmt.Sprint(r), errCrash.Error()) //nolint:errorlint // sentinel panic value
}

func (w *world) spawnDrainer(sc *simSidecar) {
	w.spawn(fmt.Sprintf("drain-sc%d", sc.id), func(a *actor) {
		for {
			if sc.state == "running" && !w.storeDown {
				if n := w.drain(sc); n > 0 {
					w.tracef("sc%d drained %d", sc.id, n)
				}
			}
			w.idle(a)
		}
	})
}

// runSim runs one seed and returns a description of the first broken
// invariant ("" if none).
func runSim(t testing.TB, seed uint64) (string, *world) {
	sched, err := fsrs.New(srs.DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &world{t: t, rng: rng, now: 1_790_000_000_000, sched: sched, parked: make(chan struct{}),
		season:   srs.Season{Name: simSeason, IsActive: true, EnableCache: true, PartitionCreated: true, Scheduler: srs.DefaultSchedulerConfig()},
		diskFull: map[int]bool{}, cache: map[string]map[string]srs.Card{}, logIndex: map[scopedID]int{},
		acks: map[scopedID][]srs.Review{}, fresh: map[scopedID]int{}, events: map[string]int{}, faults: true}
	n := 2 + rng.IntN(3)
	for i := range n {
		sc := &simSidecar{id: i, state: "running", dirty: &simDirty{users: map[[2]string]bool{}}}
		sc.journal = &simJournal{w: w, sc: i}
		sc.eng = w.newEngine(sc)
		w.sidecars = append(w.sidecars, sc)
		w.spawnDrainer(sc)
	}
	// Two students, each on two devices (clients) answering the same few
	// cards: reviews of one card race across sidecars.
	clients := 0
	for p := range 2 {
		player := fmt.Sprintf("p%d", p)
		for d := range 2 {
			var answers []answer
			for k := range 4 + rng.IntN(5) {
				ans := answer{player: player, question: fmt.Sprintf("q%d", rng.IntN(3)),
					id: fmt.Sprintf("%s-d%d-%d", player, d, k), grade: srs.Grade(1 + rng.IntN(4))}
				switch rng.IntN(4) {
				case 0: // offline sync: answered hours ago
					ans.at = w.now - int64(1+rng.IntN(5))*3_600_000 + int64(k)*60_000
				case 1: // an AT a moment ago
					ans.at = w.now + int64(k)*1000
				}
				answers = append(answers, ans)
			}
			w.spawnClient(fmt.Sprintf("c%s-%d", player, d), answers)
			clients++
		}
	}
	clientsDone := func() bool {
		done := 0
		for _, a := range w.actors {
			if a.done && a.name[0] == 'c' {
				done++
			}
		}
		return done == clients
	}
	run := func(limit int, until func() bool) {
		for i := 0; i < limit && !until(); i++ {
			w.steps++
			w.now += int64(1 + rng.IntN(40))
			if w.faults {
				w.inject()
			}
			var live []*actor
			for _, a := range w.actors {
				if !a.done {
					live = append(live, a)
				}
			}
			if len(live) == 0 {
				return
			}
			a := live[rng.IntN(len(live))]
			crash := false
			if w.faults && a.in >= 0 && rng.IntN(60) == 0 {
				w.crash(w.sidecars[a.in]) // crash the sidecar this actor is inside, at this step
				crash = true
			}
			w.step(a, crash)
		}
	}
	run(20000, clientsDone)
	if !clientsDone() {
		return "clients did not finish in 20,000 steps (livelock?)", w
	}
	// Heal: no more faults; every sidecar recovers, touches every student
	// (invalidating what it marked dirty) and drains.
	w.faults, w.redisDown, w.storeDown = false, false, false
	clear(w.diskFull)
	recovered := func() bool {
		for _, sc := range w.sidecars {
			if sc.state != "running" {
				return false
			}
		}
		return true
	}
	run(20000, recovered)
	// A graceful restart of every sidecar: its breaker (open for an hour
	// here) closes and it invalidates what it marked dirty, as leaving Safe
	// Mode does.
	for _, sc := range w.sidecars {
		sc.gen++
		sc.state = "recovering"
		w.spawnRecovery(sc)
	}
	run(20000, recovered)
	for _, sc := range w.sidecars {
		w.spawn(fmt.Sprintf("touch-sc%d", sc.id), func(a *actor) {
			for _, p := range []string{"p0", "p1"} {
				var err error
				for range 5 { // other sidecars invalidate the same users meanwhile
					if _, err = sc.eng.Due(context.Background(), DueRequest{Player: p, Season: simSeason, Limit: 50}); !errors.Is(err, ErrContention) {
						break
					}
				}
				if err != nil {
					w.t.Errorf("touch %s on sc%d after healing: %v", p, sc.id, err)
				}
			}
		})
	}
	touched := func() bool {
		for _, a := range w.actors {
			if len(a.name) > 5 && a.name[:5] == "touch" && !a.done {
				return false
			}
		}
		return true
	}
	run(20000, touched)
	drained := func() bool {
		for _, sc := range w.sidecars {
			if b, _ := sc.journal.batch(); len(b) > 0 {
				return false
			}
		}
		return true
	}
	run(20000, drained)
	for _, sc := range w.sidecars {
		if len(sc.journal.entries) > 0 {
			return fmt.Sprintf("sc%d still holds %d entries after healing (held: %v)", sc.id, len(sc.journal.entries), sc.journal.Unsettled()), w
		}
	}
	return w.check(), w
}

// stop ends every actor still parked (drainers, clients left waiting).
func (w *world) stop() {
	for _, a := range w.actors {
		for !a.done {
			w.step(a, true)
		}
	}
}

// inject toggles faults between steps.
func (w *world) inject() {
	switch r := w.rng.IntN(1000); {
	case r < 8:
		w.redisDown = !w.redisDown
		w.tracef("redis down=%v", w.redisDown)
	case r < 16:
		w.storeDown = !w.storeDown
		w.tracef("mariadb down=%v", w.storeDown)
	case r < 20:
		sc := w.rng.IntN(len(w.sidecars))
		w.diskFull[sc] = !w.diskFull[sc]
		w.tracef("sc%d disk full=%v", sc, w.diskFull[sc])
	case r < 24:
		clear(w.cache)
		w.tracef("cache lost")
		w.event("cache-lost")
	case r < 30:
		p := fmt.Sprintf("p%d", w.rng.IntN(2))
		delete(w.cache, userKeyOf(simSeason, p))
		w.tracef("evict %s", p)
	case r < 32:
		w.now += 3_600_000
	}
}

// check returns the first broken invariant, or "".
func (w *world) check() string {
	for _, k := range slices.SortedFunc(maps.Keys(w.acks), cmpScoped) {
		// Invariant 1: an acknowledged review is in the log.
		if _, ok := w.logIndex[k]; !ok {
			return fmt.Sprintf("invariant 1: acknowledged review %v is not in the review log", k)
		}
		// Invariant 2: applied at most once.
		if w.fresh[k] > 1 {
			return fmt.Sprintf("invariant 2: review %v acknowledged as new %d times", k, w.fresh[k])
		}
	}
	for _, p := range []string{"p0", "p1"} {
		cached, loaded := w.cache[userKeyOf(simSeason, p)]
		if !loaded {
			continue
		}
		rows := map[string]srs.Card{}
		for _, r := range w.rows(p) {
			rows[r.QuestionID] = r
		}
		for _, q := range slices.Sorted(maps.Keys(cached)) {
			c := cached[q]
			logged := 0
			for _, r := range w.log {
				if r.Player == p && r.QuestionID == q {
					logged++
				}
			}
			// Invariant 2 in the cache: no review counted twice.
			if c.Reps > logged {
				return fmt.Sprintf("invariant 2: cached card %s/%s has reps %d, the log %d reviews", p, q, c.Reps, logged)
			}
			// Invariant 4: the cache is never behind MariaDB.
			if row, ok := rows[q]; ok && row.NewerThan(c.Schedule) {
				return fmt.Sprintf("invariant 4: cached card %s/%s (last %d, reps %d) is older than its row (last %d, reps %d); log %s",
					p, q, c.LastReview, c.Reps, row.LastReview, row.Reps, w.logOf(p, q))
			}
		}
	}
	return ""
}

// logOf describes a card's review log (id@reviewed_at), for failure messages.
func (w *world) logOf(player, question string) string {
	var parts []string
	for _, r := range w.log {
		if r.Player == player && r.QuestionID == question {
			parts = append(parts, fmt.Sprintf("%s@%d", r.ID, r.ReviewedAt))
		}
	}
	return strings.Join(parts, " ")
}

func cmpScoped(a, b scopedID) int {
	return cmp.Or(cmp.Compare(a.player, b.player), cmp.Compare(a.question, b.question), cmp.Compare(a.id, b.id))
}

func TestSimulation(t *testing.T) {
	seeds := make([]uint64, 0, *simSeeds)
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := range *simSeeds {
			seeds = append(seeds, uint64(i+1))
		}
	}
	events := map[string]int{}
	acked, logged := 0, 0
	start := time.Now()
	for _, seed := range seeds {
		watchdog := time.AfterFunc(20*time.Second, func() {
			panic(fmt.Sprintf("simulation seed %d did not finish in 20 s (a deadlock between actors?)", seed))
		})
		msg, w := runSim(t, seed)
		watchdog.Stop()
		w.stop()
		for k, v := range w.events {
			events[k] += v
		}
		for _, a := range w.acks {
			acked += len(a)
		}
		logged += len(w.log)
		if msg != "" {
			if testing.Verbose() || *simSeed != 0 {
				for _, line := range w.trace {
					t.Log(line)
				}
			}
			t.Fatalf("seed %d: %s\nreplay: go test ./engine -run 'TestSimulation$' -sim.seed=%d -v", seed, msg, seed)
		}
		if t.Failed() {
			t.Fatalf("seed %d failed; replay: go test ./engine -run 'TestSimulation$' -sim.seed=%d -v", seed, seed)
		}
	}
	t.Logf("%d seeds in %v: %d replies, %d logged reviews, faults %v", len(seeds), time.Since(start).Round(time.Millisecond), acked, logged, events)
}

func (c simCache) PutSeasonSnapshot(ctx context.Context, s srs.Season) error { return nil }
func (c simCache) SeasonSnapshot(ctx context.Context, season string) (srs.Season, bool, error) {
	return srs.Season{}, false, nil
}
