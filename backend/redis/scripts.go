package redis

import goredis "github.com/redis/go-redis/v9"

// Every script touches the keys of one user-season only, KEYS[1] the card
// hash, KEYS[2] the version and KEYS[3] the labels, which share a hash tag
// and so one Redis Cluster slot. A user-season is loaded only when all three
// exist and the hash has its header field "". They carry the same sliding
// TTL; checking all means a half-expired set is treated as not loaded, never
// as a user with no cards. Every write increments the version, so a
// sidecar's near-cache snapshot of version v is exact while GET says v.

const loadedCheck = `
local function header(c, v, l)
  if redis.call('EXISTS', v, l) < 2 then return false end
  return redis.call('HGET', c, '')
end
local function expire(c, v, l, ttl)
  redis.call('PEXPIRE', c, ttl)
  redis.call('PEXPIRE', v, ttl)
  redis.call('PEXPIRE', l, ttl)
end
`

// fetchScript: ARGV ttl ms. Returns -1 when not loaded, else {version,
// {field, value, ...} of the whole hash (header included), labels}, and
// slides the TTL.
var fetchScript = goredis.NewScript(loadedCheck + `
local c, v, l = KEYS[1], KEYS[2], KEYS[3]
if not header(c, v, l) then return -1 end
expire(c, v, l, ARGV[1])
return {tonumber(redis.call('GET', v)), redis.call('HGETALL', c), redis.call('GET', l)}
`)

// touchScript: ARGV ttl ms. Returns the version (false when not loaded) and
// slides the TTL: what a plain GET of the version does, every so often.
var touchScript = goredis.NewScript(loadedCheck + `
local c, v, l = KEYS[1], KEYS[2], KEYS[3]
if not header(c, v, l) then return false end
expire(c, v, l, ARGV[1])
return redis.call('GET', v)
`)

// loadScript: ARGV ttl ms, version, header, labels, then (field, record)
// pairs. Writes a whole user-season unless it is already loaded: then it
// returns 0 and touches nothing, so a load never overwrites a cache entry
// that a review made newer (invariant 4).
var loadScript = goredis.NewScript(loadedCheck + `
local c, v, l = KEYS[1], KEYS[2], KEYS[3]
if header(c, v, l) then return 0 end
redis.call('DEL', c, v, l)
local h = {'', ARGV[3]}
for i = 5, #ARGV, 2 do
  h[#h + 1] = ARGV[i]
  h[#h + 1] = ARGV[i + 1]
  if #h >= 1000 then
    redis.call('HSET', c, unpack(h))
    h = {}
  end
end
if #h > 0 then redis.call('HSET', c, unpack(h)) end
redis.call('SET', v, ARGV[2])
redis.call('SET', l, ARGV[4])
expire(c, v, l, ARGV[1])
return 1
`)

// swapScript: ARGV ttl ms, epoch, labels length, labels to append (""
// for none), then (field, expected record or "", new record) triples. The
// compare-and-set of reviews and catch-ups: each card whose record is still
// the expected one is written; a card changed meanwhile is left alone.
// Returns -1 when not loaded, 0 when the epoch (or, for an append, the
// labels) changed, else {written, version}.
var swapScript = goredis.NewScript(loadedCheck + `
local c, v, l = KEYS[1], KEYS[2], KEYS[3]
local h = header(c, v, l)
if not h then return -1 end
if string.sub(h, 2, 9) ~= ARGV[2] then return 0 end
if ARGV[4] ~= '' then
  if redis.call('STRLEN', l) ~= tonumber(ARGV[3]) then return 0 end
  redis.call('APPEND', l, ARGV[4])
end
local n = 0
for i = 5, #ARGV, 3 do
  local cur = redis.call('HGET', c, ARGV[i])
  if (cur or '') == ARGV[i + 1] then
    redis.call('HSET', c, ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
expire(c, v, l, ARGV[1])
if n == 0 and ARGV[4] == '' then return {0, tonumber(redis.call('GET', v))} end
return {n, redis.call('INCR', v)}
`)

// allScripts are loaded into every server's script cache at start.
var allScripts = []*goredis.Script{fetchScript, touchScript, loadScript, swapScript}
