-- Shared by like.lua and unlike.lua (joined in front of each when declared,
-- lib/likes/scripts.ts): change_like(liked), the whole of both scripts. KEYS,
-- ARGV and replies: like.lua's header.
--
-- Redis keeps whatever a failing script wrote before the failure, so every
-- check that could fail runs before the first write.
local function change_like(liked)
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

  -- INCR and DECR take only a canonical integer (no sign, no leading zero);
  -- 18 digits cannot overflow it.
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

  local changed
  if liked then
    changed = redis.call('SADD', KEYS[1], ARGV[2])
  else
    changed = redis.call('SREM', KEYS[1], ARGV[2])
  end
  if changed == 1 then
    if liked then
      redis.call('INCR', KEYS[2])
    elseif count ~= '0' then
      -- Never below 0.
      redis.call('DECR', KEYS[2])
    end
    -- The change's number in its bucket: sync-likes applies changes in this
    -- order and only right after the last one it applied. A fresh counter
    -- (Redis lost its data) starts a new epoch, so numbers restarting at 1 are
    -- not mistaken for changes already applied.
    local seq = redis.call('HINCRBY', KEYS[7], 'seq', 1)
    if seq == 1 or redis.call('HEXISTS', KEYS[7], 'epoch') == 0 then
      redis.call('HSET', KEYS[7], 'epoch', now[1] .. '.' .. now[2])
    end
    redis.call('XADD', KEYS[6], '*', 's', seq, 'p', ARGV[3], 'u', ARGV[2], 'a', ARGV[4], 'o', liked and 1 or 0, 't', nowMs)
  end
  return { changed, redis.call('SCARD', KEYS[1]) }
end
