-- Takes a lock and issues its fencing token in one step: no holder runs
-- without a token, and no token is issued without the lock.
-- KEYS[1]: the lock; KEYS[2]: its fencing counter (same hash tag, same slot)
-- ARGV[1]: lease in ms; ARGV[2]: how long the counter is kept, in ms;
-- ARGV[3]: the holder's random token (the lock's value; release and extend check it)
-- Reply: {fencing token, 0} when taken, or
--        {0, ms left on the current holder's lease} when held.
local held_for = redis.call('PTTL', KEYS[1])
if held_for ~= -2 then
  return {0, held_for}
end

-- A counter alone restarts at 1 when Redis loses it (a failover without
-- persistence, an eviction), and the database would then refuse every write
-- as stale. Never issuing less than Redis TIME in microseconds keeps tokens
-- increasing across such a loss.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local token = redis.call('INCR', KEYS[2])
-- %.0f: tostring() and number arguments keep only 14 significant digits.
if token < now then
  token = now
  redis.call('SET', KEYS[2], string.format('%.0f', token))
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[1])
return {token, 0}
