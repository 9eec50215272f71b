-- Stores a freshly loaded value (a hash, all its fields at once), registers
-- its key for group eviction and releases the fill lock, in one atomic step:
-- waiters see the whole value and the free lock together.
-- KEYS[1]: the value key; KEYS[2]: the group's registry set; KEYS[3]: the
-- fill lock (all in one hash slot)
-- ARGV[1]: the request's cutoff (epoch ms, put there by runScript);
-- ARGV[2]: the value's lifetime in ms; ARGV[3]: the filler's lock token;
-- ARGV[4..]: the hash's fields and values, alternating, at least one pair
-- Reply: 1 when stored; 0 when the lock is no longer ours (it expired, or an
-- eviction dropped it: the value was read before the eviction, so storing it
-- would bring back what was evicted). Error EXPIRED when the request gave up
-- before this ran: nobody waits for this value any more.
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return 0
end
redis.call('DEL', KEYS[1])
-- unpack() is bounded by the Lua stack; store in batches of 250 pairs.
for first = 4, #ARGV, 500 do
  redis.call('HSET', KEYS[1], unpack(ARGV, first, math.min(first + 499, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SREM', KEYS[2], KEYS[3])
-- The registry outlives its longest-lived member, so it cannot grow forever
-- if evictions stop, and never forgets a key that still exists.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('DEL', KEYS[3])
return 1
