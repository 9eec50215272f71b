-- Shared by lock-acquire.lua and lock-handover.lua (joined in front of each
-- when declared, lib/platform/lock.ts): Redis TIME as `now`, `now_us` and
-- `now_ms`; the lock's keys `lock`, `counter`, `queue` and `times` (KEYS[1..4],
-- as in lock-acquire.lua); and issue_fence (keeps the counter ARGV[3] ms),
-- live_head and hand_over. Reads and writes nothing but TIME until called.
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local now_ms = math.floor(now_us / 1000)
local lock, counter, queue, times = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- A counter alone restarts at 1 when Redis loses it (a failover without
-- persistence, an eviction), and the database would then refuse every write
-- as stale. Never issuing less than Redis TIME in microseconds keeps tokens
-- increasing across such a loss. %.0f: tostring() keeps 14 digits only.
local function issue_fence()
  local fence = redis.call('INCR', counter)
  if fence < now_us then
    fence = now_us
    redis.call('SET', counter, string.format('%.0f', fence))
  end
  redis.call('PEXPIRE', counter, ARGV[3])
  return string.format('%.0f', fence)
end

-- The oldest waiter still waiting, with its lease until and handover lease;
-- entries of waiters that gave up or went silent are dropped on the way.
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

-- The waiter becomes the holder before it knows: its BLPOP (or its next
-- poll, which finds its own token) collects the fence. The short lease bounds
-- what a waiter that died after its last check costs the ones behind it.
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
