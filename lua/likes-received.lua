-- An author's received-like count, or word that Redis does not hold it.
-- KEYS (one hash tag, lib/likes/keys): [1] the author's counter
--   [2] the author's loaded marker
-- Reply: the count (a string, absent = '0'); or -1 when KEYS[2] is missing
-- (lost or never loaded: the caller rebuilds it from PostgreSQL).
-- Reads only.

if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
return redis.call('GET', KEYS[1]) or '0'
