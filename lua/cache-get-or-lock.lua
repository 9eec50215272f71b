-- The read of cache-aside, which also elects the one caller that fills a miss,
-- so a hit and a miss each cost one round trip.
-- KEYS[1]: the value key; KEYS[2]: its fill lock (same hash slot)
-- ARGV[1]: this caller's lock token; ARGV[2]: lock lifetime in ms
-- Reply: the cached value (a string) on a hit; 1 when this caller now holds
-- the lock and must fill the value; 0 when another caller is filling it.
local value = redis.call('GET', KEYS[1])
if value then
  return value
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
