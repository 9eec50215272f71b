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
-- The deadline check and set_marker: marker.prelude.lua.
local current = set_marker('EX')
if not current then
  return false
end
return string.match(current, '^%S+')
