// Package redis is the cache adapter: hot schedules of active users in an
// upstream Redis (or Redis Cluster), one hash tag per user-season so every
// script runs on one slot.
package redis

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/srs"
)

// Options configure the cache.
type Options struct {
	Addrs        []string      // one address: a single server; several: a cluster
	Cluster      bool          // a Redis Cluster even with one (seed) address
	Username     string        // ACL user (Redis 6+); "" is the default user
	Password     string        //
	TLS          *tls.Config   // nil: plain TCP
	Prefix       string        // key prefix, default "srs"; must not contain '{' or '}'
	TTL          time.Duration // sliding expiry of an idle user-season, default 24h
	PoolSize     int           // default 256: waits for a pooled connection under a burst would read as an outage
	DialTimeout  time.Duration // default 1s
	ReadTimeout  time.Duration // default 500ms
	WriteTimeout time.Duration // default 500ms
	// NearCacheBytes bounds the sidecar's in-memory copies of recently used
	// user-seasons (near.go), default 1 GiB; at ~110 bytes per card that is
	// ~19,000 users of 500 cards.
	NearCacheBytes int64
	Now            func() time.Time // default time.Now
}

func (o *Options) fill() {
	o.Prefix = cmpOr(o.Prefix, "srs")
	o.TTL = cmpOr(o.TTL, 24*time.Hour)
	o.PoolSize = cmpOr(o.PoolSize, 256)
	o.DialTimeout = cmpOr(o.DialTimeout, time.Second)
	o.ReadTimeout = cmpOr(o.ReadTimeout, 500*time.Millisecond)
	o.WriteTimeout = cmpOr(o.WriteTimeout, 500*time.Millisecond)
	o.NearCacheBytes = cmpOr(o.NearCacheBytes, 1<<30)
	if o.Now == nil {
		o.Now = time.Now
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Cache is the upstream Redis holding loaded user-seasons.
type Cache struct {
	rdb  goredis.UniversalClient
	opts Options
	near *nearCache
	// pipe batches the version GETs and review swaps of concurrent
	// requests (batch.go).
	pipe *autoPipeline
	// slideEvery is how often a snapshot's reads renew the keys' TTL
	// (a sixteenth of it): the other reads are a plain GET.
	slideEvery           int64
	nearHits, nearMisses atomic.Int64
}

// New connects to the upstream Redis. It does not fail when Redis is down;
// the first command reports that.
func New(opts Options) (*Cache, error) {
	opts.fill()
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redis: prefix %q must not contain '{' or '}'", opts.Prefix)
	}
	rdb := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:                 opts.Addrs,
		Username:              opts.Username,
		Password:              opts.Password,
		TLSConfig:             opts.TLS,
		PoolSize:              opts.PoolSize,
		DialTimeout:           opts.DialTimeout,
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.WriteTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		// One dial attempt per call: go-redis's default of 5 dial retries
		// 100 ms apart would make every call against a dead server take
		// ~0.8 s whatever the timeouts, and slow the breaker down.
		DialerRetries:   1,
		Protocol:        2,
		DisableIdentity: true,
		IsClusterMode:   opts.Cluster,
	})
	if cc, ok := rdb.(*goredis.ClusterClient); ok {
		cc.AddHook(reloadOnFailure{cc})
	}
	return &Cache{rdb: rdb, opts: opts, near: newNearCache(opts.NearCacheBytes),
		pipe: newAutoPipeline(rdb, opts.ReadTimeout), slideEvery: ms(opts.TTL) / 16}, nil
}

// reloadOnFailure makes a cluster client re-read the slot map (CLUSTER
// SLOTS) after a call failed for availability reasons. go-redis reloads it
// on MOVED, READONLY and every 60 s; but when a master dies, calls for its
// slots go to the dead address and never see a MOVED, so without this the
// client would keep failing for up to a minute after a replica took over.
// Reloads are coalesced by go-redis (one at a time, 200 ms apart).
type reloadOnFailure struct{ cc *goredis.ClusterClient }

func (h reloadOnFailure) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if IsUnavailable(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		if IsUnavailable(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

// Client is the underlying go-redis client (status, tests).
func (c *Cache) Client() goredis.UniversalClient { return c.rdb }

// Close closes the connection pool.
func (c *Cache) Close() error {
	c.pipe.close()
	return c.rdb.Close()
}

// Ping checks that Redis answers.
func (c *Cache) Ping(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }

// keys are the user-season's card hash, version and labels, generation 3 (format-3
// records; docs/CORE.md §1). The suffix keeps them apart from release 1's
// and release 2's keys.
func (c *Cache) keys(season, player string) []string {
	return UserKeys(c.opts.Prefix, season, player)
}

// UserKeys names a user-season's three keys under prefix, the card hash,
// its version and its labels, for tools and tests that inspect the cache.
func UserKeys(prefix, season, player string) []string {
	base := prefix + ":{" + season + "|" + player + "}:"
	return []string{base + "c3", base + "v3", base + "l3"}
}

// legacyKeys are the keys earlier releases kept for a user-season (release
// 1: format-1 records, due set, review-id hash; release 2: format-2 records,
// due set). This release never reads them; ClearSeason and Invalidate delete
// them so an archived season leaves nothing behind.
func (c *Cache) legacyKeys(season, player string) []string {
	base := c.opts.Prefix + ":{" + season + "|" + player + "}:"
	return []string{base + "c", base + "d", base + "r", base + "c2", base + "d2"}
}

// nearKey names a user-season in the near-cache (season names hold no NUL).
func nearKey(season, player string) string { return season + "\x00" + player }

func ms(d time.Duration) int64 { return d.Milliseconds() }

func (c *Cache) nowMS() int64 { return c.opts.Now().UnixMilli() }

// snapshot returns the user's snapshot as of Redis's current version: the
// near-cache's after one GET of the version when it is still current, else
// the whole user fetched. nil: the user-season is not cached.
func (c *Cache) snapshot(ctx context.Context, season, player string) (*userEntry, error) {
	key := nearKey(season, player)
	if e := c.near.get(key); e != nil {
		e.mu.Lock()
		ver, slid := e.version, e.slidAt
		e.mu.Unlock()
		if ver != 0 {
			now := c.nowMS()
			slide := now-slid >= c.slideEvery
			cur, ok, err := c.version(ctx, season, player, slide)
			if err != nil {
				return nil, err
			}
			if !ok {
				c.near.drop(key)
				return nil, nil
			}
			if cur == ver {
				if slide {
					e.mu.Lock()
					e.slidAt = now
					e.mu.Unlock()
				}
				c.nearHits.Add(1)
				return e, nil
			}
		}
	}
	return c.fetch(ctx, season, player)
}

// version reads a user's version (ok false: not loaded); slide also renews
// the keys' TTL, which a plain GET does not.
func (c *Cache) version(ctx context.Context, season, player string, slide bool) (int64, bool, error) {
	keys := c.keys(season, player)
	var v any
	var err error
	if slide {
		v, err = touchScript.Run(ctx, c.rdb, keys, ms(c.opts.TTL)).Result()
	} else {
		v, err = c.pipe.get(ctx, keys[1])
	}
	if errors.Is(err, goredis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("redis version: %w", err)
	}
	s, _ := v.(string)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("redis version %q: %w", s, err)
	}
	return n, true, nil
}

// fetch reads a whole user-season into the near-cache (nil: not cached).
func (c *Cache) fetch(ctx context.Context, season, player string) (*userEntry, error) {
	key := nearKey(season, player)
	c.nearMisses.Add(1)
	v, err := fetchScript.Run(ctx, c.rdb, c.keys(season, player), ms(c.opts.TTL)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis fetch: %w", err)
	}
	if n, ok := v.(int64); ok && n == -1 {
		c.near.drop(key)
		return nil, nil
	}
	parts, ok := v.([]any)
	if !ok || len(parts) != 3 {
		return nil, fmt.Errorf("redis fetch: unexpected reply %T", v)
	}
	version, _ := parts[0].(int64)
	pairs, _ := parts[1].([]any)
	labels, _ := parts[2].(string)
	fields := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		f, _ := pairs[i].(string)
		fields[f], _ = pairs[i+1].(string)
	}
	e, err := newEntry(key, season, player, version, c.nowMS(), fields, labels)
	if err != nil {
		return nil, fmt.Errorf("redis fetch %s/%s: %w", season, player, err)
	}
	c.near.put(e)
	return e, nil
}

// Due returns the due cards of a loaded user-season, most overdue first.
func (c *Cache) Due(ctx context.Context, season, player, subject string, now int64, limit int) (srs.DuePage, error) {
	e, err := c.snapshot(ctx, season, player)
	if err != nil || e == nil {
		return srs.DuePage{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.due(subject, now, limit)
}

// Read returns one card record of a loaded user-season, as of now.
func (c *Cache) Read(ctx context.Context, season, player, question string) (srs.CardRead, error) {
	e, err := c.snapshot(ctx, season, player)
	if err != nil || e == nil {
		return srs.CardRead{}, err
	}
	return readEntry(e, question)
}

// Peek returns one card record from the near-cache without asking Redis; it
// may be stale (ok false: no snapshot). A review may build on it, because
// its compare-and-set fails if the card moved on.
func (c *Cache) Peek(season, player, question string) (srs.CardRead, bool) {
	e := c.near.get(nearKey(season, player))
	if e == nil {
		return srs.CardRead{}, false
	}
	e.mu.Lock()
	trusted := e.version != 0
	e.mu.Unlock()
	if !trusted {
		return srs.CardRead{}, false
	}
	rd, err := readEntry(e, question)
	return rd, err == nil
}

func readEntry(e *userEntry, question string) (srs.CardRead, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cc, found, err := e.card(question)
	if err != nil {
		return srs.CardRead{}, err
	}
	return srs.CardRead{Loaded: true, Found: found, CachedCard: cc}, nil
}

// Load writes a whole user-season read from the store, unless another load
// got there first. It reports whether this call wrote the entry. The player
// is added to the season registry first, so the registry is always a
// superset of the loaded users (ClearSeason misses none); a script cannot do
// both, because in a cluster the registry lives in another slot.
func (c *Cache) Load(ctx context.Context, season, player string, cards []srs.Card) (bool, error) {
	l, err := c.newLoad(season, player, cards)
	if err != nil {
		return false, err
	}
	if err := c.rdb.SAdd(ctx, c.registryKey(season), player).Err(); err != nil {
		return false, fmt.Errorf("redis season registry: %w", err)
	}
	n, err := loadScript.Run(ctx, c.rdb, c.keys(season, player), l.args...).Int()
	if err != nil {
		return false, fmt.Errorf("redis load: %w", err)
	}
	if n == 1 {
		c.near.put(l.entry)
	}
	return n == 1, nil
}

// userLoad is a user-season encoded for the load script, and the snapshot
// it leaves behind.
type userLoad struct {
	args  []any
	entry *userEntry
}

// newLoad encodes cards under a new epoch and version.
func (c *Cache) newLoad(season, player string, cards []srs.Card) (userLoad, error) {
	now := c.nowMS()
	var epoch [epochLen]byte
	binary.LittleEndian.PutUint64(epoch[:], rand.Uint64())
	// Versions start at random so a reloaded user never repeats a version a
	// near-cache still holds (2^-52 per reload); below 2^52, because Lua
	// passes integers through doubles, exact only up to 2^53.
	version := rand.Int64N(1<<52) + 1
	hdr := newHeader(string(epoch[:]), now)
	pending := map[string]int{}
	var labels []string
	for _, card := range cards {
		hdr.positions(labelsOf(card), pending, &labels)
	}
	if err := hdr.add(labels); err != nil {
		return userLoad{}, err
	}
	fields := make(map[string]string, len(cards)+1)
	fields[""] = hdr.field()
	args := make([]any, 0, 4+2*len(cards))
	args = append(args, ms(c.opts.TTL), version, fields[""], hdr.dict)
	for _, card := range cards {
		rec, err := encodeRecord(hdr, hdr.positions(labelsOf(card), pending, &labels), card)
		if err != nil {
			return userLoad{}, err
		}
		m := member(card.QuestionID)
		fields[m] = string(rec)
		args = append(args, m, fields[m])
	}
	e, err := newEntry(nearKey(season, player), season, player, version, now, fields, hdr.dict)
	if err != nil {
		return userLoad{}, err
	}
	return userLoad{args: args, entry: e}, nil
}

// registryKey is the set of players cached for a season (its own slot).
func (c *Cache) registryKey(season string) string {
	return c.opts.Prefix + ":season:{" + season + "}:users"
}

// CachedUsers counts the users registered in each season's registry.
func (c *Cache) CachedUsers(ctx context.Context, seasons []string) (map[string]int64, error) {
	out := make(map[string]int64, len(seasons))
	for _, s := range seasons {
		n, err := c.rdb.SCard(ctx, c.registryKey(s)).Result()
		if err != nil {
			return nil, fmt.Errorf("redis registry of %s: %w", s, err)
		}
		if n > 0 {
			out[s] = n
		}
	}
	return out, nil
}

// NearStats are the near-cache's figures: users and bytes held, and reads
// answered from it (hits) or by fetching the user (misses) since the start.
type NearStats struct {
	Users        int
	Bytes        int64
	Hits, Misses int64
}

// NearStats reports the near-cache.
func (c *Cache) NearStats() NearStats {
	users, bytes := c.near.stats()
	return NearStats{Users: users, Bytes: bytes, Hits: c.nearHits.Load(), Misses: c.nearMisses.Load()}
}

// MemoryUsed is the upstream's used_memory in bytes, summed over shards.
func (c *Cache) MemoryUsed(ctx context.Context) (int64, error) {
	var total atomic.Int64
	read := func(ctx context.Context, client *goredis.Client) error {
		info, err := client.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return fmt.Errorf("used_memory %q: %w", v, err)
				}
				total.Add(n)
			}
		}
		return nil
	}
	var err error
	if cc, ok := c.rdb.(*goredis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, read)
	} else {
		err = read(ctx, c.rdb.(*goredis.Client))
	}
	return total.Load(), err
}

// Swap stores card if the cached record is still expected (a Token; "" for
// absent). It is the compare-and-set of a review; sending the same Swap
// twice is harmless: once one copy lands, the other conflicts.
func (c *Cache) Swap(ctx context.Context, expected string, card srs.Card) (srs.SwapOutcome, error) {
	n, err := c.put(ctx, card.Season, card.Player, []srs.CardPut{{Expected: expected, Card: card}})
	switch {
	case err != nil:
		return 0, fmt.Errorf("redis swap: %w", err)
	case n < 0:
		return srs.SwapNotLoaded, nil
	case n == 1:
		return srs.SwapStored, nil
	}
	return srs.SwapConflict, nil
}

// PutIfUnchanged writes cards of one loaded user-season whose cached value is
// still the expected one, and returns how many it wrote (-1: not loaded).
func (c *Cache) PutIfUnchanged(ctx context.Context, season, player string, puts []srs.CardPut) (int, error) {
	n, err := c.put(ctx, season, player, puts)
	if err != nil {
		return 0, fmt.Errorf("redis put: %w", err)
	}
	return n, nil
}

// put runs the swap script for puts, encoded against the user's snapshot
// (fetched first if the near-cache has none). A header another sidecar
// extended meanwhile is fetched again and the puts re-encoded; a put whose
// token is of another epoch cannot match and is not sent.
func (c *Cache) put(ctx context.Context, season, player string, puts []srs.CardPut) (int, error) {
	key := nearKey(season, player)
	for range 3 {
		e := c.near.get(key)
		if e == nil {
			var err error
			if e, err = c.fetch(ctx, season, player); err != nil || e == nil {
				return -1, err
			}
		}
		b, err := e.batch(puts, ms(c.opts.TTL))
		if err != nil {
			return 0, err
		}
		if b.sent == 0 {
			return 0, nil
		}
		v, err := c.pipe.runScript(ctx, swapScript, c.keys(season, player), b.args...)
		if err != nil {
			e.distrust() // it may have landed: the snapshot can no longer tell
			return 0, err
		}
		if n, ok := v.(int64); ok {
			c.near.drop(key)
			if n < 0 {
				return -1, nil
			}
			continue // another epoch, or a header extended elsewhere: fetch and retry
		}
		parts, ok := v.([]any)
		if !ok || len(parts) != 2 {
			return 0, fmt.Errorf("unexpected reply %T", v)
		}
		n, _ := parts[0].(int64)
		version, _ := parts[1].(int64)
		// The snapshot now in the near-cache (a read may have replaced e).
		if cur := c.near.get(key); cur != nil {
			cur.settle(b, int(n), version)
		}
		return int(n), nil
	}
	return 0, nil
}

// Invalidate deletes a user-season (every key generation) so the next read
// reloads it from the store.
func (c *Cache) Invalidate(ctx context.Context, season, player string) error {
	keys := append(c.keys(season, player), c.legacyKeys(season, player)...)
	c.near.drop(nearKey(season, player))
	if err := c.rdb.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("redis invalidate: %w", err)
	}
	return nil
}

// LoadScripts loads every script into the script cache of every server
// (on a cluster: every master and replica), so EVALSHA succeeds at once.
// Single calls fall back to EVAL on NOSCRIPT by themselves; the pipelined
// ones (LoadMany) retry such commands one by one, which covers a replica
// promoted or a node restarted after the start.
func (c *Cache) LoadScripts(ctx context.Context) error {
	load := func(ctx context.Context, client *goredis.Client) error {
		for _, s := range allScripts {
			if err := s.Load(ctx, client).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := c.rdb.(*goredis.ClusterClient); ok {
		return cc.ForEachShard(ctx, load)
	}
	return load(ctx, c.rdb.(*goredis.Client))
}
