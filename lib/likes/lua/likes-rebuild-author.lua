-- Finishes an author's rebuild, one page of the bucket's pending changes per
-- call: the received-like count is PostgreSQL's count for all of the
-- author's posts plus the author's changes it did not have yet, stored with
-- the loaded marker, on the page that reaches the stream's end, in one
-- atomic step.
-- KEYS (one hash tag): [1] the author's counter  [2] the author's loaded marker
--   [3] the rebuild lock  [4] the bucket's change STREAM  [5] the bucket's meta HASH
--   [6] the author's none marker  [7] the bucket's pins HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the rebuilder's token
--       [3] the epoch and [4] the id of the last entry applied ('' for none),
--       read in the same statement as the count
--       [5] '' on the first page, else the id of the last entry read
--       [6] the author id  [7] the count so far: PostgreSQL's on the first
--       page, else what the last page answered  [8] '1' when a page before
--       saw a change of the author's, else '0'
--       [9] '1' when the author has a post in that read, else '0'
--       [10] how long, in seconds, "no post" is kept
--       [11] entries per page  [12] the lock's lease in ms
-- Reply: {1, count} when done; {2, last entry id read, count so far, seen}
-- when more pages follow (call again with them as ARGV[5], [7], [8]); {0}
-- when the lock or the pin is no longer this rebuilder's. Nothing is
-- written but the lease and the pin unless the reply is {1, count}.
--
-- An author with no post and no pending change gets only KEYS[6], with a
-- TTL: ids that are not there store nothing that lasts. It answers 0 for
-- received-likes; a like needs KEYS[2], so the first like on a post of
-- theirs rebuilds them for real, and KEYS[6] goes then.
--
-- Every change the read lacks is still in the stream, and the last page is
-- the end of the author's: see likes-rebuild-post.lua (no like of this
-- author's runs while the author is not loaded).
-- The deadline check and replay_from: likes-rebuild.prelude.lua;
-- entry_fields: likes-stream.prelude.lua.

local lease = tonumber(ARGV[12])
local start = replay_from(KEYS[3], KEYS[5], KEYS[7], lease)
if not start then
  return { 0 }
end

local authorId = ARGV[6]
local count = tonumber(ARGV[7])
local seen = ARGV[8] == '1'
local page = tonumber(ARGV[11])
local entries = redis.call('XRANGE', KEYS[4], '(' .. start, '+', 'COUNT', page)
for _, entry in ipairs(entries) do
  local f = entry_fields(entry)
  if f.a == authorId then
    count = count + (f.o == '1' and 1 or -1)
    seen = true
  end
end
if #entries == page then
  redis.call('PEXPIRE', KEYS[3], lease)
  return { 2, entries[#entries][1], string.format('%d', count), seen and 1 or 0 }
end
if count < 0 then
  count = 0
end

redis.call('HDEL', KEYS[7], ARGV[2])
redis.call('DEL', KEYS[3])
if ARGV[9] ~= '1' and not seen and count == 0 then
  redis.call('SET', KEYS[6], 1, 'EX', ARGV[10])
  return { 1, 0 }
end
-- %d: tostring() of a large number would use an exponent.
redis.call('SET', KEYS[1], string.format('%d', count))
redis.call('SET', KEYS[2], 1)
redis.call('DEL', KEYS[6])
return { 1, count }
