import Redis from 'ioredis';
import { cached, cacheKeys, evictGroup, type CacheSettings } from '../../lib/platform/cache';
import { closeRedis, redis } from '../../lib/platform/redis';

/** lib/platform/cache against real Redis: the generic cache-aside, its lock and group eviction. */

const settings: CacheSettings = { lockTtlMs: 5000, waitBudgetMs: 10_000, pollIntervalMs: 10, ttlJitterMs: 1000 };
const HOUR = 3_600_000;
let groupSeq = 0;
const newGroup = () => `g${++groupSeq}`;

/** A loader of `value` that records its calls. */
const loaderOf = <T>(value: T) => jest.fn(async () => value);

afterAll(async () => {
  await closeRedis();
});

describe('cached', () => {
  it('loads once, then answers from Redis', async () => {
    const group = newGroup();
    const load = loaderOf({ n: 1 });
    const entry = { group, variant: 'a', ttlMs: () => HOUR };

    expect(await cached(entry, load, { settings })).toEqual({ n: 1 });
    expect(await cached(entry, load, { settings })).toEqual({ n: 1 });
    expect(load).toHaveBeenCalledTimes(1);

    const keys = cacheKeys(group);
    expect(await redis().get(keys.value('a'))).toBe('{"n":1}');
    expect(await redis().exists(keys.lock('a'))).toBe(0);
  });

  it('keeps variants apart', async () => {
    const group = newGroup();
    expect(await cached({ group, variant: 'a', ttlMs: () => HOUR }, loaderOf('A'), { settings })).toBe('A');
    expect(await cached({ group, variant: 'b', ttlMs: () => HOUR }, loaderOf('B'), { settings })).toBe('B');
    expect(await cached({ group, variant: 'a', ttlMs: () => HOUR }, loaderOf('other'), { settings })).toBe('A');
  });

  it('expires values after their TTL plus at most the jitter, and registers them for eviction', async () => {
    const group = newGroup();
    await cached({ group, variant: 'a', ttlMs: () => HOUR }, loaderOf(1), { settings });
    const keys = cacheKeys(group);

    const ttl = await redis().pttl(keys.value('a'));
    expect(ttl).toBeGreaterThan(HOUR - 60_000);
    expect(ttl).toBeLessThanOrEqual(HOUR + settings.ttlJitterMs);
    // ioredis prefixes script KEYS, so the registry holds the real key names.
    expect(await redis().smembers(keys.registry)).toEqual([`${process.env.REDIS_KEY_PREFIX}${keys.value('a')}`]);
    expect(await redis().pttl(keys.registry)).toBeGreaterThanOrEqual(ttl - 1000);
  });

  it('lets exactly one of many concurrent callers load a missing value', async () => {
    const group = newGroup();
    const load = jest.fn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 50)); // a query in flight while the others arrive
      return 'v';
    });
    const answers = await Promise.all(Array.from({ length: 50 }, () => cached({ group, variant: 'a', ttlMs: () => HOUR }, load, { settings })));
    expect(answers).toEqual(Array(50).fill('v'));
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('propagates a failed load and frees the lock, so the next caller loads at once', async () => {
    const group = newGroup();
    const entry = { group, variant: 'a', ttlMs: () => HOUR };
    await expect(cached(entry, () => Promise.reject(new Error('db down')), { settings })).rejects.toThrow('db down');
    expect(await redis().exists(cacheKeys(group).lock('a'))).toBe(0);
    expect(await redis().exists(cacheKeys(group).value('a'))).toBe(0);

    expect(await cached(entry, loaderOf('v'), { settings })).toBe('v');
  });

  it('loads without the cache once a stuck filler outlasts the wait budget', async () => {
    const group = newGroup();
    const keys = cacheKeys(group);
    await redis().set(keys.lock('a'), 'a filler that died', 'PX', 60_000);
    const load = loaderOf('v');

    const answer = await cached({ group, variant: 'a', ttlMs: () => HOUR }, load, { settings: { ...settings, waitBudgetMs: 50 } });

    expect(answer).toBe('v');
    expect(load).toHaveBeenCalledTimes(1);
    // Only the lock holder writes: the stuck filler's lock is left alone.
    expect(await redis().exists(keys.value('a'))).toBe(0);
    expect(await redis().get(keys.lock('a'))).toBe('a filler that died');
  });

  it('answers from the source when Redis cannot be reached', async () => {
    // Nothing listens on port 1; with no retry strategy the client gives up by itself, leaving nothing to close.
    const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null }).on('error', () => {});
    const load = loaderOf('from the source');

    expect(await cached({ group: newGroup(), variant: 'a', ttlMs: () => HOUR }, load, { redis: down, settings })).toBe('from the source');
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('sends nothing to a client that lost Redis and is reconnecting', async () => {
    // disconnectTimeout 0: ioredis would otherwise keep a timer for the socket that never opened.
    const lost = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => 60_000, disconnectTimeout: 0 }).on('error', () => {});
    await lost.connect().catch(() => undefined);
    expect(lost.status).toBe('reconnecting');
    const send = jest.spyOn(lost, 'sendCommand');
    const load = loaderOf('from the source');

    expect(await cached({ group: newGroup(), variant: 'a', ttlMs: () => HOUR }, load, { redis: lost, settings })).toBe('from the source');
    expect(load).toHaveBeenCalledTimes(1);
    expect(send).not.toHaveBeenCalled();
    lost.disconnect();
  });
});

describe('evictGroup', () => {
  it('drops every value of the group and nothing else, and is harmless to repeat', async () => {
    const [group, other] = [newGroup(), newGroup()];
    for (const variant of ['a', 'b', 'c']) await cached({ group, variant, ttlMs: () => HOUR }, loaderOf(variant), { settings });
    await cached({ group: other, variant: 'a', ttlMs: () => HOUR }, loaderOf('kept'), { settings });

    expect(await evictGroup(group)).toBe(3);
    const keys = cacheKeys(group);
    expect(await redis().exists(keys.value('a'), keys.value('b'), keys.value('c'), keys.registry)).toBe(0);
    expect(await redis().get(cacheKeys(other).value('a'))).toBe('"kept"');

    expect(await evictGroup(group)).toBe(0);
    const load = loaderOf('fresh');
    expect(await cached({ group, variant: 'a', ttlMs: () => HOUR }, load, { settings })).toBe('fresh');
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('deletes a large group in batches', async () => {
    const group = newGroup();
    for (let i = 0; i < 1200; i++) await cached({ group, variant: String(i), ttlMs: () => HOUR }, loaderOf(i), { settings });
    expect(await evictGroup(group)).toBe(1200);
  });
});
