-- Finishes a post's rebuild, one page of the bucket's pending changes per
-- call: replays those that PostgreSQL did not have yet onto the work set,
-- and, on the page that reaches the stream's end, puts the work set in place
-- of the like set and marks the post loaded, in one atomic step.
-- KEYS (one hash tag): [1] the rebuild's work SET  [2] the post's like SET
--   [3] the post's loaded marker  [4] the rebuild lock
--   [5] the bucket's change STREAM  [6] the bucket's meta HASH
--   [7] the bucket's pins HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the rebuilder's token
--       [3] the epoch and [4] the id of the last stream entry that PostgreSQL
--       had applied when the rebuild read it (likes_sync_state; '' for none)
--       [5] '' on the first page, else the id of the last entry read
--       [6] the post id  [7] entries per page  [8] the lock's lease in ms
-- Reply: {1, like count} when done; {2, last entry id read} when more pages
-- follow (call again with it as ARGV[5]); {0} when the lock or the pin is no
-- longer this rebuilder's (nothing written but the work set, which expires).
--
-- Why every change the read lacks is still in the stream: the rebuilder
-- pinned the bucket before it read PostgreSQL (likes-rebuild-lock.lua), and
-- the sync trims nothing past a pin; the first page moves the pin up to what
-- the read had, so the sync may trim that much meanwhile.
-- Why the last page is the end: no like or unlike of this post runs while it
-- is not loaded (the like scripts need the marker), so the changes appended
-- after this rebuild started are of other posts.
-- Why replaying from that entry is exact: PostgreSQL changes only by applying
-- stream changes in order, so a (post, user) with no change after the entry
-- read first has the same row in every later read, and one with changes ends
-- as its last change says, whichever pages saw which.
-- The deadline check and replay_from: likes-rebuild.prelude.lua;
-- entry_fields: likes-stream.prelude.lua.

local postId = ARGV[6]
local lease = tonumber(ARGV[8])
local start = replay_from(KEYS[4], KEYS[6], KEYS[7], lease)
if not start then
  return { 0 }
end

local page = tonumber(ARGV[7])
local entries = redis.call('XRANGE', KEYS[5], '(' .. start, '+', 'COUNT', page)
for _, entry in ipairs(entries) do
  local f = entry_fields(entry)
  if f.p == postId then
    if f.o == '1' then
      redis.call('SADD', KEYS[1], f.u)
    else
      redis.call('SREM', KEYS[1], f.u)
    end
  end
end
if #entries == page then
  redis.call('PEXPIRE', KEYS[4], lease)
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  return { 2, entries[#entries][1] }
end

-- UNLINK: a stale set of a big post (likes:rebuild) is freed in the
-- background; RENAME over it would free it here, blocking Redis.
redis.call('UNLINK', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PERSIST', KEYS[1])
  redis.call('RENAME', KEYS[1], KEYS[2])
end
redis.call('SET', KEYS[3], 1)
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[7], ARGV[2])
return { 1, redis.call('SCARD', KEYS[2]) }
