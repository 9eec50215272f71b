import Redis from 'ioredis';
import { InstanceTier } from '../lib/platform/cache/instance-tier';
import { config } from '../lib/platform/config';
import { db } from '../lib/platform/db';
import { payOrder } from '../lib/points/orders';
import { countPaidOrder, readTop } from '../lib/trending/counts';
import { minuteOf, spanOf, trendingKeys } from '../lib/trending/keys';
import { trendingItemsJson } from '../lib/trending/trending';
import { startRedisServer } from '../tests/support/redis-server';
import { countCommands, measure, report, reportLatency, section } from './harness';
import { measureInterleaved } from './popular-items';
import { commandsSince } from './popular-items-instance';

/**
 * Trending on a Redis of the bench's own (INFO commandstats counts this
 * bench's commands only): what counting adds to a paid order, the rebuild
 * of lost counts from the orders table, and a read against a raw ZUNION of
 * the same minute sets.
 */

const ITEMS = 200;
const ORDERS = 20_000;
const MINUTES = 10;

export async function run(): Promise<void> {
  section('trending: per-minute sorted sets, counted by the pay path');
  const server = await startRedisServer();
  const client = new Redis(server.url);
  try {
    await seed();
    await measurePay(client);
    await measureReads(client);
  } finally {
    client.disconnect();
    await server.stop();
  }
}

/** Items, one rich buyer, and ORDERS orders of up to three lines over the last MINUTES minutes. */
async function seed(): Promise<void> {
  await db().query(`INSERT INTO items (id, name, price, stock) SELECT n, 'item ' || n, 10 * n, 1000000 FROM generate_series(1, :items) AS n ON CONFLICT (id) DO UPDATE SET stock = 1000000`, { items: ITEMS });
  await db().query(`INSERT INTO users (id, name, point_balance) VALUES (1, 'buyer', 100000000) ON CONFLICT (id) DO UPDATE SET point_balance = 100000000`);
  await db().query(
    `INSERT INTO orders (user_id, status, total_amount, created_at)
     SELECT 999999, 'PAID', 0, now() - random() * (:minutes * interval '1 minute') FROM generate_series(1, :orders)`,
    { orders: ORDERS, minutes: MINUTES },
  );
  await db().query(
    `INSERT INTO order_items (order_id, item_id, quantity, unit_price)
     SELECT DISTINCT ON (order_id, item_id) order_id, item_id, quantity, 0
     FROM (SELECT o.id AS order_id, 1 + floor(power(random(), 2) * :items)::int AS item_id, 1 + (o.id + line) % 5 AS quantity
           FROM orders o CROSS JOIN generate_series(1, 3) AS line WHERE o.user_id = 999999) AS lines`,
    { items: ITEMS },
  );
  await db().query('ANALYZE orders');
  report('data', `${ITEMS} items, ${ORDERS} orders x up to 3 lines over the last ${MINUTES} minutes`);
}

async function measurePay(client: Redis): Promise<void> {
  const pay = () => payOrder({ userId: 1, items: [{ itemId: 1, quantity: 1 }, { itemId: 2, quantity: 2 }] }, { redis: client, database: db() });
  const calls = countCommands(client);
  await client.config('RESETSTAT');
  const pays = 200;
  for (let i = 0; i < pays; i++) await pay();
  const perPay = { calls: calls.take() / pays, commands: (await commandsSince(client)) / pays };
  // The count alone, of orders it has not seen (a real count, not a no-op replay).
  let fakeId = 10_000_000;
  const count = () => countPaidOrder({ orderId: fakeId++, minute: minuteOf(Date.now()), lines: '1:1,2:2' }, client);
  calls.take();
  await client.config('RESETSTAT');
  for (let i = 0; i < pays; i++) await count();
  const perCount = { calls: calls.take() / pays, commands: (await commandsSince(client)) / pays };
  report('Redis calls per paid order (lock, its release, the count)', `${perPay.calls.toFixed(2)}, of which counting: ${perCount.calls.toFixed(2)} (one EVALSHA)`);
  report('  commands Redis ran per paid order (scripts\' own included)', `${perPay.commands.toFixed(2)}, of which counting: ${perCount.commands.toFixed(2)}`);

  const [withCount, countAlone] = await measureInterleaved([pay, count], 1000, 100);
  const without = { ...withCount!, p50: withCount!.p50 - countAlone!.p50, p99: withCount!.p99 - countAlone!.p99 };
  reportLatency('pay without the count (the pay minus the count alone: baseline)', without);
  reportLatency('pay with the count (payOrder())', withCount!, without);
  report('  what counting adds to a pay (goal: under x1.10)', `x${(withCount!.p50 / without.p50).toFixed(3)} p50`);
}

async function measureReads(client: Redis): Promise<void> {
  const current = minuteOf(Date.now());
  const deps = { redis: client, database: db(), instance: null, checkIntervalMs: 600_000 };
  // The first read holds the check lease and finds every minute missing: the rebuild of lost counts.
  const started = performance.now();
  await trendingItemsJson({ minutes: MINUTES, limit: 10 }, deps);
  report(`rebuild of ${MINUTES + 1} lost minutes (${ORDERS} orders) from the orders table, first read`, `${(performance.now() - started).toFixed(0)} ms`);
  const bytes = await Promise.all(spanOf(current).slice(-(MINUTES + 1)).flatMap((minute) => [trendingKeys.sales(minute), trendingKeys.orders(minute)].map((key) => client.memory('USAGE', key))));
  const perMinute = bytes.reduce<number>((sum, b) => sum + Number(b ?? 0), 0) / (MINUTES + 1);
  report(`Redis memory per minute of ${Math.round(ORDERS / MINUTES)} orders`, `${(perMinute / 1024).toFixed(0)} KiB (a 60-minute window keeps 62 minutes)`);

  const keys = spanOf(current).slice(-(MINUTES + 1)).map(trendingKeys.sales);
  const rawUnion = () => client.zunion(keys.length, ...keys, 'WITHSCORES');
  const tier = new InstanceTier(config().cache.instance);
  const [raw, script, service, memory] = await measureInterleaved(
    [
      rawUnion,
      () => readTop(current, MINUTES, 50, 0, client),
      () => trendingItemsJson({ minutes: MINUTES, limit: 10 }, deps),
      () => trendingItemsJson({ minutes: MINUTES, limit: 10 }, { ...deps, instance: tier }),
    ],
    1000,
    100,
  );
  reportLatency(`raw ZUNION WITHSCORES of the same ${keys.length} minute sets (baseline)`, raw!);
  reportLatency('trending-read script (ZUNION, sort, top 50 in Lua)', script!, raw);
  reportLatency('trendingItemsJson() from Redis (the script + names in one query)', service!, raw);
  reportLatency('trendingItemsJson() from memory inside δ', memory!, raw);
  // The reads above left their long lease: each of these frees it first (one DEL more).
  const check = await measure(async () => {
    await client.del(trendingKeys.checkLease);
    return trendingItemsJson({ minutes: MINUTES, limit: 10 }, deps);
  }, 100, 10);
  reportLatency('a read that takes the check lease (at most one a second), with a DEL', check, raw);
}
