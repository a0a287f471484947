package redis

import goredis "github.com/redis/go-redis/v9"

// Every script touches the keys of one user-season only, which share a hash
// tag and so one Redis Cluster slot. A user-season is "loaded" only when both
// markers exist: the field "" in the card hash and the member "" (score +inf)
// in the due set. Both keys carry the same sliding TTL; checking both means a
// half-expired pair is treated as not loaded, never as a user with no cards.

// The due set's marker has score +inf, so it is the set's last member:
// ZRANGE -1 -1 reads it from the tail in O(1), where ZSCORE would walk a
// listpack-encoded set.
const loadedCheck = `
local function loaded(c, d)
  if redis.call('HEXISTS', c, '') == 0 then return false end
  local last = redis.call('ZRANGE', d, -1, -1)
  return last[1] == ''
end
`

// dueScript: KEYS card hash, due set; ARGV now, limit, subject, ttl ms.
// Returns -1 when not loaded, else {total, {id, value, id, value, ...}} of
// the due cards, most overdue first. A subject filter walks the due range in
// order and counts exactly (it is not a filter over an overall top N).
var dueScript = goredis.NewScript(loadedCheck + `
local c, d = KEYS[1], KEYS[2]
if not loaded(c, d) then return -1 end
local now, limit, subj, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
redis.call('PEXPIRE', c, ttl)
redis.call('PEXPIRE', d, ttl)
if subj == '' then
  local ids = redis.call('ZRANGEBYSCORE', d, '-inf', now, 'LIMIT', 0, limit)
  local total = #ids
  if total == limit then total = redis.call('ZCOUNT', d, '-inf', now) end -- a full page: count the rest
  if #ids == 0 then return {total, {}} end
  local vals = redis.call('HMGET', c, unpack(ids))
  local out = {}
  for i = 1, #ids do
    out[#out + 1] = ids[i]
    out[#out + 1] = vals[i]
  end
  return {total, out}
end
local n, total, out, off, page = #subj, 0, {}, 0, 256
while true do
  local ids = redis.call('ZRANGEBYSCORE', d, '-inf', now, 'LIMIT', off, page)
  if #ids == 0 then break end
  local vals = redis.call('HMGET', c, unpack(ids))
  for i = 1, #ids do
    local v = vals[i]
    if v and string.byte(v, 2) == n and string.sub(v, 3, 2 + n) == subj then
      total = total + 1
      if #out < 2 * limit then
        out[#out + 1] = ids[i]
        out[#out + 1] = v
      end
    end
  end
  if #ids < page then break end
  off = off + page
end
return {total, out}
`)

// readScript: KEYS card hash, due set; ARGV question.
// Returns {0} when not loaded, else {1, card record or nil}.
var readScript = goredis.NewScript(loadedCheck + `
local c, d = KEYS[1], KEYS[2]
if not loaded(c, d) then return {0} end
return {1, redis.call('HGET', c, ARGV[1])}
`)

// loadScript: KEYS card hash, due set; ARGV ttl ms, then (id, value, due) triples.
// Writes a whole user-season and its markers, unless it is already loaded:
// then it returns 0 and touches nothing, so a load never overwrites a cache
// entry that a review made newer (invariant 4).
var loadScript = goredis.NewScript(loadedCheck + `
local c, d = KEYS[1], KEYS[2]
if loaded(c, d) then return 0 end
redis.call('DEL', c, d)
local h, z = {'', '1'}, {'+inf', ''}
for i = 2, #ARGV, 3 do
  h[#h + 1] = ARGV[i]
  h[#h + 1] = ARGV[i + 1]
  z[#z + 1] = ARGV[i + 2]
  z[#z + 1] = ARGV[i]
  if #h >= 1000 then
    redis.call('HSET', c, unpack(h))
    redis.call('ZADD', d, unpack(z))
    h, z = {}, {}
  end
end
if #h > 0 then
  redis.call('HSET', c, unpack(h))
  redis.call('ZADD', d, unpack(z))
end
redis.call('PEXPIRE', c, ARGV[1])
redis.call('PEXPIRE', d, ARGV[1])
return 1
`)

// swapScript: KEYS card hash, due set; ARGV question, expected current
// record ("" for absent), new record, new due, ttl ms. The compare-and-set of
// a review: returns -1 when not loaded, 0 when the card is no longer the
// expected one, 1 when stored.
var swapScript = goredis.NewScript(loadedCheck + `
local c, d = KEYS[1], KEYS[2]
if not loaded(c, d) then return -1 end
local cur = redis.call('HGET', c, ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
redis.call('HSET', c, ARGV[1], ARGV[3])
redis.call('ZADD', d, ARGV[4], ARGV[1])
redis.call('PEXPIRE', c, ARGV[5])
redis.call('PEXPIRE', d, ARGV[5])
return 1
`)

// userScript: KEYS card hash, due set. Returns {0} when not loaded, else
// {1, {id, value, ...}} of every cached card (the markers left out).
var userScript = goredis.NewScript(loadedCheck + `
local c, d = KEYS[1], KEYS[2]
if not loaded(c, d) then return {0} end
local all = redis.call('HGETALL', c)
local out = {}
for i = 1, #all, 2 do
  if all[i] ~= '' then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return {1, out}
`)

// putScript: KEYS card hash, due set; ARGV ttl ms, then (id, expected value
// or "", new value, due) quadruples. Writes each card whose cached value is
// still the expected one; a card a review changed meanwhile is left alone.
// Returns the number written, or -1 when not loaded.
var putScript = goredis.NewScript(loadedCheck + `
local c, d = KEYS[1], KEYS[2]
if not loaded(c, d) then return -1 end
local n = 0
for i = 2, #ARGV, 4 do
  local cur = redis.call('HGET', c, ARGV[i])
  if (cur or '') == ARGV[i + 1] then
    redis.call('HSET', c, ARGV[i], ARGV[i + 2])
    redis.call('ZADD', d, ARGV[i + 3], ARGV[i])
    n = n + 1
  end
end
redis.call('PEXPIRE', c, ARGV[1])
redis.call('PEXPIRE', d, ARGV[1])
return n
`)

// cardsScript: KEYS card hash, due set; ARGV questions. Returns {0} when not
// loaded, else {1, {record or nil, ...}} in the order asked.
var cardsScript = goredis.NewScript(loadedCheck + `
local c, d = KEYS[1], KEYS[2]
if not loaded(c, d) then return {0} end
return {1, redis.call('HMGET', c, unpack(ARGV))}
`)

// allScripts are loaded into every server's script cache at start.
var allScripts = []*goredis.Script{dueScript, readScript, loadScript, swapScript, userScript, putScript, cardsScript}
