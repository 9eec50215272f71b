-- sync-likes, after its commit: drops the changes PostgreSQL now holds from
-- the bucket's stream, but none that a rebuild still has to replay: never
-- past the lowest live pin (likes-rebuild-lock.lua). Expired pins (a
-- rebuilder that died) are dropped here.
-- KEYS (one hash tag): [1] the bucket's change STREAM  [2] the bucket's meta HASH
--   [3] the bucket's pins HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the epoch the changes belong to
--       [3] the stream entry id of the last applied change
-- Reply: the number of entries dropped; 0 when the stream is another epoch's
-- now (Redis lost its data since the read: nothing of it is ours to trim).
-- What a pin holds back is trimmed by a later sync.
-- parse_id and id_before: likes-stream.prelude.lua.

local now = redis.call('TIME')
local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if nowMs > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[2] then
  return 0
end

local upto = ARGV[3]
local pins = redis.call('HGETALL', KEYS[3])
for i = 1, #pins, 2 do
  local expiry, pinned = string.match(pins[i + 1], '^(%d+) (%S+)$')
  if not expiry or tonumber(expiry) < nowMs then
    redis.call('HDEL', KEYS[3], pins[i])
  elseif id_before(pinned, upto) then
    upto = pinned
  end
end

local ms, n = parse_id(upto)
if ms == 0 and n == 0 then
  return 0
end
-- MINID drops entries below the id given: the one right after the last applied.
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', ms, n + 1))
