-- Opens every likes-rebuild-*.lua (joined in front of each when declared,
-- lib/likes/scripts.ts). Each is a deadline script: refused with EXPIRED
-- past ARGV[1] (the request's cutoff, epoch ms) before anything else, with
-- Redis TIME as nowMs. Provides own_pin, renew_pin and replay_from, for the
-- rebuild's pin on its bucket's stream (see likes-rebuild-lock.lua).
local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if nowMs > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end

-- The entry id the rebuilder `token` pins its stream at, or nil when the
-- rebuild lock or the pin (in the pins HASH, "<expiry ms> <entry id>") is no
-- longer its own: it stops, and whoever holds the lock now rebuilds.
local function own_pin(lock, pins, token)
  if redis.call('GET', lock) ~= token then
    return nil
  end
  local expiry, pinned = string.match(redis.call('HGET', pins, token) or '', '^(%d+) (%S+)$')
  if not expiry or tonumber(expiry) < nowMs then
    return nil
  end
  return pinned
end

-- Sets the rebuilder's pin for another lease.
local function renew_pin(pins, token, lease, pinned)
  redis.call('HSET', pins, token, string.format('%d %s', nowMs + lease, pinned))
  -- Every pin expires within a lease: the hash outlives none of them.
  redis.call('PEXPIRE', pins, lease * 2)
end

-- Where a replay starts: after the last entry PostgreSQL had applied when the
-- rebuild read it (`applied`, of `epoch`; '' for none), or from the stream's
-- start when the stream (its meta HASH) is of another epoch: none of its
-- changes were applied when it was read.
local function first_unapplied(meta, epoch, applied)
  if redis.call('HGET', meta, 'epoch') == epoch and applied ~= '' then
    return applied
  end
  return '0-0'
end

-- A replay page's start (likes-rebuild-post.lua, -author.lua: ARGV[2] the
-- rebuilder's token, ARGV[3] and ARGV[4] the epoch and the last entry applied
-- when it read PostgreSQL, ARGV[5] '' on the first page, else the last entry
-- read), with the pin renewed for `lease` ms and moved up to what the read had
-- on the first page; nil when the lock or the pin is no longer its own.
local function replay_from(lock, meta, pins, lease)
  local pinned = own_pin(lock, pins, ARGV[2])
  if not pinned then
    return nil
  end
  local start = ARGV[5]
  if start == '' then
    start = first_unapplied(meta, ARGV[3], ARGV[4])
    pinned = start
  end
  renew_pin(pins, ARGV[2], lease, pinned)
  return start
end
