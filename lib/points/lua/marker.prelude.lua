-- Opens idempotency-claim.lua and point-request-accept.lua (joined in front
-- of each when declared, lib/points/scripts.ts). Both are deadline scripts:
-- refused with EXPIRED past ARGV[1] (the request's cutoff, epoch ms) before
-- anything else. Provides set_marker.
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end

-- Sets the marker KEYS[1] to ARGV[2], "<hash> <nonce of this request>", for
-- ARGV[3] in `unit` ('PX': ms, 'EX': s), unless it exists. Returns nil when
-- this request set it (also when this same call already ran: a re-sent
-- command finds its own nonce), else the marker's value.
local function set_marker(unit)
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', unit, ARGV[3]) then
    return nil
  end
  local current = redis.call('GET', KEYS[1])
  if current == ARGV[2] then
    return nil
  end
  return current
end
