-- An author's received-like count, or word that Redis does not hold it.
-- KEYS (one hash tag, lib/likes/keys): [1] the author's counter
--   [2] the author's loaded marker  [3] the author's none marker
-- Reply: the count (a string, absent = '0'); '0' when only KEYS[3] is there
-- (the author had no post when last rebuilt, and a like on a post of theirs
-- would have rebuilt them for real first); or -1 when neither marker is
-- there (lost or never loaded: the caller rebuilds it from PostgreSQL).
-- Reads only.

if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('GET', KEYS[1]) or '0'
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return '0'
end
return -1
