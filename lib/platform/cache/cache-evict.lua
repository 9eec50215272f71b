-- Drops every cached value of a group without scanning the keyspace: the
-- registry set lists them, and the fill locks held right now, so a fill that
-- read its value before this eviction cannot store it after (cache-fill.lua
-- stores only under its own lock). In the same atomic step it sets the
-- group's generation to a new token: instances holding a value in memory
-- (lib/platform/cache InstanceTier) see the token change on their next check
-- and drop it. A random token, not a counter: a Redis that restarted empty
-- would count again from the start and could repeat a generation an
-- instance still holds. A second run finds nothing and only sets a new token.
-- KEYS[1]: the group's registry set (its members share its hash slot, so a
-- cluster node can delete them from this script); KEYS[2]: the group's
-- generation (same slot)
-- ARGV[1]: the new generation token
-- Reply: the number of keys deleted (values, and fill locks in flight)
local keys = redis.call('SMEMBERS', KEYS[1])
local deleted = 0
-- unpack() is bounded by the Lua stack; delete in batches.
for first = 1, #keys, 500 do
  deleted = deleted + redis.call('DEL', unpack(keys, first, math.min(first + 499, #keys)))
end
redis.call('DEL', KEYS[1])
-- No expiry: a generation that expired would read as absent, a value some
-- instance may have read under.
redis.call('SET', KEYS[2], ARGV[1])
return deleted
