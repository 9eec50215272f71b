-- sync-likes, after its commit: drops the changes PostgreSQL now holds from
-- the bucket's stream and remembers how far it trimmed (rebuilds compare
-- that with what they read from PostgreSQL).
-- KEYS (one hash tag): [1] the bucket's change STREAM  [2] the bucket's meta HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the epoch the changes belong to
--       [3] the last applied seq  [4] that change's stream entry id
-- Reply: the number of entries dropped; 0 when the stream is another epoch's
-- now (Redis lost its data since the read: nothing of it is ours to trim).

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[2] then
  return 0
end
-- MINID drops entries below the id given: the one right after the last applied.
local ms, seq = string.match(ARGV[4], '^(%d+)-(%d+)$')
local dropped = redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
local trimmed = tonumber(redis.call('HGET', KEYS[2], 'trimmed') or '0')
if tonumber(ARGV[3]) > trimmed then
  redis.call('HSET', KEYS[2], 'trimmed', ARGV[3])
end
return dropped
