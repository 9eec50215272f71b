-- Opens trending-add.lua and trending-remove.lua (joined in front of each
-- when declared, lib/trending/counts.ts). Both are deadline scripts: refused
-- with EXPIRED past ARGV[1] (the request's cutoff, epoch ms) before anything
-- else. Provides P and held_sum, the minute's fingerprint (see
-- trending-add.lua) as KEYS[2] holds it.
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
local P = 1000000007

local function held_sum()
  return tonumber(redis.call('HGET', KEYS[2], 'sum') or '0')
end
