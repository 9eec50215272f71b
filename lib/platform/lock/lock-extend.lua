-- Renews a lease, for its holder only: a holder whose lease expired must not
-- take back a lock someone else holds now. A deadline script: a renewal that
-- reaches Redis after its request gave up must not keep the lock alive.
-- KEYS[1]: the lock
-- ARGV[1]: the request's cutoff, epoch ms (see LuaScript.deadline in lib/platform/redis/scripts.ts)
-- ARGV[2]: the holder's lock value ("<token>:<fence>"); ARGV[3]: the new lease in ms
-- Reply: 1 when renewed, 0 when the lock is no longer this holder's.
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('GET', KEYS[1]) == ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
