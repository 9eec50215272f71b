-- Stores a freshly loaded value, registers its key for group eviction and
-- releases the fill lock, in one atomic step: waiters see the value and the
-- free lock together.
-- KEYS[1]: the value key; KEYS[2]: the group's registry set; KEYS[3]: the fill
-- lock (all in one hash slot)
-- ARGV[1]: the value; ARGV[2]: its lifetime in ms; ARGV[3]: the filler's lock token
-- Reply: 1
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
-- The registry outlives its longest-lived member, so it cannot grow forever
-- if evictions stop, and never forgets a key that still exists.
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
-- Only our own lock: it may have expired and been taken by another filler.
if redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('DEL', KEYS[3])
end
return 1
