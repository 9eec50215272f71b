-- unlike: removes a user from a post's like set and, only when the user was
-- in it, counts one received like fewer for the post's author, never below 0.
-- KEYS[1] likes:{u:<authorId>}:post:<postId>  SET of the ids of users who like the post
-- KEYS[2] likes:{u:<authorId>}:received       the author's received-like count (absent = 0)
-- KEYS[3] likes:{u:<authorId>}:post:<postId>:author  present while Redis vouches that
--         the post is the author's (written with the author cache, lib/likes/post-authors)
-- ARGV[1] the unliking user's id
-- Reply:  {changed (1 when this call removed the like, else 0), the post's like count};
--         nil when KEYS[3] is missing (the caller's author may be stale: it asks
--         the database and calls again); or an error reply starting with CORRUPT.
--         Nothing is written unless the reply is a table.
--
-- Redis keeps whatever a failing script wrote before the failure, so every
-- check that could fail runs before the first write.

if redis.call('EXISTS', KEYS[3]) == 0 then
  return nil
end

local setType = redis.call('TYPE', KEYS[1]).ok
if setType ~= 'set' and setType ~= 'none' then
  return redis.error_reply('CORRUPT ' .. KEYS[1] .. ' holds a ' .. setType .. ', not a set')
end

-- DECR takes only a canonical integer (no sign, no leading zero).
local count = '0'
local counterType = redis.call('TYPE', KEYS[2]).ok
if counterType ~= 'none' then
  count = counterType == 'string' and redis.call('GET', KEYS[2]) or ''
  if not (count == '0' or (#count <= 18 and count:match('^[1-9]%d*$'))) then
    return redis.error_reply('CORRUPT ' .. KEYS[2] .. ' does not hold a like count')
  end
end

local removed = redis.call('SREM', KEYS[1], ARGV[1])
if removed == 1 and count ~= '0' then
  redis.call('DECR', KEYS[2])
end
return { removed, redis.call('SCARD', KEYS[1]) }
