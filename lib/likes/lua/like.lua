-- like: adds a user to a post's like set and, only when the user was not in
-- it yet, counts one more received like for the post's author and appends
-- the change to the bucket's stream for sync-likes, all in one atomic step.
-- KEYS (one hash tag, lib/likes/keys):
--   [1] the post's like SET          [2] the author's received-like counter (absent = 0)
--   [3] the authorship marker        [4] the post's loaded marker
--   [5] the author's loaded marker   [6] the bucket's change STREAM
--   [7] the bucket's meta HASH (seq, epoch)
-- ARGV: [1] the request's cutoff (epoch ms, lib/platform/redis) [2] user id
--       [3] post id [4] author id
-- Reply: {changed (1 when this call added the like, else 0), the post's like count};
--        nil when KEYS[3] is missing (the caller's author may be stale: it asks
--        the database and calls again);
--        {-1, post loaded (0/1), author loaded (0/1)} when Redis does not hold
--        the post's or the author's likes (lost or never loaded): the caller
--        rebuilds them from PostgreSQL and calls again;
--        or an error reply starting with EXPIRED or CORRUPT.
--        Nothing is written unless the reply is {changed, count}.
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

-- INCR takes only a canonical integer (no sign, no leading zero); 18 digits
-- cannot overflow it.
local counterType = redis.call('TYPE', KEYS[2]).ok
if counterType ~= 'none' then
  local count = counterType == 'string' and redis.call('GET', KEYS[2]) or ''
  if not (count == '0' or (#count <= 18 and count:match('^[1-9]%d*$'))) then
    return redis.error_reply('CORRUPT ' .. KEYS[2] .. ' does not hold a like count')
  end
end

local streamType = redis.call('TYPE', KEYS[6]).ok
if streamType ~= 'stream' and streamType ~= 'none' then
  return redis.error_reply('CORRUPT ' .. KEYS[6] .. ' holds a ' .. streamType .. ', not a stream')
end

local added = redis.call('SADD', KEYS[1], ARGV[2])
if added == 1 then
  redis.call('INCR', KEYS[2])
  -- The change's number in its bucket: sync-likes applies changes in this
  -- order and only right after the last one it applied. A fresh counter
  -- (Redis lost its data) starts a new epoch, so numbers restarting at 1 are
  -- not mistaken for changes already applied.
  local seq = redis.call('HINCRBY', KEYS[7], 'seq', 1)
  if seq == 1 or redis.call('HEXISTS', KEYS[7], 'epoch') == 0 then
    redis.call('HSET', KEYS[7], 'epoch', now[1] .. '.' .. now[2])
  end
  redis.call('XADD', KEYS[6], '*', 's', seq, 'p', ARGV[3], 'u', ARGV[2], 'a', ARGV[4], 'o', 1, 't', nowMs)
end
return { added, redis.call('SCARD', KEYS[1]) }
