// Package redis is the cache adapter: hot schedules of active users in an
// upstream Redis (or Redis Cluster), one hash tag per user-season so every
// script runs on one slot.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
}

func (o *Options) fill() {
	o.Prefix = cmpOr(o.Prefix, "srs")
	o.TTL = cmpOr(o.TTL, 24*time.Hour)
	o.PoolSize = cmpOr(o.PoolSize, 256)
	o.DialTimeout = cmpOr(o.DialTimeout, time.Second)
	o.ReadTimeout = cmpOr(o.ReadTimeout, 500*time.Millisecond)
	o.WriteTimeout = cmpOr(o.WriteTimeout, 500*time.Millisecond)
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
	return &Cache{rdb: rdb, opts: opts}, nil
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
func (c *Cache) Close() error { return c.rdb.Close() }

// Ping checks that Redis answers.
func (c *Cache) Ping(ctx context.Context) error { return c.rdb.Ping(ctx).Err() }

// keys are the user-season's card hash and due set, generation 2 (format-2
// records; docs/CORE.md §1). The suffix keeps them apart from release 1's keys.
func (c *Cache) keys(season, player string) []string {
	return UserKeys(c.opts.Prefix, season, player)
}

// UserKeys names a user-season's two keys under prefix, the card records
// (a hash) and the due set, for tools and tests that inspect the cache.
func UserKeys(prefix, season, player string) []string {
	base := prefix + ":{" + season + "|" + player + "}:"
	return []string{base + "c2", base + "d2"}
}

// legacyKeys are release 1's keys of a user-season (format-1 records and its
// review-id hash). Release 2 never reads them; ClearSeason and Invalidate
// delete them so an archived season leaves nothing behind.
func (c *Cache) legacyKeys(season, player string) []string {
	base := c.userBase(season, player)
	return []string{base + "c", base + "d", base + "r"}
}

func (c *Cache) userBase(season, player string) string {
	return c.opts.Prefix + ":{" + season + "|" + player + "}:"
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// Due returns the due cards of a loaded user-season and slides its TTL.
func (c *Cache) Due(ctx context.Context, season, player, subject string, now int64, limit int) (srs.DuePage, error) {
	v, err := dueScript.Run(ctx, c.rdb, c.keys(season, player), now, limit, subject, ms(c.opts.TTL)).Result()
	if err != nil {
		return srs.DuePage{}, fmt.Errorf("redis due: %w", err)
	}
	if n, ok := v.(int64); ok && n == -1 {
		return srs.DuePage{}, nil
	}
	parts, ok := v.([]any)
	if !ok || len(parts) != 2 {
		return srs.DuePage{}, fmt.Errorf("redis due: unexpected reply %T", v)
	}
	total, _ := parts[0].(int64)
	pairs, _ := parts[1].([]any)
	res := srs.DuePage{Loaded: true, Total: total, Cards: make([]srs.Card, 0, len(pairs)/2)}
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := pairs[i].(string)
		val, ok := pairs[i+1].(string)
		if !ok {
			continue // a due member without state: skipped, repaired by the next load
		}
		card, err := decodeCard(season, player, questionOf(id), []byte(val))
		if err != nil {
			return srs.DuePage{}, err
		}
		res.Cards = append(res.Cards, card)
	}
	return res, nil
}

// Read returns one card record of a loaded user-season.
func (c *Cache) Read(ctx context.Context, season, player, question string) (srs.CardRead, error) {
	v, err := readScript.Run(ctx, c.rdb, c.keys(season, player), member(question)).Result()
	if err != nil {
		return srs.CardRead{}, fmt.Errorf("redis read: %w", err)
	}
	parts, ok := v.([]any)
	if !ok || len(parts) == 0 {
		return srs.CardRead{}, fmt.Errorf("redis read: unexpected reply %T", v)
	}
	if loaded, _ := parts[0].(int64); loaded == 0 {
		return srs.CardRead{}, nil
	}
	res := srs.CardRead{Loaded: true}
	if len(parts) > 1 {
		if raw, ok := parts[1].(string); ok {
			card, err := decodeCard(season, player, question, []byte(raw))
			if err != nil {
				return srs.CardRead{}, err
			}
			res.Found, res.Card, res.Token = true, card, raw
		}
	}
	return res, nil
}

// Load writes a whole user-season read from the store, unless another load
// got there first. It reports whether this call wrote the entry. The player
// is added to the season registry first, so the registry is always a
// superset of the loaded users (ClearSeason misses none); a script cannot do
// both, because in a cluster the registry lives in another slot.
func (c *Cache) Load(ctx context.Context, season, player string, cards []srs.Card) (bool, error) {
	args, err := loadArgs(c.opts.TTL, cards)
	if err != nil {
		return false, err
	}
	if err := c.rdb.SAdd(ctx, c.registryKey(season), player).Err(); err != nil {
		return false, fmt.Errorf("redis season registry: %w", err)
	}
	n, err := loadScript.Run(ctx, c.rdb, c.keys(season, player), args...).Int()
	if err != nil {
		return false, fmt.Errorf("redis load: %w", err)
	}
	return n == 1, nil
}

// loadArgs are the load script's arguments for a user-season's cards.
func loadArgs(ttl time.Duration, cards []srs.Card) ([]any, error) {
	args := make([]any, 0, 1+3*len(cards))
	args = append(args, ms(ttl))
	for _, card := range cards {
		val, err := encodeCard(card)
		if err != nil {
			return nil, err
		}
		args = append(args, member(card.QuestionID), val, card.Due)
	}
	return args, nil
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
	val, err := encodeCard(card)
	if err != nil {
		return 0, err
	}
	n, err := swapScript.Run(ctx, c.rdb, c.keys(card.Season, card.Player), member(card.QuestionID), expected, val,
		card.Due, ms(c.opts.TTL)).Int()
	if err != nil {
		return 0, fmt.Errorf("redis swap: %w", err)
	}
	return srs.SwapOutcome(n), nil
}

// Invalidate deletes a user-season (both key generations) so the next read
// reloads it from the store.
func (c *Cache) Invalidate(ctx context.Context, season, player string) error {
	keys := append(c.keys(season, player), c.legacyKeys(season, player)...)
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
