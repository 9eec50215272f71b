-- like-status: a post's like count and whether one user likes it, read in one
-- atomic step (a pipeline could interleave a like between the two reads).
-- KEYS[1] likes:{u:<authorId>}:post:<postId>  SET of the ids of users who like the post
-- ARGV[1] the asking user's id
-- Reply:  {the post's like count, 1 when the user likes the post, else 0}

return { redis.call('SCARD', KEYS[1]), redis.call('SISMEMBER', KEYS[1], ARGV[1]) }
