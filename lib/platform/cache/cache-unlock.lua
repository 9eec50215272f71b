-- Releases a lock, for its holder only: a holder whose lease expired must not
-- free a lock someone else holds now.
-- KEYS[1]: the lock
-- ARGV[1]: the holder's random token
-- Reply: 1 when released, 0 when the lock was no longer this holder's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
