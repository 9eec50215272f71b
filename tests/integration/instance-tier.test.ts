import type * as CacheModule from '../../lib/platform/cache';
import type * as TierModule from '../../lib/platform/cache/instance-tier';
import type * as PopularModule from '../../lib/popular-items/popular-items';
import type * as RedisModule from '../../lib/platform/redis/client';
import { config } from '../../lib/platform/config';
import type { Queryable } from '../../lib/platform/db';
import { useTestDatabase } from '../support/database';
import { sellYesterday } from '../support/sales';
import { recordCommands } from '../support/redis-commands';
import { unreachableRedis } from '../support/points';

/**
 * The instance tier (lib/platform/cache/instance-tier) through popular items,
 * against real Redis and PostgreSQL. Two copies of the modules
 * (jest.isolateModules) play two Lambda instances: each has its own memory,
 * its own Redis connection and its own wall clock, and they share only Redis.
 * An eviction run by one is seen by the other once δ has passed on its
 * clock, and never later; inside δ a hit costs no Redis command at all.
 */

const t = useTestDatabase();
const zone = 'Asia/Seoul';
const DELTA = 1000;
const settings = { freshMs: DELTA, maxEntries: 100, maxBytes: 1 << 20 };

interface Instance {
  cache: typeof CacheModule;
  tiers: typeof TierModule;
  popular: typeof PopularModule;
  redis: typeof RedisModule;
  client: RedisModule.RedisClient;
  tier: TierModule.InstanceTier;
  /** Moves this instance's wall clock. */
  advance(ms: number): void;
  /** Redis commands this instance sent. */
  commands(): string[];
  read(database?: Queryable): Promise<string>;
}

/** Today, fixed: the business date must not change while the instances' clocks move. */
const today = new Date();

function instance(): Instance {
  let modules!: { cache: typeof CacheModule; tiers: typeof TierModule; popular: typeof PopularModule; redis: typeof RedisModule };
  jest.isolateModules(() => {
    modules = {
      cache: require('../../lib/platform/cache') as typeof CacheModule,
      tiers: require('../../lib/platform/cache/instance-tier') as typeof TierModule,
      popular: require('../../lib/popular-items/popular-items') as typeof PopularModule,
      redis: require('../../lib/platform/redis/client') as typeof RedisModule,
    };
  });
  let clock = Date.now();
  const tier = new modules.tiers.InstanceTier(settings, () => clock);
  const client = modules.redis.redis();
  const sent = recordCommands(client);
  return {
    ...modules,
    client,
    tier,
    advance: (ms) => void (clock += ms),
    commands: () => sent.splice(0),
    read: (database = t.db) =>
      modules.popular.popularItemsJson({ days: 3, limit: 5 }, { database, instance: tier, now: () => today, timeZone: zone }),
  };
}

let a: Instance;
let b: Instance;

beforeAll(async () => {
  await t.pg.query(`INSERT INTO items (id, name, price, stock) VALUES (1, 'Americano', 4500, 100), (2, 'Latte', 5000, 100)`);
  a = instance();
  b = instance();
});

afterAll(async () => {
  await Promise.all([a.redis.closeRedis(), b.redis.closeRedis()]);
});

beforeEach(async () => {
  await t.pg.query('TRUNCATE orders, order_items');
  // Through both copies, so neither starts a test with the last one's memory.
  await a.cache.evictGroup('popular-items');
  await b.cache.evictGroup('popular-items');
  a.commands();
  b.commands();
});


const soldOf = (body: string) => (JSON.parse(body) as { items: { itemId: number; soldQuantity: number }[] }).items.map((i) => [i.itemId, i.soldQuantity]);

it('answers a warm hit from memory with no Redis command inside δ, and revalidates with one GET after it', async () => {
  await sellYesterday(t.pg, 2, 4);
  const first = await b.read();
  expect(b.commands().length).toBeGreaterThan(0); // the miss: read, lock, fill
  for (let i = 0; i < 50; i++) expect(await b.read()).toBe(first);
  expect(b.commands()).toEqual([]);

  b.advance(DELTA);
  expect(await b.read()).toBe(first);
  expect(b.commands()).toEqual(['get']);
  expect(await b.read()).toBe(first);
  expect(b.commands()).toEqual([]);
});

it('shows an eviction run by another instance once δ has passed on this one, never later', async () => {
  await sellYesterday(t.pg, 2, 4);
  const before = await a.read();
  expect(await b.read()).toBe(before);
  await sellYesterday(t.pg, 1, 9); // hidden by the cache until the eviction
  expect(await b.read()).toBe(before);
  b.commands();

  b.advance(DELTA - 1);
  await a.cache.evictGroup('popular-items');
  // The instance that evicted sees it at once; the other may still answer
  // from memory inside δ of its last check, which was before the eviction.
  expect(soldOf(await a.read())).toEqual([
    [1, 9],
    [2, 4],
  ]);
  expect(await b.read()).toBe(before);
  expect(b.commands()).toEqual([]);
  b.advance(1);
  expect(soldOf(await b.read())).toEqual([
    [1, 9],
    [2, 4],
  ]);
  expect(b.commands()).toEqual(['get', 'hget']);
});

it('revalidates an entry after a long freeze, and refills it when an eviction happened meanwhile', async () => {
  await sellYesterday(t.pg, 2, 4);
  const before = await b.read();
  b.commands();

  // Frozen for ten minutes (Lambda keeps the memory; a monotonic clock might not have moved).
  b.advance(10 * 60_000);
  expect(await b.read()).toBe(before);
  expect(b.commands()).toEqual(['get']);

  await sellYesterday(t.pg, 1, 1);
  await a.cache.evictGroup('popular-items');
  b.advance(10 * 60_000);
  expect(soldOf(await b.read())).toEqual([
    [2, 4],
    [1, 1],
  ]);
});

it('does not answer an entry past δ while Redis cannot be reached: the database answers', async () => {
  await sellYesterday(t.pg, 2, 4);
  const before = await b.read();
  await sellYesterday(t.pg, 2, 1);
  await a.cache.evictGroup('popular-items'); // not seen by b: Redis is away for it
  b.advance(DELTA);
  const away = unreachableRedis();
  try {
    const answer = await b.popular.popularItemsJson({ days: 3, limit: 5 }, { database: t.db, redis: away, instance: b.tier, now: () => today, timeZone: zone });
    expect(answer).not.toBe(before);
    expect(soldOf(answer)).toEqual([[2, 5]]);
  } finally {
    away.disconnect();
  }
  // Inside δ of a check an entry is answered even with Redis away: δ is the bound.
  const held = await b.read();
  b.advance(DELTA - 1);
  expect(await b.read()).toBe(held);
});

it('keeps its memory within its bounds: entries, and bytes', async () => {
  await sellYesterday(t.pg, 2, 4);
  const small = new a.tiers.InstanceTier({ freshMs: DELTA, maxEntries: 3, maxBytes: 1 << 20 });
  for (let limit = 1; limit <= 10; limit++) {
    await a.popular.popularItemsJson({ days: 3, limit }, { database: t.db, instance: small, now: () => today, timeZone: zone });
  }
  expect(small.size).toBe(3);
  const tiny = new a.tiers.InstanceTier({ freshMs: DELTA, maxEntries: 100, maxBytes: 1200 });
  for (let limit = 1; limit <= 10; limit++) {
    await a.popular.popularItemsJson({ days: 3, limit }, { database: t.db, instance: tiny, now: () => today, timeZone: zone });
  }
  expect(tiny.size).toBeGreaterThan(0);
  expect(tiny.size).toBeLessThan(10);
});

it('is on by default, bounded by CACHE_INSTANCE_* (δ under 2 s with the command timeout)', () => {
  const { freshMs, maxEntries, maxBytes } = config().cache.instance;
  expect(freshMs + config().redis.commandTimeoutMs).toBeLessThan(2000);
  expect(a.tiers.sharedInstanceTier().settings).toEqual({ freshMs, maxEntries, maxBytes });
});
