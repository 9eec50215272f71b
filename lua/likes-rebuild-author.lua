-- Finishes an author's rebuild: the received-like count is PostgreSQL's count
-- for all of the author's posts plus the author's changes it did not have
-- yet, stored with the loaded marker in one atomic step.
-- KEYS (one hash tag): [1] the author's counter  [2] the author's loaded marker
--   [3] the rebuild lock  [4] the bucket's change STREAM  [5] the bucket's meta HASH
--   [6] the author's none marker
-- ARGV: [1] the request's cutoff (epoch ms)  [2] the rebuilder's token
--       [3] the epoch and [4] the id of the last entry applied ('' for none),
--       read in the same statement as [6] the count  [5] the author id
--       [7] '1' to finish even when the sync trimmed changes newer than that
--       read (see likes-rebuild-post.lua)
--       [8] '1' when the author has a post in that read, else '0'
--       [9] how long, in seconds, "no post" is kept
-- An author with no post and no pending change gets only KEYS[6], with a
-- TTL: ids that are not there store nothing that lasts. It answers 0 for
-- received-likes; a like needs KEYS[2], so the first like on a post of
-- theirs rebuilds them for real, and KEYS[6] goes then.
-- Reply: {1, count} when done; {0} when the lock is no longer this
-- rebuilder's; {-1} when the sync trimmed changes newer than that read: read
-- again. Nothing is written unless the reply is {1, count}.
--
-- No like of this author's runs meanwhile (the like scripts need the loaded
-- marker), so the changes replayed here are all of them.

local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
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
local epoch = redis.call('HGET', KEYS[5], 'epoch')
local applied = '0-0'
if epoch == ARGV[3] and ARGV[4] ~= '' then
  applied = ARGV[4]
end
local trimmed = redis.call('HGET', KEYS[5], 'trimmed') or '0-0'
if ARGV[7] ~= '1' and after(trimmed, applied) then
  return { -1 }
end

local authorId = ARGV[5]
local count = tonumber(ARGV[6])
local seen = false
local start = '(' .. applied
while true do
  local entries = redis.call('XRANGE', KEYS[4], start, '+', 'COUNT', 1000)
  for _, entry in ipairs(entries) do
    local f = {}
    local fields = entry[2]
    for i = 1, #fields, 2 do
      f[fields[i]] = fields[i + 1]
    end
    if f.a == authorId then
      count = count + (f.o == '1' and 1 or -1)
      seen = true
    end
  end
  if #entries < 1000 then
    break
  end
  start = '(' .. entries[#entries][1]
end
if count < 0 then
  count = 0
end

if ARGV[8] ~= '1' and not seen and count == 0 then
  redis.call('SET', KEYS[6], 1, 'EX', ARGV[9])
  redis.call('DEL', KEYS[3])
  return { 1, 0 }
end

-- %d: tostring() of a large number would use an exponent.
redis.call('SET', KEYS[1], string.format('%d', count))
redis.call('SET', KEYS[2], 1)
redis.call('DEL', KEYS[3], KEYS[6])
return { 1, count }
