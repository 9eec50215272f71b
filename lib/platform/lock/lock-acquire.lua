-- Takes a lock and issues its fencing token in one step (no holder runs
-- without a token, no token is issued without the lock), or queues the caller
-- as a waiter, first in first out, to be handed the lock by lock-handover.lua.
-- KEYS[1]: the lock, value "<holder token>:<fence>"; KEYS[2]: its fencing counter;
-- KEYS[3]: its waiters, a list of tokens, oldest first; KEYS[4]: hash token ->
--   "<wait until ms>:<lease until ms>:<handover lease ms>" (Redis TIME).
--   All of them, and each waiter's mailbox KEYS[1]..':w:'..token, share one
--   hash tag (one cluster slot).
-- ARGV[1]: the request's cutoff, epoch ms (see LuaScript.deadline in lib/platform/redis/scripts.ts)
-- ARGV[2]: lease ms; ARGV[3]: how long the counter is kept, ms;
-- ARGV[4]: the caller's random token;
-- ARGV[5]: ms the caller still waits; 0: do not queue (spin, fail-fast);
-- ARGV[6]: ms its process may still hold a lock; ARGV[7]: the lease, ms, of
--   a lock handed over to it (a short claim, renewed like any lease);
-- ARGV[8]: ms a queued waiter may stay silent past its next check before its
--   entry lapses (a waiter that died must not be handed the lock for long);
-- ARGV[9]: the longest a queued waiter sleeps between checks, ms.
-- ARGV[10]: the most waiters one lock queues (a per-user cap on concurrent
--   point requests); 0: no cap.
-- Reply: {fence, 0, lease ms} when the caller holds the lock (taken now, or
--        taken by an earlier run of this same call, or handed over to it and
--        not yet collected), {0, ms left on the current lease, 0}, or
--        {-1, ms left on the current lease, 0} when the queue is full and the
--        caller was not queued.
-- now, now_ms, the keys and the functions that acquire shares with
-- lock-handover.lua: lock.prelude.lua.
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
local token = ARGV[4]

-- False, writing nothing, when the queue is full and the caller not in it.
local function enqueue(held_for)
  -- The waiter checks again after min(its wait, the lease it saw, ARGV[9]).
  local entry_ms = math.min(tonumber(ARGV[5]), held_for, tonumber(ARGV[9])) + tonumber(ARGV[8])
  if not redis.call('LPOS', queue, token) then
    local cap = tonumber(ARGV[10])
    if cap > 0 and redis.call('LLEN', queue) >= cap then
      return false
    end
    redis.call('RPUSH', queue, token)
  end
  redis.call('HSET', times, token, string.format('%.0f:%.0f:%d', now_ms + entry_ms, now_ms + tonumber(ARGV[6]), tonumber(ARGV[7])))
  -- The queue outlives its longest-lived entry, and no longer.
  if redis.call('PTTL', queue) < entry_ms then
    redis.call('PEXPIRE', queue, entry_ms)
    redis.call('PEXPIRE', times, entry_ms)
  end
  return true
end

local function withdraw()
  redis.call('LREM', queue, 0, token)
  redis.call('HDEL', times, token)
end

local value = redis.call('GET', lock)
if value then
  if string.sub(value, 1, #token + 1) == token .. ':' then
    -- Ours already: this call sent again after a reconnect, or a handover
    -- found by polling. Either way the caller holds it.
    redis.call('DEL', lock .. ':w:' .. token)
    withdraw()
    return {tonumber(string.sub(value, #token + 2)), 0, math.max(1, redis.call('PTTL', lock))}
  end
  local held_for = redis.call('PTTL', lock)
  -- PTTL -1: no TTL, so nobody would ever free it (a stray SET, a PERSIST):
  -- stale, taken over below.
  if held_for >= 0 then
    if tonumber(ARGV[5]) > 0 and not enqueue(held_for) then return {-1, held_for, 0} end
    return {0, held_for, 0}
  end
end

local head, lease_until, handover = live_head()
if head and head ~= token then
  -- Free, but others queued first (its holder died, or let it expire):
  -- theirs, in order.
  hand_over(head, lease_until, handover)
  local held_for = redis.call('PTTL', lock)
  if tonumber(ARGV[5]) > 0 and not enqueue(held_for) then return {-1, held_for, 0} end
  return {0, held_for, 0}
end
if head then withdraw() end

local fence = issue_fence()
redis.call('SET', lock, token .. ':' .. fence, 'PX', ARGV[2])
return {tonumber(fence), 0, tonumber(ARGV[2])}
