-- Renews a lease, for its holder only: a holder whose lease expired must not
-- take back a lock someone else holds now.
-- KEYS[1]: the lock
-- ARGV[1]: the holder's random token; ARGV[2]: the new lease in ms
-- Reply: 1 when renewed, 0 when the lock is no longer this holder's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
