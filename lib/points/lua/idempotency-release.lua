-- Deletes an Idempotency-Key's running marker, for its owner only: a request
-- whose marker expired must not delete the marker of the one running now.
-- Harmless when it runs late (it only ever deletes its own marker), so it
-- needs no deadline.
-- KEYS[1]: the marker
-- ARGV[1]: the owner's marker value, "<hash> <nonce>"
-- Reply: 1 when deleted, 0 when the marker was not (or no longer) this owner's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
