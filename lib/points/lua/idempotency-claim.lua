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
-- The deadline check and set_marker: marker.prelude.lua.
local current = set_marker('PX')
if not current then
  return false
end
local hash = string.match(current, '^(%S+) %S+$')
if not hash then
  return redis.error_reply('CORRUPT ' .. KEYS[1] .. ' does not hold a running marker')
end
return hash
