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
-- The deadline check, own_pin and renew_pin: likes-rebuild.prelude.lua.

local pinned = own_pin(KEYS[2], KEYS[3], ARGV[2])
if not pinned then
  return 0
end
-- unpack() is bounded by the Lua stack; add in batches.
for first = 4, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
local lease = tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[2], lease)
renew_pin(KEYS[3], ARGV[2], lease, pinned)
-- The work set dies with an abandoned rebuild.
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
