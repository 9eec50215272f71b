-- Elects the one caller that rebuilds a post's likes or an author's count
-- from PostgreSQL; the others wait for its loaded marker. The one elected
-- also pins its bucket's stream: from now until the rebuild is done (or its
-- lease runs out), sync-likes trims nothing that the rebuild has not read
-- from PostgreSQL (likes-sync-trim.lua), so the rebuild replays every
-- change that its read lacks. The pin says '0-0' (trim nothing) until the
-- rebuild knows what it read (likes-rebuild-post.lua, -author.lua).
-- KEYS (one hash tag): [1] the rebuild lock  [2] the loaded marker it would
--   write  [3] the bucket's pins HASH (rebuilder token -> "<expiry ms> <entry id>")
-- ARGV: [1] the request's cutoff (epoch ms)  [2] this caller's token
--       [3] the lock's lease in ms
-- Reply: 1 when this caller now holds the lock and must rebuild; 0 when
-- another caller holds it; 2 when nothing is to be done (already loaded).
-- The deadline check and renew_pin: likes-rebuild.prelude.lua.

if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then
  renew_pin(KEYS[3], ARGV[2], tonumber(ARGV[3]), '0-0')
  return 1
end
return 0
