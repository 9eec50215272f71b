-- unlike: removes a user from a post's like set and, only when the user was
-- in it, counts one received like fewer for the post's author (never below 0)
-- and appends the change to the bucket's stream for sync-likes, atomically.
-- KEYS (one hash tag, lib/likes/keys):
--   [1] the post's like SET          [2] the author's received-like counter (absent = 0)
--   [3] the authorship marker        [4] the post's loaded marker
--   [5] the author's loaded marker   [6] the bucket's change STREAM
--   [7] the bucket's meta HASH (seq, epoch)
-- ARGV: [1] the request's cutoff (epoch ms, lib/platform/redis) [2] user id
--       [3] post id [4] author id
-- Reply: as like.lua: {changed, the post's like count}; nil (stale author);
--        {-1, post loaded, author loaded} (rebuild first); or an error reply
--        starting with EXPIRED or CORRUPT. Nothing is written unless the reply
--        is {changed, count}.
--
-- Redis keeps whatever a failing script wrote before the failure, so every
-- check that could fail runs before the first write.

local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if nowMs > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end

if redis.call('EXISTS', KEYS[3]) == 0 then
  return nil
end
local postLoaded = redis.call('EXISTS', KEYS[4])
local authorLoaded = redis.call('EXISTS', KEYS[5])
if postLoaded == 0 or authorLoaded == 0 then
  return { -1, postLoaded, authorLoaded }
end

local setType = redis.call('TYPE', KEYS[1]).ok
if setType ~= 'set' and setType ~= 'none' then
  return redis.error_reply('CORRUPT ' .. KEYS[1] .. ' holds a ' .. setType .. ', not a set')
end

-- DECR takes only a canonical integer (no sign, no leading zero).
local count = '0'
local counterType = redis.call('TYPE', KEYS[2]).ok
if counterType ~= 'none' then
  count = counterType == 'string' and redis.call('GET', KEYS[2]) or ''
  if not (count == '0' or (#count <= 18 and count:match('^[1-9]%d*$'))) then
    return redis.error_reply('CORRUPT ' .. KEYS[2] .. ' does not hold a like count')
  end
end

local streamType = redis.call('TYPE', KEYS[6]).ok
if streamType ~= 'stream' and streamType ~= 'none' then
  return redis.error_reply('CORRUPT ' .. KEYS[6] .. ' holds a ' .. streamType .. ', not a stream')
end

local removed = redis.call('SREM', KEYS[1], ARGV[2])
if removed == 1 then
  if count ~= '0' then
    redis.call('DECR', KEYS[2])
  end
  -- See like.lua: numbered in the bucket, a new epoch when numbering restarts.
  local seq = redis.call('HINCRBY', KEYS[7], 'seq', 1)
  if seq == 1 or redis.call('HEXISTS', KEYS[7], 'epoch') == 0 then
    redis.call('HSET', KEYS[7], 'epoch', now[1] .. '.' .. now[2])
  end
  redis.call('XADD', KEYS[6], '*', 's', seq, 'p', ARGV[3], 'u', ARGV[2], 'a', ARGV[4], 'o', 0, 't', nowMs)
end
return { removed, redis.call('SCARD', KEYS[1]) }
