-- Adds one chunk of a post's likes, read from PostgreSQL, to a rebuild's work
-- set. Chunks keep each call short: a post with 100,000 likes is loaded in
-- many small steps, and Redis serves other commands between them.
-- KEYS (one hash tag): [1] the rebuild's work SET  [2] the rebuild lock
--   [3] the bucket's pins HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the rebuilder's token
--       [3] the lock's lease in ms  [4...] user ids
-- Reply: 1 when added (and the lease and the pin renewed); 0 when the lock
-- or the pin is no longer this rebuilder's (it stops; whoever holds the lock
-- now rebuilds).

local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if nowMs > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
local expiry, pinned = string.match(redis.call('HGET', KEYS[3], ARGV[2]) or '', '^(%d+) (%S+)$')
if not expiry or tonumber(expiry) < nowMs then
  return 0
end
-- unpack() is bounded by the Lua stack; add in batches.
for first = 4, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
local lease = tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[2], lease)
redis.call('HSET', KEYS[3], ARGV[2], string.format('%d %s', nowMs + lease, pinned))
redis.call('PEXPIRE', KEYS[3], lease * 2)
-- The work set dies with an abandoned rebuild.
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
