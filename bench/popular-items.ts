import Redis from 'ioredis';
import { addDays, businessDate } from '../lib/platform/business-time';
import { cacheKeys, evictGroup } from '../lib/platform/cache';
import { config } from '../lib/platform/config';
import { db, type Queryable } from '../lib/platform/db';
import { logger } from '../lib/platform/logger';
import { cacheVariant, DEFAULT_QUERY, MAX_LIMIT, popularItems, popularItemsJson, refreshPopularItems, type PopularItemsQuery } from '../lib/popular-items/popular-items';
import { rankFromOrders } from '../lib/popular-items/ranking';
import { redis } from '../lib/platform/redis/client';
import { measure, report, reportLatency, section, type LatencyStats } from './harness';
import { measureInstanceTier } from './popular-items-instance';

/**
 * Popular items through the service code: a cache hit against a raw GET of
 * the same value (the response body stored as one string), a miss (and an
 * answer with Redis down) against the plain ranking query over the orders,
 * and the database statements that 1,000 concurrent requests over 10
 * variants cost on a cold cache; then the instance tier in front of Redis
 * (./popular-items-instance). The ranking at scale is ./popular-items-scale.
 */

const ITEMS = 200;
const ORDERS = 20_000;
const DAYS_OF_ORDERS = 40;

export async function run(): Promise<void> {
  section('popular-items: cache-aside over the ranking query');
  await seed();
  const timeZone = config().businessTimeZone;
  try {
    // The midnight job first, as in production: the rollup holds the finished days.
    await evictGroup('popular-items');
    await refreshPopularItems();
    await measureHit(timeZone);
    await measureInstanceTier();
    await measureMiss(timeZone);
    await countQueries();
  } finally {
    // The bench environment drops its database, not its Redis keys.
    await evictGroup('popular-items');
  }
}

/** Orders of up to three lines (popular items skewed low) over 40 days, a tenth of them not PAID. */
async function seed(): Promise<void> {
  await db().query(
    `INSERT INTO items (id, name, price, stock) SELECT n, 'item ' || n, 100 * n, 1000 FROM generate_series(1, :items) AS n`,
    { items: ITEMS },
  );
  await db().query(
    `INSERT INTO orders (user_id, status, total_amount, created_at)
     SELECT 1 + n % 1000, CASE WHEN n % 10 = 0 THEN 'CANCELLED' ELSE 'PAID' END, 0,
            now() - random() * (:days * interval '1 day')
     FROM generate_series(1, :orders) AS n`,
    { orders: ORDERS, days: DAYS_OF_ORDERS },
  );
  await db().query(
    `INSERT INTO order_items (order_id, item_id, quantity, unit_price)
     SELECT DISTINCT ON (order_id, item_id) order_id, item_id, quantity, 0
     FROM (SELECT o.id AS order_id, 1 + floor(power(random(), 2) * :items)::int AS item_id, 1 + (o.id + line) % 5 AS quantity
           FROM orders o CROSS JOIN generate_series(1, 3) AS line) AS lines`,
    { items: ITEMS },
  );
  await db().query('ANALYZE orders');
  await db().query('ANALYZE order_items');
  report('data', `${ITEMS} items, ${ORDERS} orders x 3 lines over ${DAYS_OF_ORDERS} days`);
}

async function measureHit(timeZone: string): Promise<void> {
  const today = businessDate(new Date(), timeZone);
  for (const query of [DEFAULT_QUERY, { days: 30, limit: MAX_LIMIT }]) {
    const body = await popularItemsJson(query);
    const hashKey = cacheKeys('popular-items').value(cacheVariant(today, query.days));
    const stringKey = `bench:popular-items:body:${query.days}:${query.limit}`;
    await redis().set(stringKey, body);

    const [rawGet, rawHget, hit] = (await measureInterleaved([
      () => redis().get(stringKey),
      () => redis().hget(hashKey, String(query.limit)),
      () => popularItemsJson(query, { instance: null }),
    ])) as [LatencyStats, LatencyStats, LatencyStats];
    const label = `days=${query.days} limit=${query.limit}, ${body.length} B`;
    reportLatency(`raw GET of the same body (baseline), ${label}`, rawGet);
    reportLatency('raw HGET of the cached body', rawHget, rawGet);
    reportLatency('hit: popularItemsJson() (1 HGET, the body as cached)', hit, rawGet);
    await redis().del(stringKey);
  }
}

async function measureMiss(timeZone: string): Promise<void> {
  const today = businessDate(new Date(), timeZone);
  const window = { from: addDays(today, -DEFAULT_QUERY.days), today, timeZone, limit: DEFAULT_QUERY.limit };
  const plain = await measure(() => rankFromOrders(db(), window), 200, 20);
  // Each miss starts from an evicted group: one more round trip than the miss itself.
  const miss = await measure(async () => {
    await evictGroup('popular-items');
    return popularItems(DEFAULT_QUERY);
  }, 200, 20);
  reportLatency('plain ranking query over the orders, through the Data API (baseline)', plain);
  reportLatency('miss: evict + popularItems() (read, lock, rollup query, store)', miss, plain);

  // Redis lost: the client keeps reconnecting to a port where nothing listens.
  const lost = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => 1000 }).on('error', () => undefined);
  await lost.connect().catch(() => undefined);
  const level = logger.getLevelName();
  logger.setLogLevel('ERROR'); // the degraded path warns on every answer
  const degraded = await measure(() => popularItems(DEFAULT_QUERY, { redis: lost, instance: null }), 200, 20);
  logger.setLogLevel(level);
  lost.disconnect();
  reportLatency('Redis down: popularItems() from the rollup', degraded, plain);
}

/** 1,000 requests, 100 in flight at a time, spread over 10 variants, starting cold. */
async function countQueries(): Promise<void> {
  await evictGroup('popular-items');
  let queries = 0;
  const database: Queryable = {
    query(sql, params) {
      queries++;
      return db().query(sql, params);
    },
  };
  const variants: PopularItemsQuery[] = Array.from({ length: 10 }, (_, i) => ({ days: 1 + i, limit: 5 }));
  const requests = 1000;
  for (let sent = 0; sent < requests; sent += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, i) => popularItems(variants[(sent + i) % variants.length]!, { database })));
  }
  report(`database statements per ${requests} requests, ${variants.length} variants, cold`, `${queries} (uncached: ${requests})`);
}

/**
 * Like harness.measure, for several functions at once, taking turns call by
 * call: on a shared machine a burst of load then slows each alike, so their
 * ratios hold even when their absolute times do not.
 */
export async function measureInterleaved(fns: Array<() => Promise<unknown>>, iterations = 5000, warmup = 500): Promise<LatencyStats[]> {
  for (let i = 0; i < warmup; i++) for (const fn of fns) await fn();
  const samples = fns.map(() => new Float64Array(iterations));
  for (let i = 0; i < iterations; i++) {
    for (let f = 0; f < fns.length; f++) {
      const started = performance.now();
      await fns[f]!();
      samples[f]![i] = performance.now() - started;
    }
  }
  return samples.map((values) => {
    values.sort();
    const at = (q: number) => values[Math.min(iterations - 1, Math.floor(q * iterations))]!;
    return { n: iterations, p50: at(0.5), p99: at(0.99), mean: values.reduce((a, b) => a + b, 0) / iterations };
  });
}
