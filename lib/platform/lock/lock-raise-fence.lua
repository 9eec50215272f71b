-- Raises a lock's fencing counter to at least a given value, so that the next
-- token issued is greater than it: the guarded store (users.lock_fence) can be
-- ahead of Redis after a lost counter and a clock step back, and would
-- otherwise refuse every holder as stale. Never lowers it; running it twice,
-- or late, changes nothing more.
-- KEYS[1]: the fencing counter
-- ARGV[1]: the value it must reach; ARGV[2]: how long the counter is kept, ms
-- Reply: the counter's value afterwards.
local wanted = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if current < wanted then
  current = wanted
  redis.call('SET', KEYS[1], string.format('%.0f', current))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return current
