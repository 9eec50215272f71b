-- Adds one chunk of a post's likes, read from PostgreSQL, to a rebuild's work
-- set. Chunks keep each call short: a post with 100,000 likes is loaded in
-- many small steps, and Redis serves other commands between them.
-- KEYS: [1] the rebuild's work SET  [2] the rebuild lock (same slot)
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the rebuilder's token
--       [3] the lock's lease in ms  [4...] user ids
-- Reply: 1 when added (and the lease renewed); 0 when the lock is no longer
-- this rebuilder's (it stops; whoever holds it now rebuilds).

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
-- unpack() is bounded by the Lua stack; add in batches.
for first = 4, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
-- The work set dies with an abandoned rebuild.
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
