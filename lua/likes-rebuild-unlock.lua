-- Releases a rebuild lock after a failed rebuild, for its holder only, so
-- the next caller need not wait out the lease.
-- KEYS: [1] the rebuild lock
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the holder's token
-- Reply: 1 when released, 0 when the lock was no longer this holder's.

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('GET', KEYS[1]) == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
