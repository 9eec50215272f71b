-- sync-likes: the oldest changes of one bucket's stream, with the stream's
-- epoch read in the same atomic step (a flush between two reads could pair
-- a new epoch with old changes).
-- KEYS (one hash tag): [1] the bucket's change STREAM  [2] the bucket's meta HASH
-- ARGV: [1] how many changes at most
-- Reply: {epoch (or ''), text}: one line per change, oldest first,
--        "<entry id> <seq> <post> <user> <1 like | 0 unlike> <ms>". One string
--        rather than nested arrays: the client parses a thousand changes as
--        one reply, which is most of what a sync costs on the Redis side.
-- Reads only.

local epoch = redis.call('HGET', KEYS[2], 'epoch') or ''
local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[1])
local lines = {}
for i, entry in ipairs(entries) do
  local f = {}
  local fields = entry[2]
  for j = 1, #fields, 2 do
    f[fields[j]] = fields[j + 1]
  end
  lines[i] = entry[1] .. ' ' .. f.s .. ' ' .. f.p .. ' ' .. f.u .. ' ' .. f.o .. ' ' .. f.t
end
return { epoch, table.concat(lines, '\n') }
