-- Elects the one caller that rebuilds a post's likes or an author's count
-- from PostgreSQL; the others wait for its loaded marker.
-- KEYS: [1] the rebuild lock  [2] the loaded marker it would write (same slot)
-- ARGV: [1] the request's cutoff (epoch ms)  [2] this caller's token
--       [3] the lock's lease in ms
-- Reply: 1 when this caller now holds the lock and must rebuild; 0 when
-- another caller holds it; 2 when nothing is to be done (already loaded).

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 1
end
return 0
