-- Drops every cached value of a group without scanning the keyspace: the
-- registry set lists them, and the fill locks held right now, so a fill that
-- read its value before this eviction cannot store it after (cache-fill.lua
-- stores only under its own lock). Atomic, and a second run finds nothing.
-- KEYS[1]: the group's registry set (its members share its hash slot, so a
-- cluster node can delete them from this script)
-- ARGV: none
-- Reply: the number of keys deleted (values, and fill locks in flight)
local keys = redis.call('SMEMBERS', KEYS[1])
local deleted = 0
-- unpack() is bounded by the Lua stack; delete in batches.
for first = 1, #keys, 500 do
  deleted = deleted + redis.call('DEL', unpack(keys, first, math.min(first + 499, #keys)))
end
redis.call('DEL', KEYS[1])
return deleted
