-- Counts paid orders in their minute's trending counts, each at most once:
-- the minute's order hash is the marker (HSETNX), so a retry, a replay or a
-- rebuild that meets an order already counted adds nothing.
-- KEYS[1]: the minute's sales ZSET (item id -> quantity); KEYS[2]: the
-- minute's order HASH (order id -> its lines "item:qty,...", and field `sum`:
-- the sum of the order ids mod 1000000007, the fingerprint a trending read
-- compares with the orders table); both in the {trending} slot
-- ARGV[1]: the request's cutoff (epoch ms, lib/platform/redis); ARGV[2]: when
-- the minute's keys expire (epoch s); ARGV[3..]: order id, lines, alternating
-- Reply: how many of the orders were not counted before (and now are);
-- error EXPIRED when the request gave up before this ran (nothing written)
-- The deadline check, P and held_sum: trending-orders.prelude.lua.
local sum = held_sum()
local added = 0
for i = 3, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    for item, quantity in string.gmatch(ARGV[i + 1], '(%d+):(%d+)') do
      redis.call('ZINCRBY', KEYS[1], quantity, item)
    end
    sum = (sum + tonumber(ARGV[i]) % P) % P
    added = added + 1
  end
end
if added > 0 then
  redis.call('HSET', KEYS[2], 'sum', string.format('%d', sum))
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
  redis.call('EXPIREAT', KEYS[2], ARGV[2])
end
return added
