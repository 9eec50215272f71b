-- sync-likes: the oldest changes of one bucket's stream, with the stream's
-- epoch read in the same atomic step (a flush between two reads could pair
-- a new epoch with old changes).
-- KEYS (one hash tag): [1] the bucket's change STREAM  [2] the bucket's meta HASH
-- ARGV: [1] how many changes at most
-- Reply: {epoch (or ''), {{id, {field, value, ...}}, ...}}
-- Reads only.

local epoch = redis.call('HGET', KEYS[2], 'epoch') or ''
return { epoch, redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[1]) }
