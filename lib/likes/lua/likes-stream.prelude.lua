-- Reading a bucket's change STREAM, shared by likes-rebuild-post.lua,
-- likes-rebuild-author.lua, likes-sync-read.lua and likes-sync-trim.lua
-- (joined in front of each when declared, lib/likes/scripts.ts):
-- entry_fields, parse_id and id_before. entryAfter in lib/likes/sync.ts is
-- id_before's TypeScript twin (tests/integration/likes-stream-ids.test.ts
-- checks that they agree).

-- An XRANGE entry's fields as a table (s, p, u, a, o, t: see like.lua's XADD).
local function entry_fields(entry)
  local f = {}
  local fields = entry[2]
  for i = 1, #fields, 2 do
    f[fields[i]] = fields[i + 1]
  end
  return f
end

-- A stream entry id "<ms>-<n>" as two numbers.
local function parse_id(id)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(n)
end

-- Does entry id a sort before b?
local function id_before(a, b)
  local am, an = parse_id(a)
  local bm, bn = parse_id(b)
  return am < bm or (am == bm and an < bn)
end
