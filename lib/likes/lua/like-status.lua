-- like-status: a post's like count and whether one user likes it, read in one
-- atomic step (a pipeline could interleave a like between the two reads).
-- KEYS (one hash tag, lib/likes/keys): [1] the post's like SET
--   [2] the authorship marker  [3] the post's loaded marker
-- ARGV: [1] the asking user's id
-- Reply: {the post's like count, 1 when the user likes the post, else 0};
--        nil when KEYS[2] is missing (the caller's author may be stale);
--        {-1} when Redis does not hold the post's likes (rebuild first).
-- Reads only, so it needs no deadline: running late changes nothing.

if redis.call('EXISTS', KEYS[2]) == 0 then
  return nil
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  return { -1 }
end
return { redis.call('SCARD', KEYS[1]), redis.call('SISMEMBER', KEYS[1], ARGV[1]) }
