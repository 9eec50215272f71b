-- The miss path of cache-aside: a hit is read with a plain HGET, never
-- this script. It elects the one caller that fills a missing value, and
-- registers the fill lock with the group so an eviction drops it too (a fill
-- that started before an eviction must not store what it read before it).
-- KEYS[1]: the value key (a hash); KEYS[2]: its fill lock; KEYS[3]: the
-- group's registry set (all in one hash slot)
-- ARGV[1]: the request's cutoff (epoch ms, put there by runScript);
-- ARGV[2]: this caller's lock token; ARGV[3]: lock lifetime in ms
-- Reply: 2 when the value exists now (read it again); 1 when this caller now
-- holds the lock and must fill; 0 when another caller is filling it.
-- Error EXPIRED when the request gave up before this ran.
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 2
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 0
end
redis.call('SADD', KEYS[3], KEYS[2])
-- The registry outlives its members (see cache-fill.lua); a lock is one.
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return 1
