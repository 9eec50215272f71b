import { handler as getTrending } from '../../functions/trending-items';
import { redis } from '../../lib/platform/redis/client';
import { countPaidOrder } from '../../lib/trending/counts';
import { minuteOf, trendingKeys } from '../../lib/trending/keys';
import { trendingItems, type TrendingDeps, type TrendingItems } from '../../lib/trending/trending';
import { useTestDatabase } from '../support/database';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';
import { callPay, freshRows, idempotencyKey, unreachableRedis } from '../support/points';
import { scanAll, testRedis, unlinkMatching } from '../support/redis-nodes';

/**
 * GET /items/trending against real Redis and PostgreSQL (through the Data
 * API): orders paid through the real pay path, orders written straight to
 * the table (as if their count had failed after the commit), a controllable
 * clock for the window's edges, lost counts rebuilt exactly, Redis down.
 */

const t = useTestDatabase();
const fresh = freshRows(() => t.pg);
const prefix = process.env.REDIS_KEY_PREFIX ?? '';
const admin = testRedis();

afterAll(async () => {
  admin.disconnect();
});

beforeEach(async () => {
  await t.pg.query('TRUNCATE orders, order_items');
  await dropCounts();
});

/** Every trending key of this file: what a FLUSHALL does to trending, without flushing the shared Redis. */
const dropCounts = () => unlinkMatching(admin, `${prefix}trending:*`);

/** No instance memory, and a check of the counts against the table at every read. */
const checked = (now?: number): TrendingDeps => ({ instance: null, database: t.db, checkIntervalMs: 1, ...(now === undefined ? {} : { now: () => now }) });

/** An order written straight to the table, `minutesAgo` whole minutes before `at`'s minute (30 s into it). */
async function insertOrder(lines: [itemId: number, quantity: number][], at: number, minutesAgo = 0): Promise<number> {
  const createdMs = (minuteOf(at) - minutesAgo) * 60_000 + 30_000;
  const { rows } = await t.pg.query<{ id: string }>(
    `INSERT INTO orders (user_id, status, total_amount, created_at) VALUES (1, 'PAID', 0, to_timestamp($1 / 1000.0)) RETURNING id`,
    [createdMs],
  );
  const orderId = Number(rows[0]!.id);
  for (const [itemId, quantity] of lines) {
    await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, $2, $3, 0)', [orderId, itemId, quantity]);
  }
  return orderId;
}

/** How many orders Redis counted, over every minute. */
async function countedInRedis(): Promise<number> {
  const keys = await scanAll(admin, `${prefix}trending:{trending}:orders:*`);
  const sizes = await Promise.all(keys.map((key) => admin.hlen(key)));
  return sizes.reduce((sum, size) => sum + size - 1, 0); // each hash also holds its `sum`
}

const ranking = (answer: TrendingItems) => answer.items.map((item) => [item.itemId, item.soldQuantity]);

async function call(query: string) {
  return getTrending(httpEvent({ routeKey: 'GET /items/trending', userId: 7, rawQueryString: query }), lambdaContext());
}

it('ranks the paid orders by quantity, ties to the lower itemId, with names and prices from the items table', async () => {
  const user = await fresh.user(1_000_000);
  const [a, b, c] = [await fresh.item(100, 1000), await fresh.item(250, 1000), await fresh.item(300, 1000)];
  for (const items of [
    [{ itemId: c, quantity: 3 }],
    [{ itemId: b, quantity: 2 }, { itemId: a, quantity: 1 }],
    [{ itemId: a, quantity: 2 }],
    [{ itemId: b, quantity: 1 }],
  ]) {
    expect((await callPay(user, { items })).statusCode).toBe(201);
  }
  const result = await call('minutes=5&limit=2');
  expect(result.statusCode).toBe(200);
  const body = bodyOf<TrendingItems>(result);
  expect(body).toEqual({
    minutes: 5,
    limit: 2,
    asOf: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
    items: [
      // a, b and c all sold 3: the lower ids first
      { rank: 1, itemId: a, name: `item ${a}`, price: 100, soldQuantity: 3 },
      { rank: 2, itemId: b, name: `item ${b}`, price: 250, soldQuantity: 3 },
    ],
  });
  expect(Math.abs(Date.parse(body.asOf) - Date.now())).toBeLessThan(60_000);
  expect(ranking(await trendingItems({ minutes: 10, limit: 10 }, checked()))).toEqual([
    [a, 3],
    [b, 3],
    [c, 3],
  ]);
});

it.each([
  ['minutes=0', 'minutes'],
  ['minutes=61', 'minutes'],
  ['minutes=010', 'minutes'],
  ['minutes=1e1', 'minutes'],
  ['minutes=+5', 'minutes'],
  ['limit=51', 'limit'],
  ['limit=abc', 'limit'],
  ['limit=5&limit=5', 'limit'],
])('answers 400 to %s', async (query, field) => {
  const result = await call(query);
  expect(result.statusCode).toBe(400);
  expect(bodyOf(result)).toMatchObject({ code: 'VALIDATION_ERROR', detail: expect.stringContaining(field) });
});

it('counts a keyed order once, however often it is replayed', async () => {
  const user = await fresh.user(10_000);
  const item = await fresh.item(10, 100);
  const headers = idempotencyKey('trending-replay');
  for (let i = 0; i < 3; i++) expect((await callPay(user, { items: [{ itemId: item, quantity: 4 }] }, headers)).statusCode).toBe(201);
  // Counted by the pay path itself, before any read could repair anything.
  expect(await countedInRedis()).toBe(1);
  expect(ranking(await trendingItems({ minutes: 1, limit: 5 }, { instance: null, database: t.db }))).toEqual([[item, 4]]);
  expect(ranking(await trendingItems({ minutes: 1, limit: 5 }, checked()))).toEqual([[item, 4]]);
});

it('counts an order for `minutes` to `minutes` + 1 minutes after it was paid, by the clock it is given', async () => {
  const at = Date.now();
  const item = await fresh.item(10, 100);
  await insertOrder([[item, 2]], at, 10);
  const start = minuteOf(at) * 60_000;
  // Its minute is the oldest of a 10-minute window at any instant of the current minute...
  expect(ranking(await trendingItems({ minutes: 10, limit: 5 }, checked(start)))).toEqual([[item, 2]]);
  expect(ranking(await trendingItems({ minutes: 10, limit: 5 }, checked(start + 59_999)))).toEqual([[item, 2]]);
  // ...and out of it from the next minute on; a wider window still has it.
  expect(ranking(await trendingItems({ minutes: 10, limit: 5 }, checked(start + 60_000)))).toEqual([]);
  expect(ranking(await trendingItems({ minutes: 11, limit: 5 }, checked(start + 60_000)))).toEqual([[item, 2]]);
  expect(ranking(await trendingItems({ minutes: 9, limit: 5 }, checked(start)))).toEqual([]);
});

it('rebuilds lost counts exactly from the orders on first use, and counts an order whose count failed', async () => {
  const user = await fresh.user(100_000);
  const [a, b] = [await fresh.item(10, 1000), await fresh.item(20, 1000)];
  for (let i = 0; i < 3; i++) await callPay(user, { items: [{ itemId: a, quantity: 2 }, { itemId: b, quantity: 1 }] });
  const at = Date.now();
  await insertOrder([[b, 4]], at, 3); // as if its count had failed right after the commit
  const before = await trendingItems({ minutes: 10, limit: 5 }, checked());
  expect(ranking(before)).toEqual([
    [b, 7],
    [a, 6],
  ]);

  expect(await dropCounts()).toBeGreaterThan(0);
  // The lease went with the rest: the very first read after the loss checks and rebuilds.
  expect(ranking(await trendingItems({ minutes: 10, limit: 5 }, { instance: null, database: t.db }))).toEqual(ranking(before));
  // Rebuilding twice (a second reader, a pay counting the same order) counts nothing twice.
  expect(ranking(await trendingItems({ minutes: 10, limit: 5 }, checked()))).toEqual(ranking(before));
});

it('takes out orders the table no longer holds', async () => {
  const at = Date.now();
  const item = await fresh.item(10, 100);
  const gone = await insertOrder([[item, 5]], at, 1);
  await insertOrder([[item, 1]], at, 1);
  expect(ranking(await trendingItems({ minutes: 5, limit: 5 }, checked()))).toEqual([[item, 6]]);
  await t.pg.query('DELETE FROM order_items WHERE order_id = $1', [gone]);
  await t.pg.query('DELETE FROM orders WHERE id = $1', [gone]);
  expect(ranking(await trendingItems({ minutes: 5, limit: 5 }, checked()))).toEqual([[item, 1]]);
});

it('does not fail a paid order when its count cannot reach Redis', async () => {
  const unreachable = unreachableRedis();
  await expect(countPaidOrder({ orderId: 1, minute: minuteOf(Date.now()), lines: '1:1' }, unreachable)).resolves.toBeUndefined();
  unreachable.disconnect();
});

it('answers from the orders table while Redis is down, the same ranking', async () => {
  const at = Date.now();
  const [a, b] = [await fresh.item(10, 100), await fresh.item(20, 100)];
  await insertOrder([[a, 1], [b, 3]], at, 2);
  await insertOrder([[a, 2]], at, 0);
  const fromRedis = await trendingItems({ minutes: 5, limit: 5 }, checked());
  const unreachable = unreachableRedis();
  const fromTable = await trendingItems({ minutes: 5, limit: 5 }, { ...checked(), redis: unreachable });
  unreachable.disconnect();
  expect(ranking(fromRedis)).toEqual([
    [a, 3],
    [b, 3],
  ]);
  expect(fromTable.items).toEqual(fromRedis.items);
});

it('keeps every key of trending in one hash slot, with an expiry', async () => {
  const user = await fresh.user(1000);
  const item = await fresh.item(10, 100);
  await callPay(user, { items: [{ itemId: item, quantity: 1 }] });
  const minute = minuteOf(Date.now());
  const client = redis();
  const slots = await Promise.all(
    [trendingKeys.sales(minute), trendingKeys.orders(minute), trendingKeys.checkLease].map((key) => admin.call('CLUSTER', 'KEYSLOT', `${prefix}${key}`).catch(() => 'standalone')),
  );
  if (!slots.includes('standalone')) expect(new Set(slots).size).toBe(1);
  const ttl = await client.ttl(trendingKeys.sales(minute));
  expect(ttl).toBeGreaterThan(60 * 60);
  expect(ttl).toBeLessThanOrEqual(63 * 60);
});
