-- Records that a queued point request was accepted, before its record is
-- put on the stream: GET /points/requests/{id} answers PENDING from this
-- marker until the request's outcome row exists, and a repeated
-- Idempotency-Key finds the body its first use was accepted with.
-- KEYS[1]: the marker, qreq:{u:<userId>}:<requestId>
-- ARGV[1]: the request's cutoff, epoch ms (a deadline script: lib/platform/redis);
-- ARGV[2]: the marker's value, "<request hash or -> <nonce of this request>";
-- ARGV[3]: the marker's lifetime in seconds
-- Reply: nil when this request set the marker (also when this same call
--        already ran: a re-sent command finds its own nonce), or the hash
--        the marker was first set with; an error starting EXPIRED, having
--        written nothing, once Redis TIME is past the cutoff.
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then
  return false
end
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then
  return false
end
return string.match(current, '^%S+')
