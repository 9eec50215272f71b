-- sync-likes: the oldest changes of one bucket's stream that the record
-- lacks, with the stream's epoch read in the same atomic step (a flush
-- between two reads could pair a new epoch with old changes).
-- KEYS (one hash tag): [1] the bucket's change STREAM  [2] the bucket's meta HASH
-- ARGV: [1] how many changes at most  [2] the epoch and [3] the id of the
--       last entry the record holds (likes_sync_state; '' for none)
-- Reply: {epoch (or ''), text, recorded}: text has one line per change,
--        oldest first, "<entry id> <seq> <post> <user> <1 like | 0 unlike> <ms>":
--        the changes after ARGV[3] when the stream is of epoch ARGV[2], else
--        all of them. One string rather than nested arrays: the client parses
--        a thousand changes as one reply, which is most of what a sync costs
--        on the Redis side. recorded is 1 when the stream still starts with
--        entries the record holds (a trim that a rebuild's pin held back, or
--        a sync that died before its trim): the caller trims them.
-- Reads only. Reading after the record, not from the head, keeps the sync
-- going while a pin holds trims back.
-- entry_fields: likes-stream.prelude.lua.

local epoch = redis.call('HGET', KEYS[2], 'epoch') or ''
local start = '-'
local recorded = 0
if epoch == ARGV[2] and ARGV[3] ~= '' then
  start = '(' .. ARGV[3]
  local head = redis.call('XRANGE', KEYS[1], '-', ARGV[3], 'COUNT', 1)
  if #head > 0 then
    recorded = 1
  end
end
local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[1])
local lines = {}
for i, entry in ipairs(entries) do
  local f = entry_fields(entry)
  lines[i] = entry[1] .. ' ' .. f.s .. ' ' .. f.p .. ' ' .. f.u .. ' ' .. f.o .. ' ' .. f.t
end
return { epoch, table.concat(lines, '\n'), recorded }
