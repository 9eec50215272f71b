-- sync-likes, after its commit: drops the changes PostgreSQL now holds from
-- the bucket's stream and remembers how far it trimmed (rebuilds compare
-- that with what they read from PostgreSQL).
-- KEYS (one hash tag): [1] the bucket's change STREAM  [2] the bucket's meta HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the epoch the changes belong to
--       [3] the stream entry id of the last applied change
-- Reply: the number of entries dropped; 0 when the stream is another epoch's
-- now (Redis lost its data since the read: nothing of it is ours to trim).

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[2] then
  return 0
end
local ms, n = string.match(ARGV[3], '^(%d+)-(%d+)$')
ms, n = tonumber(ms), tonumber(n)
-- MINID drops entries below the id given: the one right after the last applied.
local dropped = redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', ms, n + 1))
-- Only ever forward: a slower sync's trim must not hide a faster one's.
local tms, tn = string.match(redis.call('HGET', KEYS[2], 'trimmed') or '0-0', '^(%d+)-(%d+)$')
tms, tn = tonumber(tms), tonumber(tn)
if ms > tms or (ms == tms and n > tn) then
  redis.call('HSET', KEYS[2], 'trimmed', ARGV[3])
end
return dropped
