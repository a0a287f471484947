package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/srsproxy/srsproxy/srs"
)

// Targets of a measurement.
const (
	targetSidecar   = "srsproxy"
	targetSafeMode  = "srsproxy-safe"
	targetRedis     = "redis"
	targetTwemproxy = "twemproxy"
	targetMariaDB   = "mariadb"
	targetRedisAOF  = "redis-aof" // redis-server with appendfsync always: HSET of a card record
)

// sessionSize is the reviews of the session scenario, sent in one pipeline.
const sessionSize = 50

// mixedAnswers is how many due items a student answers between two SRS.DUE.
const mixedAnswers = 3

// cachedPlayers returns the names of the cached users, the ones the load draws from.
func (d *dataset) cachedPlayers() []string {
	d.namesOnce.Do(func() {
		d.names = make([]string, d.Cached)
		for u := range d.names {
			d.names[u] = d.player(u)
		}
	})
	return d.names
}

func seedOf(i int) stream { return stream{s: uint64(time.Now().UnixNano()) ^ mix(uint64(i)+1)} }

func grade(r *stream) string {
	switch f := r.float(); {
	case f < 0.10:
		return "1"
	case f < 0.25:
		return "2"
	case f < 0.85:
		return "3"
	}
	return "4"
}

// --- the sidecar -------------------------------------------------------------

type sidecarDriver struct {
	addr     string
	ds       *dataset
	scenario string // due, review, session, mixed
}

func (d *sidecarDriver) kinds() []string {
	if d.scenario == "mixed" {
		return []string{"due", "review"}
	}
	return []string{d.scenario}
}

func (d *sidecarDriver) newWorker(_ context.Context, i int) (worker, error) {
	c, err := dialRESP(d.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &sidecarWorker{d: d, c: c, rng: seedOf(i), names: d.ds.cachedPlayers()}, nil
}

type sidecarWorker struct {
	d       *sidecarDriver
	c       *respConn
	rng     stream
	names   []string
	step    int      // mixed: 0 fetch due, 1..mixedAnswers answer
	user    int      // mixed: the current student
	pending []string // mixed: due questions to answer
}

func (w *sidecarWorker) Close() error { return w.c.Close() }

func (w *sidecarWorker) reconnect() error {
	w.c.Close()
	c, err := dialRESP(w.d.addr, 5*time.Second)
	if err != nil {
		return err
	}
	w.c = c
	return nil
}

func (w *sidecarWorker) review(u int, question string) {
	w.c.send("SRS.REVIEW", w.names[u], w.d.ds.Season, question, grade(&w.rng), "ID", uuidOf(w.rng.next(), w.rng.next()))
}

func (w *sidecarWorker) do(_ context.Context) (int, error) {
	ds := w.d.ds
	switch w.d.scenario {
	case "due":
		w.c.send("SRS.DUE", w.names[w.rng.intn(len(w.names))], ds.Season, "LIMIT", "20")
		if err := w.c.flush(); err != nil {
			return 0, err
		}
		return 0, w.c.skip()
	case "review":
		u := w.rng.intn(len(w.names))
		w.review(u, ds.question(u, w.rng.intn(ds.CardsPerUser)))
		if err := w.c.flush(); err != nil {
			return 0, err
		}
		return 0, w.c.skip()
	case "session":
		u := w.rng.intn(len(w.names))
		first := w.rng.intn(ds.CardsPerUser)
		n := min(sessionSize, ds.CardsPerUser)
		for k := range n {
			w.review(u, ds.question(u, (first+k)%ds.CardsPerUser))
		}
		if err := w.c.flush(); err != nil {
			return 0, err
		}
		var firstErr error
		for range n {
			if err := w.c.skip(); err != nil {
				if !isReplyError(err) {
					return 0, err
				}
				firstErr = cmpErr(firstErr, err)
			}
		}
		return 0, firstErr
	case "mixed":
		return w.mixed()
	}
	return 0, fmt.Errorf("unknown scenario %q", w.d.scenario)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// mixed is the memora pattern: a student fetches the due list, answers a
// few of its questions, and fetches the list again (the next cycle).
func (w *sidecarWorker) mixed() (int, error) {
	ds := w.d.ds
	if w.step == 0 {
		w.user = w.rng.intn(len(w.names))
		v, err := w.c.do("SRS.DUE", w.names[w.user], ds.Season, "LIMIT", "20")
		if err != nil {
			return 0, err
		}
		w.pending = w.pending[:0]
		items, _ := flatMap(v)["items"].([]any)
		for _, it := range items {
			if q, ok := flatMap(it)["question_id"].(string); ok && len(w.pending) < mixedAnswers {
				w.pending = append(w.pending, q)
			}
		}
		for len(w.pending) < mixedAnswers {
			w.pending = append(w.pending, ds.question(w.user, w.rng.intn(ds.CardsPerUser)))
		}
		w.step = 1
		return 0, nil
	}
	q := w.pending[w.step-1]
	w.step = (w.step + 1) % (mixedAnswers + 1)
	w.review(w.user, q)
	if err := w.c.flush(); err != nil {
		return 1, err
	}
	return 1, w.c.skip()
}

// --- raw Redis and twemproxy -------------------------------------------------

// redisDriver reads the due index the way an app without the sidecar would:
// ZRANGEBYSCORE key -inf now LIMIT 0 20 on the user's sorted set, member =
// question UUID, score = due ms. seedAnchor writes these sets from the same
// cards the sidecar holds (the sidecar itself keeps no due set).
type redisDriver struct {
	addr string
	keys []string
}

// anchorKey is a cached user's sorted set for the raw Redis baseline.
func anchorKey(prefix string, ds *dataset, player string) string {
	return prefix + ":raw:{" + ds.Season + "|" + player + "}"
}

func newRedisDriver(addr, prefix string, ds *dataset) *redisDriver {
	names := ds.cachedPlayers()
	keys := make([]string, len(names))
	for u, p := range names {
		keys[u] = anchorKey(prefix, ds, p)
	}
	return &redisDriver{addr: addr, keys: keys}
}

// seedAnchor writes every cached user's due set for the raw baseline, in
// pipelines of 64 ZADDs of a whole user each.
func seedAnchor(addr, prefix string, ds *dataset) error {
	c, err := dialRESP(addr, 30*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	names := ds.cachedPlayers()
	for lo := 0; lo < len(names); lo += 64 {
		hi := min(lo+64, len(names))
		for u := lo; u < hi; u++ {
			args := make([]string, 0, 2+2*ds.CardsPerUser)
			args = append(args, "ZADD", anchorKey(prefix, ds, names[u]))
			for _, card := range ds.userCards(u) {
				args = append(args, strconv.FormatInt(card.Due, 10), card.QuestionID)
			}
			c.send(args...)
		}
		if err := c.flush(); err != nil {
			return err
		}
		for u := lo; u < hi; u++ {
			if err := c.skip(); err != nil {
				return err
			}
		}
	}
	return nil
}

// aofDriver is the durable-write baseline: HSET of a card-sized value into a
// user's hash on a redis-server that fsyncs every write before answering
// (appendfsync always), what an app writing reviews to Redis durably pays.
type aofDriver struct {
	addr  string
	keys  []string
	ds    *dataset
	value string
}

func newAOFDriver(addr, prefix string, ds *dataset) *aofDriver {
	d := newRedisDriver(addr, prefix, ds)
	return &aofDriver{addr: addr, keys: d.keys, ds: ds, value: strings.Repeat("r", 41)} // a format-3 record's size
}

func (d *aofDriver) kinds() []string { return []string{"review"} }

func (d *aofDriver) newWorker(_ context.Context, i int) (worker, error) {
	c, err := dialConnWorker(d.addr, i)
	if err != nil {
		return nil, err
	}
	return &aofWorker{connWorker: c, d: d}, nil
}

type aofWorker struct {
	*connWorker
	d *aofDriver
}

func (w *aofWorker) do(_ context.Context) (int, error) {
	u := w.rng.intn(len(w.d.keys))
	w.c.send("HSET", w.d.keys[u], w.d.ds.question(u, w.rng.intn(w.d.ds.CardsPerUser)), w.d.value)
	if err := w.c.flush(); err != nil {
		return 0, err
	}
	return 0, w.c.skip()
}

func (d *redisDriver) kinds() []string { return []string{"due"} }

func (d *redisDriver) newWorker(_ context.Context, i int) (worker, error) {
	c, err := dialConnWorker(d.addr, i)
	if err != nil {
		return nil, err
	}
	return &redisWorker{connWorker: c, d: d}, nil
}

type redisWorker struct {
	*connWorker
	d *redisDriver
}

// connWorker is a baseline worker's one connection to a Redis-speaking
// server, with its random stream; it reconnects after an error.
type connWorker struct {
	addr string
	c    *respConn
	rng  stream
}

func dialConnWorker(addr string, i int) (*connWorker, error) {
	c, err := dialRESP(addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &connWorker{addr: addr, c: c, rng: seedOf(i)}, nil
}

func (w *connWorker) Close() error { return w.c.Close() }

func (w *connWorker) reconnect() error {
	w.c.Close()
	c, err := dialRESP(w.addr, 5*time.Second)
	if err != nil {
		return err
	}
	w.c = c
	return nil
}

func (w *redisWorker) do(_ context.Context) (int, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	w.c.send("ZRANGEBYSCORE", w.d.keys[w.rng.intn(len(w.d.keys))], "-inf", now, "LIMIT", "0", "20")
	if err := w.c.flush(); err != nil {
		return 0, err
	}
	return 0, w.c.skip()
}

// --- MariaDB -------------------------------------------------------------------

// mariaDueQuery is the store's Safe Mode read, the query a DB-only service runs.
const mariaDueQuery = `SELECT season, player, question_id, subject, topic, stage,
	state, step, stability, difficulty, due, last_review, reps, lapses
	FROM cards FORCE INDEX (due_idx)
	WHERE season = ? AND player = ? AND due <= ? ORDER BY due LIMIT 20`

// mariaDriver runs the due query through a connection pool: a DB-only
// service holds a pool, not one connection per student, so its workers share
// at most maxMariaConns connections (the shared server allows 151).
type mariaDriver struct {
	db    *sql.DB
	ds    *dataset
	names []string
}

const maxMariaConns = 50

func (d *mariaDriver) kinds() []string { return []string{"due"} }

func (d *mariaDriver) newWorker(_ context.Context, i int) (worker, error) {
	return &mariaWorker{d: d, rng: seedOf(i)}, nil
}

type mariaWorker struct {
	d   *mariaDriver
	rng stream
}

func (w *mariaWorker) Close() error { return nil }

func (w *mariaWorker) do(ctx context.Context) (int, error) {
	p := w.d.names[w.rng.intn(len(w.d.names))]
	rows, err := w.d.db.QueryContext(ctx, mariaDueQuery, w.d.ds.Season, p, time.Now().UnixMilli())
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var c srs.Card
	for rows.Next() {
		if err := rows.Scan(&c.Season, &c.Player, &c.QuestionID, &c.Subject, &c.Topic, &c.Stage,
			&c.State, &c.Step, &c.Stability, &c.Difficulty, &c.Due, &c.LastReview, &c.Reps, &c.Lapses); err != nil {
			return 0, err
		}
	}
	return 0, rows.Err()
}
