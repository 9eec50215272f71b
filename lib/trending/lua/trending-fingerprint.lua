-- What the trending counts hold, minute by minute, for a trending read to
-- compare with the orders table: how many orders each minute counted, and
-- the sum of their ids mod 1000000007 (see trending-add.lua). Read only.
-- KEYS[1..n]: the minutes' order HASHes, oldest first (one slot)
-- ARGV: none
-- Reply: { orders, sum } per key, flattened (0, 0 for a minute not held)
local reply = {}
for i = 1, #KEYS do
  local orders = redis.call('HLEN', KEYS[i])
  if orders > 0 then orders = orders - 1 end -- the `sum` field
  reply[#reply + 1] = orders
  reply[#reply + 1] = tonumber(redis.call('HGET', KEYS[i], 'sum') or '0')
end
return reply
