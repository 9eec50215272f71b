-- Releases a lock for its holder, or takes a waiter out of the queue, and
-- hands a freed lock straight to the oldest live waiter: no polling, no
-- thundering herd, first come first served.
-- KEYS[1..4]: as in lock-acquire.lua (lock, fencing counter, waiters, their times)
-- ARGV[1]: the lock value ("<token>:<fence>") to release, or '' for none
-- ARGV[2]: a waiter's token that stops waiting, or ''; a lock handed over to
--   it meanwhile is released (and handed on) as well
-- ARGV[3]: how long the fencing counter is kept, ms
-- Reply: 1 when a lock was released, 0 when there was none of the caller's.
-- Not a deadline script: releasing what is still the caller's, late, only
-- frees it sooner than its lease would.
-- now, now_ms, the keys, live_head and hand_over: lock.prelude.lua.
local value = redis.call('GET', lock)
local release = value ~= false and ARGV[1] ~= '' and value == ARGV[1]
local waiter = ARGV[2]
if waiter ~= '' then
  redis.call('LREM', queue, 0, waiter)
  redis.call('HDEL', times, waiter)
  redis.call('DEL', lock .. ':w:' .. waiter)
  if value and string.sub(value, 1, #waiter + 1) == waiter .. ':' then release = true end
end
if not release then return 0 end

redis.call('DEL', lock)
local head, lease_until, handover = live_head()
if head then hand_over(head, lease_until, handover) end
return 1
