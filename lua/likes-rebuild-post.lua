-- Finishes a post's rebuild: replays the bucket's changes that PostgreSQL did
-- not have yet onto the work set, puts it in place of the like set, and marks
-- the post loaded, in one atomic step.
-- KEYS (one hash tag): [1] the rebuild's work SET  [2] the post's like SET
--   [3] the post's loaded marker  [4] the rebuild lock
--   [5] the bucket's change STREAM  [6] the bucket's meta HASH
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the rebuilder's token
--       [3] the epoch and [4] the id of the last stream entry that PostgreSQL
--       had applied when the rebuild started reading it (likes_sync_state;
--       '' for none)  [5] the post id
--       [6] '1' to finish even when the sync trimmed changes that read did
--       not include (after retries that kept seeing it: this PostgreSQL is
--       not the record the stream was synced to, see lib/likes/rebuild)
-- Reply: {1, like count} when done; {0} when the lock is no longer this
-- rebuilder's (nothing written); {-1} when the sync trimmed changes that the
-- rebuild's read of PostgreSQL did not include: read again (the work set is
-- dropped, the lock kept).
--
-- Why replaying from that entry is exact: PostgreSQL changes only by applying
-- stream changes in order, so a (post, user) with no change after the entry
-- read first has the same row in every later read, and one with changes ends
-- as its last change says, whichever pages saw which.

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('GET', KEYS[4]) ~= ARGV[2] then
  return { 0 }
end

local function parse(id)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(n)
end
local function after(a, b)
  local am, an = parse(a)
  local bm, bn = parse(b)
  return am > bm or (am == bm and an > bn)
end

-- Another epoch in PostgreSQL: none of this stream's changes were applied
-- when it was read, unless some were trimmed since.
local epoch = redis.call('HGET', KEYS[6], 'epoch')
local applied = '0-0'
if epoch == ARGV[3] and ARGV[4] ~= '' then
  applied = ARGV[4]
end
local trimmed = redis.call('HGET', KEYS[6], 'trimmed') or '0-0'
if ARGV[6] ~= '1' and after(trimmed, applied) then
  redis.call('DEL', KEYS[1])
  return { -1 }
end

local postId = ARGV[5]
local start = '(' .. applied
while true do
  local entries = redis.call('XRANGE', KEYS[5], start, '+', 'COUNT', 1000)
  for _, entry in ipairs(entries) do
    local f = {}
    local fields = entry[2]
    for i = 1, #fields, 2 do
      f[fields[i]] = fields[i + 1]
    end
    if f.p == postId then
      if f.o == '1' then
        redis.call('SADD', KEYS[1], f.u)
      else
        redis.call('SREM', KEYS[1], f.u)
      end
    end
  end
  if #entries < 1000 then
    break
  end
  start = '(' .. entries[#entries][1]
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
return { 1, redis.call('SCARD', KEYS[2]) }
