-- Releases a rebuild lock and its pin after a failed rebuild, for its holder
-- only, so the next caller need not wait out the lease, and the sync may
-- trim again.
-- KEYS (one hash tag): [1] the rebuild lock  [2] the bucket's pins HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the holder's token
-- Reply: 1 when the lock was released, 0 when it was no longer this holder's.
-- The deadline check: likes-rebuild.prelude.lua.

redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
