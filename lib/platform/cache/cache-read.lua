-- The instance tier's read of a value it does not hold (lib/platform/cache
-- InstanceTier): the group's generation and one field of the value, in one
-- round trip and in that order, so the generation an instance remembers is
-- never newer than the value it read (an eviction in between makes the next
-- check refill once more, never keeps a dropped value). Read only.
-- KEYS[1]: the group's generation; KEYS[2]: the value key (a hash; same slot)
-- ARGV[1]: the field
-- Reply: { generation or false (never evicted), field or false (a miss) }
return { redis.call('GET', KEYS[1]), redis.call('HGET', KEYS[2], ARGV[1]) }
