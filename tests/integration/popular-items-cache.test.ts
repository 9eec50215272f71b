import Redis from 'ioredis';
import { handler as evict } from '../../functions/evict-popular-items';
import { handler as getPopular } from '../../functions/popular-items';
import { addDays, businessDate } from '../../lib/platform/business-time';
import { cacheKeys, evictGroup, REDIS_BACKOFF_MS, type CacheSettings } from '../../lib/platform/cache';
import { config } from '../../lib/platform/config';
import type { Queryable } from '../../lib/platform/db';
import { cacheVariant, DEFAULT_QUERY, popularItems, rankPopularItems, type PopularItems } from '../../lib/popular-items/popular-items';
import { redis } from '../../lib/platform/redis/client';
import { useTestDatabase } from '../support/database';
import { sellYesterday } from '../support/sales';
import { testRedis } from '../support/redis-nodes';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';

/**
 * Popular items served cache-aside from real Redis, computed through the real
 * Data API path: the cache hides new rows until the midnight eviction, a cold
 * stampede costs one query, the eviction drops every variant and re-warms,
 * and Redis being down only costs speed.
 */

const t = useTestDatabase();
const keys = cacheKeys('popular-items');
const zone = 'Asia/Seoul';
const today = () => businessDate(new Date(), zone);

beforeAll(async () => {
  await t.pg.query(`INSERT INTO items (id, name, price, stock) VALUES (1, 'Americano', 4500, 100), (2, 'Latte', 5000, 100), (3, 'Bagel', 3200, 100)`);
});

beforeEach(async () => {
  await t.pg.query('TRUNCATE orders, order_items');
  await evictGroup('popular-items');
});


/**
 * The real Data API database, counting the rankings sent through it: each
 * starts with the pruned ranking statement; one that cannot prove its answer
 * (days not rolled up yet) adds the full ranking, and one that counted a
 * finished day from the orders adds the statement storing it. Those two are
 * counted apart.
 */
function countingDatabase(): Queryable & { queries: number; others: number } {
  return {
    queries: 0,
    others: 0,
    query(sql, params) {
      if (sql.includes('daily_top')) this.queries++;
      else this.others++;
      return t.db.query(sql, params);
    },
  };
}

/** A generous wait budget, so a slow machine cannot turn waiters into extra queries. */
const patient: CacheSettings = { ...config().cache, waitBudgetMs: 30_000 };

async function getDefault(): Promise<PopularItems> {
  const result = await getPopular(httpEvent({ routeKey: 'GET /items/popular', userId: 7 }), lambdaContext());
  expect(result.statusCode).toBe(200);
  return bodyOf<PopularItems>(result);
}

it('answers the 3 days before today, hides later rows until the eviction, then shows them', async () => {
  await sellYesterday(t.pg, 2, 4);

  const first = await getDefault();
  expect(first).toEqual({
    days: 3,
    limit: 5,
    from: addDays(today(), -3),
    to: addDays(today(), -1),
    items: [{ rank: 1, itemId: 2, name: 'Latte', price: 5000, soldQuantity: 4 }],
  });

  await sellYesterday(t.pg, 1, 9);
  expect(await getDefault()).toEqual(first);

  await evict();
  expect((await getDefault()).items).toEqual([
    { rank: 1, itemId: 1, name: 'Americano', price: 4500, soldQuantity: 9 },
    { rank: 2, itemId: 2, name: 'Latte', price: 5000, soldQuantity: 4 },
  ]);
});

it('sends exactly one ranking query for 100 concurrent requests on a cold cache, across instances', async () => {
  await sellYesterday(t.pg, 3, 2);
  const database = countingDatabase();
  // Four Lambda instances: four connections, sharing nothing but Redis.
  const instances = Array.from({ length: 4 }, () => testRedis({ keyPrefix: config().redis.keyPrefix }, config().redis.url));
  try {
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => popularItems(DEFAULT_QUERY, { database, redis: instances[i % 4], cacheSettings: patient })),
    );

    expect(database.queries).toBe(1);
    expect(new Set(answers.map((answer) => JSON.stringify(answer))).size).toBe(1);
    expect(answers[0]!.items).toEqual([{ rank: 1, itemId: 3, name: 'Bagel', price: 3200, soldQuantity: 2 }]);
  } finally {
    instances.forEach((instance) => instance.disconnect());
  }
});

it('sends one query per days value when a stampede asks for ten variants at once: every limit shares it', async () => {
  await sellYesterday(t.pg, 1, 3);
  await sellYesterday(t.pg, 2, 2);
  const database = countingDatabase();
  const variants = Array.from({ length: 10 }, (_, i) => ({ days: 1 + (i % 5), limit: 1 + Math.floor(i / 5) }));

  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, i) => popularItems(variants[i % 10]!, { database, cacheSettings: patient })),
  );

  expect(database.queries).toBe(5);
  answers.forEach((answer, i) => {
    expect(answer).toMatchObject(variants[i % 10]!);
    expect(answer.items).toEqual(
      [
        { rank: 1, itemId: 1, name: 'Americano', price: 4500, soldQuantity: 3 },
        { rank: 2, itemId: 2, name: 'Latte', price: 5000, soldQuantity: 2 },
      ].slice(0, answer.limit),
    );
  });
});

it('keeps variants for another business date apart, and the TTL ends after the next midnight', async () => {
  const database = countingDatabase();
  const noonKst = new Date('2024-03-10T03:00:00Z');

  const answer = await popularItems(DEFAULT_QUERY, { database, now: () => noonKst });

  expect(answer).toMatchObject({ from: '2024-03-07', to: '2024-03-09' });
  const ttl = await redis().pttl(keys.value(cacheVariant('2024-03-10', 3)));
  // 12 hours to midnight KST, plus at most the jitter.
  expect(ttl).toBeGreaterThan(12 * 3_600_000 - 60_000);
  expect(ttl).toBeLessThanOrEqual(12 * 3_600_000 + config().cache.ttlJitterMs);
  await popularItems(DEFAULT_QUERY, { database, now: () => noonKst });
  expect(database.queries).toBe(1);
});

describe('evict-popular-items', () => {
  it('drops every cached variant of every date, then re-warms the default one', async () => {
    await sellYesterday(t.pg, 1, 5);
    const older = () => new Date('2024-03-10T03:00:00Z');
    await Promise.all([
      popularItems({ days: 1, limit: 5 }),
      popularItems({ days: 30, limit: 50 }),
      popularItems(DEFAULT_QUERY),
      popularItems(DEFAULT_QUERY, { now: older }),
    ]);

    const summary = await evict();

    expect(summary).toEqual({ rolledUp: 30, evicted: 4, warmed: { days: 3, limit: 5, from: addDays(today(), -3), to: addDays(today(), -1), items: 1 } });
    const prefixed = (key: string) => `${config().redis.keyPrefix}${key}`;
    expect(await redis().smembers(keys.registry)).toEqual([prefixed(keys.value(cacheVariant(today(), 3)))]);
    expect(await redis().exists(keys.value(cacheVariant(today(), 1)), keys.value(cacheVariant(today(), 30)), keys.value(cacheVariant('2024-03-10', 3)))).toBe(0);

    // The first caller of the day is served without a query.
    const database = countingDatabase();
    expect((await popularItems(DEFAULT_QUERY, { database })).items).toEqual([{ rank: 1, itemId: 1, name: 'Americano', price: 4500, soldQuantity: 5 }]);
    expect(database.queries).toBe(0);
  });

  it('shows orders inserted for past days since the last eviction, and a limit larger than the warmed one', async () => {
    await sellYesterday(t.pg, 1, 5);
    expect((await popularItems(DEFAULT_QUERY)).items).toHaveLength(1);
    await sellYesterday(t.pg, 2, 7);
    await t.pg.query(
      `WITH o AS (
         INSERT INTO orders (user_id, total_amount, created_at)
         VALUES (1, 0, ((now() AT TIME ZONE $1)::date - 20 + time '09:00') AT TIME ZONE $1) RETURNING id)
       INSERT INTO order_items (order_id, item_id, quantity, unit_price) SELECT id, 3, 50, 0 FROM o`,
      [zone],
    );

    await evict();

    expect((await popularItems({ days: 3, limit: 50 })).items.map((item) => [item.itemId, item.soldQuantity])).toEqual([[2, 7], [1, 5]]);
    expect((await popularItems({ days: 30, limit: 2 })).items.map((item) => [item.itemId, item.soldQuantity])).toEqual([[3, 50], [2, 7]]);
  });

  it('is harmless to run twice', async () => {
    await sellYesterday(t.pg, 2, 1);
    const before = await popularItems(DEFAULT_QUERY);

    const first = await evict();
    const second = await evict();

    expect(first.evicted).toBe(1);
    expect(second).toEqual({ ...first, evicted: 1 }); // only the value the first run warmed
    expect(await redis().scard(keys.registry)).toBe(1);
    expect(await popularItems(DEFAULT_QUERY)).toEqual(before);
  });
});

it('answers from the database when Redis is down, instead of failing', async () => {
  await sellYesterday(t.pg, 1, 3);
  // Nothing listens on port 1; with no retry strategy the client gives up by itself, leaving nothing to close.
  const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null }).on('error', () => {});
  const database = countingDatabase();

  const answer = await popularItems(DEFAULT_QUERY, { database, redis: down });

  expect(answer).toEqual(await rankPopularItems(t.db, DEFAULT_QUERY, today(), zone));
  expect(answer.items).toHaveLength(1);
  expect(database.queries).toBe(1);
});

it('answers through the handler from the database within about a second while Redis does not answer, then fast', async () => {
  await sellYesterday(t.pg, 1, 3);
  const client = redis();
  // A paused Redis: commands are accepted and never answered, until they time out.
  const stall = jest.spyOn(client, 'sendCommand').mockImplementation((...[command]) => {
    setTimeout(() => command.reject(new Error('Command timed out')), config().redis.commandTimeoutMs);
    return command.promise;
  });
  try {
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const answer = await getDefault();
      expect(answer.items).toEqual([{ rank: 1, itemId: 1, name: 'Americano', price: 4500, soldQuantity: 3 }]);
      expect(performance.now() - started).toBeLessThan(i === 0 ? 2000 : 500);
    }
    expect(stall).toHaveBeenCalledTimes(1); // then skipped while it stays silent
  } finally {
    stall.mockRestore();
  }
  await new Promise((resolve) => setTimeout(resolve, REDIS_BACKOFF_MS));
  expect((await getDefault()).items).toHaveLength(1); // served, and cached, again
  expect(await redis().exists(keys.value(cacheVariant(today(), 3)))).toBe(1);
});
