package redis

import (
	"context"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/srs"
)

// CachedCard is a card as the cache holds it, with its raw value for a
// compare-and-set.
type CachedCard struct {
	Card srs.Card
	Raw  string
}

// UserCards returns every cached card of a user-season; loaded is false when
// the user-season is not cached.
func (c *Cache) UserCards(ctx context.Context, season, player string) (map[string]CachedCard, bool, error) {
	v, err := userScript.Run(ctx, c.rdb, c.keys(season, player)[:2]).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redis user cards: %w", err)
	}
	parts, ok := v.([]any)
	if !ok || len(parts) == 0 {
		return nil, false, fmt.Errorf("redis user cards: unexpected reply %T", v)
	}
	if n, _ := parts[0].(int64); n == 0 {
		return nil, false, nil
	}
	pairs, _ := parts[1].([]any)
	out := make(map[string]CachedCard, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := pairs[i].(string)
		raw, _ := pairs[i+1].(string)
		q := questionOf(id)
		card, err := decodeCard(season, player, q, []byte(raw))
		if err != nil {
			return nil, false, err
		}
		out[q] = CachedCard{Card: card, Raw: raw}
	}
	return out, true, nil
}

// Put is one card to write if the cache still holds Expected ("" = absent).
type Put struct {
	Expected string
	Card     srs.Card
}

// PutIfUnchanged writes cards of one loaded user-season whose cached value is
// still the expected one, and returns how many it wrote (-1: not loaded).
func (c *Cache) PutIfUnchanged(ctx context.Context, season, player string, puts []Put) (int, error) {
	args := make([]any, 0, 1+4*len(puts))
	args = append(args, ms(c.opts.TTL))
	for _, p := range puts {
		val, err := encodeCard(p.Card)
		if err != nil {
			return 0, err
		}
		args = append(args, member(p.Card.QuestionID), p.Expected, val, p.Card.Due)
	}
	n, err := putScript.Run(ctx, c.rdb, c.keys(season, player)[:2], args...).Int()
	if err != nil {
		return 0, fmt.Errorf("redis put: %w", err)
	}
	return n, nil
}

// LoadMany loads several whole user-seasons in one pipeline of script calls
// (cache rebuilds). It returns, per user, whether this call wrote the entry
// (false: the user was already loaded and was left alone).
func (c *Cache) LoadMany(ctx context.Context, season string, users map[string][]srs.Card) (map[string]bool, error) {
	cmds := make(map[string]*goredis.Cmd, len(users))
	argv := make(map[string][]any, len(users))
	var adds []*goredis.IntCmd
	for player, cards := range users {
		args := make([]any, 0, 1+3*len(cards))
		args = append(args, ms(c.opts.TTL))
		for _, card := range cards {
			val, err := encodeCard(card)
			if err != nil {
				return nil, err
			}
			args = append(args, member(card.QuestionID), val, card.Due)
		}
		argv[player] = args
	}
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for player, args := range argv {
			// EVALSHA: LoadScripts put the script on every server; a
			// pipeline cannot fall back to EVAL per command.
			cmds[player] = loadScript.EvalSha(ctx, p, c.keys(season, player)[:2], args...)
			adds = append(adds, p.SAdd(ctx, c.registryKey(season), player))
		}
		return nil
	})
	if err != nil && !isNoScript(err) {
		return nil, fmt.Errorf("redis load many: %w", err)
	}
	for _, cmd := range adds {
		if err := cmd.Err(); err != nil {
			return nil, fmt.Errorf("redis season registry: %w", err)
		}
	}
	out := make(map[string]bool, len(cmds))
	for player, cmd := range cmds {
		n, err := cmd.Int()
		if isNoScript(err) {
			// A server without the script (a replica promoted, or a node
			// restarted, since LoadScripts): this call loads it there.
			n, err = loadScript.Run(ctx, c.rdb, c.keys(season, player)[:2], argv[player]...).Int()
		}
		if err != nil {
			return nil, fmt.Errorf("redis load many: %w", err)
		}
		out[player] = n == 1
	}
	return out, nil
}

// isNoScript reports a NOSCRIPT reply: EVALSHA of a script the server has
// not cached.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// SampleUsers returns up to n distinct users registered for a season (SRANDMEMBER: O(n), not a scan).
func (c *Cache) SampleUsers(ctx context.Context, season string, n int) ([]string, error) {
	users, err := c.rdb.SRandMemberN(ctx, c.registryKey(season), int64(n)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis sample users: %w", err)
	}
	return users, nil
}

// ClearSeason deletes the cache keys of every user registered for a season,
// then the registry, walking the registry with SSCAN (never the keyspace; on
// a cluster each user's keys are deleted on their own shard). It returns the
// number of keys deleted.
func (c *Cache) ClearSeason(ctx context.Context, season string) (int64, error) {
	reg := c.registryKey(season)
	var deleted int64
	var cursor uint64
	for {
		players, next, err := c.rdb.SScan(ctx, reg, cursor, "", 500).Result()
		if err != nil {
			return deleted, fmt.Errorf("redis clear season: %w", err)
		}
		if len(players) > 0 {
			cmds := make([]*goredis.IntCmd, 0, len(players))
			_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, player := range players {
					for _, k := range c.keys(season, player) {
						cmds = append(cmds, p.Del(ctx, k)) // one key per DEL: a cluster routes each
					}
				}
				return nil
			})
			if err != nil {
				return deleted, fmt.Errorf("redis clear season: %w", err)
			}
			for _, cmd := range cmds {
				deleted += cmd.Val()
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	n, err := c.rdb.Del(ctx, reg).Result()
	if err != nil {
		return deleted, fmt.Errorf("redis clear season registry: %w", err)
	}
	return deleted + n, nil
}
