package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/srsproxy/srsproxy/srs"
)

// UserCards returns every cached card of a user-season; loaded is false when
// the user-season is not cached.
func (c *Cache) UserCards(ctx context.Context, season, player string) (map[string]srs.CachedCard, bool, error) {
	e, err := c.snapshot(ctx, season, player)
	if err != nil || e == nil {
		return nil, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out, err := e.all()
	return out, err == nil, err
}

// Cards returns some cached cards of a user-season (absent ones are left
// out); loaded is false when the user-season is not cached.
func (c *Cache) Cards(ctx context.Context, season, player string, questions []string) (map[string]srs.CachedCard, bool, error) {
	if len(questions) == 0 {
		return nil, false, nil
	}
	e, err := c.snapshot(ctx, season, player)
	if err != nil || e == nil {
		return nil, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]srs.CachedCard, len(questions))
	for _, q := range questions {
		cc, found, err := e.card(q)
		if err != nil {
			return nil, false, err
		}
		if found {
			out[q] = cc
		}
	}
	return out, true, nil
}

// LoadMany loads several whole user-seasons in one pipeline of script calls
// (cache rebuilds). It returns, per user, whether this call wrote the entry
// (false: the user was already loaded and was left alone). The near-cache
// is not filled: a rebuild touches many users nobody may read soon.
func (c *Cache) LoadMany(ctx context.Context, season string, users map[string][]srs.Card) (map[string]bool, error) {
	cmds := make(map[string]*goredis.Cmd, len(users))
	argv := make(map[string][]any, len(users))
	players := make([]any, 0, len(users))
	for player, cards := range users {
		l, err := c.newLoad(season, player, cards)
		if err != nil {
			return nil, err
		}
		argv[player] = l.args
		players = append(players, player)
	}
	if len(players) == 0 {
		return map[string]bool{}, nil
	}
	// Registered before any key exists, as in Load.
	if err := c.rdb.SAdd(ctx, c.registryKey(season), players...).Err(); err != nil {
		return nil, fmt.Errorf("redis season registry: %w", err)
	}
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for player, args := range argv {
			// EVALSHA: LoadScripts put the script on every server; a
			// pipeline cannot fall back to EVAL per command.
			cmds[player] = loadScript.EvalSha(ctx, p, c.keys(season, player), args...)
		}
		return nil
	})
	if err != nil && !isNoScript(err) {
		return nil, fmt.Errorf("redis load many: %w", err)
	}
	out := make(map[string]bool, len(cmds))
	for player, cmd := range cmds {
		n, err := cmd.Int()
		if isNoScript(err) {
			// A server without the script (a replica promoted, or a node
			// restarted, since LoadScripts): this call loads it there.
			n, err = loadScript.Run(ctx, c.rdb, c.keys(season, player), argv[player]...).Int()
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
// then the registry and the settings snapshot, walking the registry with SSCAN (never the keyspace; on
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
					for _, k := range append(c.keys(season, player), c.legacyKeys(season, player)...) {
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
	c.near.dropSeason(season)
	n, err := c.rdb.Del(ctx, reg, c.snapshotKey(season)).Result() // one slot: the season's tag
	if err != nil {
		return deleted, fmt.Errorf("redis clear season registry: %w", err)
	}
	return deleted + n, nil
}

// seasonSnapshotVersion is the format of a season-settings snapshot this
// release writes. Version 2 added the day rule (srs.SchedulerConfig Timezone
// and DayStart); version 1, the previous release's, is still read: it was
// written for a season scheduled by 24-hour periods (srs.DayStartLegacy).
const seasonSnapshotVersion = 2

type seasonSnapshot struct {
	Version int        `json:"v"`
	Season  srs.Season `json:"season"`
}

// snapshotKey holds a season's settings as last read from MariaDB (the
// registry's slot).
func (c *Cache) snapshotKey(season string) string {
	return c.opts.Prefix + ":season:{" + season + "}:settings"
}

// PutSeasonSnapshot stores a season's settings, so a sidecar that starts (or
// meets the season first) while MariaDB is down can still serve it.
func (c *Cache) PutSeasonSnapshot(ctx context.Context, s srs.Season) error {
	b, err := json.Marshal(seasonSnapshot{Version: seasonSnapshotVersion, Season: s})
	if err != nil {
		return err
	}
	if err := c.rdb.Set(ctx, c.snapshotKey(s.Name), b, 0).Err(); err != nil {
		return fmt.Errorf("redis season snapshot: %w", err)
	}
	return nil
}

// SeasonSnapshot returns the settings PutSeasonSnapshot stored; ok is false
// when there are none (or of a format this release does not read).
func (c *Cache) SeasonSnapshot(ctx context.Context, season string) (srs.Season, bool, error) {
	b, err := c.rdb.Get(ctx, c.snapshotKey(season)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return srs.Season{}, false, nil
	}
	if err != nil {
		return srs.Season{}, false, fmt.Errorf("redis season snapshot: %w", err)
	}
	var snap seasonSnapshot
	if err := json.Unmarshal(b, &snap); err != nil || snap.Season.Name != season {
		return srs.Season{}, false, nil // unreadable: as if absent (MariaDB is the truth)
	}
	switch snap.Version {
	case 1: // no day rule: the release before day boundaries counted 24-hour periods
		snap.Season.Scheduler.Timezone, snap.Season.Scheduler.DayStart = "UTC", srs.DayStartLegacy
	case seasonSnapshotVersion:
	default:
		return srs.Season{}, false, nil
	}
	return snap.Season, true, nil
}
