-- Marks a keyed request as running, so that a concurrent duplicate is
-- answered at once instead of queueing for the user's lock.
-- KEYS[1]: the marker
-- ARGV[1]: the request's cutoff, epoch ms (a deadline script: lib/platform/redis);
-- ARGV[2]: the marker's value, "<request hash> <nonce of this request>";
-- ARGV[3]: the marker's lifetime in ms
-- Reply: nil when claimed by this request (also when this same claim already
--        ran: a re-sent command finds its own nonce), or the hash of the
--        request already running; an error starting EXPIRED, having written
--        nothing, once Redis TIME is past the cutoff; an error starting
--        CORRUPT when the key holds what no claim writes.
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return false
end
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then
  return false
end
local hash = string.match(current, '^(%S+) %S+$')
if not hash then
  return redis.error_reply('CORRUPT ' .. KEYS[1] .. ' does not hold a running marker')
end
return hash
