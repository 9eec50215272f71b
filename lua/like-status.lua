-- like-status: a post's like count and whether one user likes it, read in one
-- atomic step (a pipeline could interleave a like between the two reads).
-- KEYS[1] likes:{u:<authorId>}:post:<postId>  SET of the ids of users who like the post
-- KEYS[2] likes:{u:<authorId>}:post:<postId>:author  present while Redis vouches that
--         the post is the author's (written with the author cache, lib/likes/post-authors)
-- ARGV[1] the asking user's id
-- Reply:  {the post's like count, 1 when the user likes the post, else 0};
--         nil when KEYS[2] is missing (the caller's author may be stale).

if redis.call('EXISTS', KEYS[2]) == 0 then
  return nil
end
return { redis.call('SCARD', KEYS[1]), redis.call('SISMEMBER', KEYS[1], ARGV[1]) }
