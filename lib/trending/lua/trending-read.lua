-- A trending ranking: merges the newest minutes' sales sets, best first,
-- ties to the lower item id, and says whether this caller should check the
-- counts against the orders table (a lease: one check per interval across
-- every instance). The lease is written without the request's cutoff: one
-- set late only delays the next check by its lifetime, which nothing waits on.
-- KEYS[1]: the check lease; KEYS[2..]: minute sales ZSETs, oldest first (one slot)
-- ARGV[1]: how many of the newest minutes to merge; ARGV[2]: how many items
-- to return; ARGV[3]: the lease's lifetime in ms (0: do not take it)
-- Reply: { 1 when this caller took the lease, else 0, item id, quantity, ... }
local check = 0
if tonumber(ARGV[3]) > 0 and redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then
  check = 1
end
local merged = { 'ZUNION', tonumber(ARGV[1]) }
for i = #KEYS - tonumber(ARGV[1]) + 1, #KEYS do
  merged[#merged + 1] = KEYS[i]
end
merged[#merged + 1] = 'WITHSCORES'
local union = redis.call(unpack(merged))
local items = {}
for i = 1, #union, 2 do
  local quantity = tonumber(union[i + 1])
  if quantity > 0 then
    items[#items + 1] = { tonumber(union[i]), quantity }
  end
end
table.sort(items, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)
local reply = { check }
for i = 1, math.min(#items, tonumber(ARGV[2])) do
  reply[#reply + 1] = items[i][1]
  reply[#reply + 1] = items[i][2]
end
return reply
