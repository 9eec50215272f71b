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
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local now_ms = math.floor(now_us / 1000)
local lock, counter, queue, times = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- Keep the three functions below in step with lock-acquire.lua.

local function issue_fence()
  local fence = redis.call('INCR', counter)
  if fence < now_us then
    fence = now_us
    redis.call('SET', counter, string.format('%.0f', fence))
  end
  redis.call('PEXPIRE', counter, ARGV[3])
  return string.format('%.0f', fence)
end

local function live_head()
  while true do
    local head = redis.call('LINDEX', queue, 0)
    if not head then return nil end
    local entry = redis.call('HGET', times, head)
    if entry then
      local wait_until, lease_until, handover = string.match(entry, '^(%d+):(%d+):(%d+)$')
      if wait_until and tonumber(wait_until) > now_ms and tonumber(lease_until) > now_ms then
        return head, tonumber(lease_until), tonumber(handover)
      end
    end
    redis.call('LPOP', queue)
    redis.call('HDEL', times, head)
  end
end

local function hand_over(head, lease_until, handover)
  redis.call('LPOP', queue)
  redis.call('HDEL', times, head)
  local fence = issue_fence()
  local lease = math.min(handover, lease_until - now_ms)
  redis.call('SET', lock, head .. ':' .. fence, 'PX', lease)
  local mailbox = lock .. ':w:' .. head
  -- When it was handed over, so a waiter that collects it late knows to check it.
  redis.call('RPUSH', mailbox, fence .. ':' .. lease .. ':' .. now_ms)
  redis.call('PEXPIRE', mailbox, lease)
end

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
