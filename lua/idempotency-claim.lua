-- Marks a keyed request as running, so that a concurrent duplicate is
-- answered at once instead of queueing for the user's lock.
-- KEYS[1]: the marker
-- ARGV[1]: the request's hash; ARGV[2]: the marker's lifetime in ms
-- Reply: nil when claimed, or the hash of the request already running.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
