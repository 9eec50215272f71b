-- Takes orders the database no longer holds out of their minute's trending
-- counts (a repair: orders are never deleted by the API). An order not
-- counted is skipped, so running it twice removes nothing more.
-- KEYS[1]: the minute's sales ZSET; KEYS[2]: the minute's order HASH (see
-- trending-add.lua; same slot)
-- ARGV[1]: the request's cutoff (epoch ms, lib/platform/redis); ARGV[2..]: order ids
-- Reply: how many orders were removed; error EXPIRED when the request gave up
-- before this ran (nothing written)
-- The deadline check, P and held_sum: trending-orders.prelude.lua.
local sum = held_sum()
local removed = 0
for i = 2, #ARGV do
  local lines = redis.call('HGET', KEYS[2], ARGV[i])
  if lines then
    for item, quantity in string.gmatch(lines, '(%d+):(%d+)') do
      if tonumber(redis.call('ZINCRBY', KEYS[1], -tonumber(quantity), item)) <= 0 then
        redis.call('ZREM', KEYS[1], item)
      end
    end
    redis.call('HDEL', KEYS[2], ARGV[i])
    sum = (sum - tonumber(ARGV[i]) % P + P) % P
    removed = removed + 1
  end
end
if removed > 0 then
  if redis.call('HLEN', KEYS[2]) <= 1 then
    redis.call('DEL', KEYS[1], KEYS[2])
  else
    redis.call('HSET', KEYS[2], 'sum', string.format('%d', sum))
  end
end
return removed
