-- Makes Redis forget that it holds a post's likes and its author's count, so
-- the next request rebuilds both from PostgreSQL (npm run likes:rebuild, and
-- a post found deleted from the database). The author goes too: its count
-- includes the post, and only a rebuild from all of the author's posts
-- keeps it equal to their sum.
-- KEYS (one hash tag): [1] the post's like SET  [2] the post's loaded marker
--   [3] the authorship marker  [4] the author's loaded marker
-- ARGV: [1] the request's cutoff (epoch ms)  [2] 1: also drop the like set and
--       the authorship marker (the post is gone); 0: keep them until rebuilt
-- Reply: 1

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
redis.call('DEL', KEYS[2], KEYS[4])
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1], KEYS[3])
end
return 1
