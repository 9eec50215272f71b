import { createServer, type Server, type Socket } from 'node:net';
import Redis from 'ioredis';
import { cachedList, cacheKeys, evictGroup, type CacheSettings } from '../../lib/platform/cache';
import { Deadline, withDeadline } from '../../lib/platform/deadline';
import { closeRedis, redis } from '../../lib/platform/redis';

/** lib/platform/cache against real Redis: the list cache-aside, its lock, its deadlines and group eviction. */

const settings: CacheSettings = { lockTtlMs: 5000, waitBudgetMs: 10_000, pollIntervalMs: 10, ttlJitterMs: 1000 };
const HOUR = 3_600_000;
let groupSeq = 0;
const newGroup = () => `g${++groupSeq}`;
const entryOf = (group: string, variant = 'a') => ({ group, variant, ttlMs: () => HOUR });

/** A loader of `value` that records its calls. */
const loaderOf = (value: string[]) => jest.fn(async () => value);

afterAll(async () => {
  await closeRedis();
});

describe('cachedList', () => {
  it('loads once, then answers from Redis, a prefix of the list as asked', async () => {
    const group = newGroup();
    const load = loaderOf(['h', 'a', 'b', 'c']);

    expect(await cachedList(entryOf(group), 2, load, { settings })).toEqual(['h', 'a']);
    expect(await cachedList(entryOf(group), 3, load, { settings })).toEqual(['h', 'a', 'b']);
    expect(await cachedList(entryOf(group), 10, load, { settings })).toEqual(['h', 'a', 'b', 'c']);
    expect(load).toHaveBeenCalledTimes(1);

    const keys = cacheKeys(group);
    expect(await redis().lrange(keys.value('a'), 0, -1)).toEqual(['h', 'a', 'b', 'c']);
    expect(await redis().exists(keys.lock('a'))).toBe(0);
  });

  it('answers a hit with one plain LRANGE: no script, nothing else', async () => {
    const group = newGroup();
    await cachedList(entryOf(group), 2, loaderOf(['h', 'x']), { settings });
    const client = redis();
    const sent = jest.spyOn(client, 'sendCommand');

    expect(await cachedList(entryOf(group), 2, loaderOf(['other']), { settings })).toEqual(['h', 'x']);

    expect(sent.mock.calls.map(([command]) => command.name)).toEqual(['lrange']);
    sent.mockRestore();
  });

  it('keeps variants apart', async () => {
    const group = newGroup();
    expect(await cachedList(entryOf(group, 'a'), 1, loaderOf(['A']), { settings })).toEqual(['A']);
    expect(await cachedList(entryOf(group, 'b'), 1, loaderOf(['B']), { settings })).toEqual(['B']);
    expect(await cachedList(entryOf(group, 'a'), 1, loaderOf(['other']), { settings })).toEqual(['A']);
  });

  it('stores a long list whole (pushed in batches)', async () => {
    const group = newGroup();
    const long = Array.from({ length: 1234 }, (_, i) => String(i));
    await cachedList(entryOf(group), 1, loaderOf(long), { settings });
    expect(await redis().lrange(cacheKeys(group).value('a'), 0, -1)).toEqual(long);
  });

  it('expires values after their TTL plus at most the jitter, and registers them for eviction', async () => {
    const group = newGroup();
    await cachedList(entryOf(group), 1, loaderOf(['1']), { settings });
    const keys = cacheKeys(group);

    const ttl = await redis().pttl(keys.value('a'));
    expect(ttl).toBeGreaterThan(HOUR - 60_000);
    expect(ttl).toBeLessThanOrEqual(HOUR + settings.ttlJitterMs);
    // ioredis prefixes script KEYS, so the registry holds the real key names; the fill lock left it with the lock.
    expect(await redis().smembers(keys.registry)).toEqual([`${process.env.REDIS_KEY_PREFIX}${keys.value('a')}`]);
    expect(await redis().pttl(keys.registry)).toBeGreaterThanOrEqual(ttl - 1000);
  });

  it('lets exactly one of many concurrent callers load a missing value', async () => {
    const group = newGroup();
    const load = jest.fn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 50)); // a query in flight while the others arrive
      return ['v'];
    });
    const answers = await Promise.all(Array.from({ length: 50 }, () => cachedList(entryOf(group), 1, load, { settings })));
    expect(answers).toEqual(Array(50).fill(['v']));
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('propagates a failed load and frees the lock, so the next caller loads at once', async () => {
    const group = newGroup();
    await expect(cachedList(entryOf(group), 1, () => Promise.reject(new Error('db down')), { settings })).rejects.toThrow('db down');
    expect(await redis().exists(cacheKeys(group).lock('a'))).toBe(0);
    expect(await redis().exists(cacheKeys(group).value('a'))).toBe(0);

    expect(await cachedList(entryOf(group), 1, loaderOf(['v']), { settings })).toEqual(['v']);
  });

  it('refuses to store an empty list, which would read as a miss', async () => {
    const group = newGroup();
    await expect(cachedList(entryOf(group), 1, loaderOf([]), { settings })).rejects.toThrow('empty list');
    expect(await redis().exists(cacheKeys(group).lock('a'))).toBe(0);
  });

  it('loads without the cache once a stuck filler outlasts the wait budget', async () => {
    const group = newGroup();
    const keys = cacheKeys(group);
    await redis().set(keys.lock('a'), 'a filler that died', 'PX', 60_000);
    const load = loaderOf(['v']);

    const answer = await cachedList(entryOf(group), 1, load, { settings: { ...settings, waitBudgetMs: 50 } });

    expect(answer).toEqual(['v']);
    expect(load).toHaveBeenCalledTimes(1);
    // Only the lock holder writes: the stuck filler's lock is left alone.
    expect(await redis().exists(keys.value('a'))).toBe(0);
    expect(await redis().get(keys.lock('a'))).toBe('a filler that died');
  });

  it('does not store a value read before an eviction that ran during the fill', async () => {
    const group = newGroup();
    const load = jest.fn(async () => {
      await evictGroup(group); // midnight, while this filler was reading the database
      return ['read before the eviction'];
    });

    expect(await cachedList(entryOf(group), 1, load, { settings })).toEqual(['read before the eviction']);

    const keys = cacheKeys(group);
    expect(await redis().exists(keys.value('a'), keys.lock('a'))).toBe(0);
    expect(await cachedList(entryOf(group), 1, loaderOf(['fresh']), { settings })).toEqual(['fresh']);
  });

  it('stores nothing when the fill reaches Redis after the request gave up', async () => {
    const group = newGroup();
    const slowLoad = jest.fn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 400));
      return ['late'];
    });

    // 300 ms left, less the clock-skew margin at Redis: the fill arrives after the cutoff.
    const answer = await withDeadline(new Deadline(300), () => cachedList(entryOf(group), 1, slowLoad, { settings }));

    expect(answer).toEqual(['late']);
    expect(await redis().exists(cacheKeys(group).value('a'))).toBe(0);
  });

  it('answers from the source when Redis cannot be reached', async () => {
    // Nothing listens on port 1; with no retry strategy the client gives up by itself, leaving nothing to close.
    const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null }).on('error', () => {});
    const load = loaderOf(['from the source', 'x']);

    expect(await cachedList(entryOf(newGroup()), 1, load, { redis: down, settings })).toEqual(['from the source']);
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('sends nothing to a client that lost Redis and is reconnecting', async () => {
    // disconnectTimeout 0: ioredis would otherwise keep a timer for the socket that never opened.
    const lost = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => 60_000, disconnectTimeout: 0 }).on('error', () => {});
    await lost.connect().catch(() => undefined);
    expect(lost.status).toBe('reconnecting');
    const send = jest.spyOn(lost, 'sendCommand');
    const load = loaderOf(['from the source']);

    expect(await cachedList(entryOf(newGroup()), 1, load, { redis: lost, settings })).toEqual(['from the source']);
    expect(load).toHaveBeenCalledTimes(1);
    expect(send).not.toHaveBeenCalled();
    lost.disconnect();
  });

  describe('with a Redis that accepts connections and never answers (paused)', () => {
    let server: Server;
    const sockets: Socket[] = [];
    beforeAll(async () => {
      server = createServer((socket) => sockets.push(socket.on('error', () => {})));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => server.close(resolve));
    });

    it('answers from the source after one command timeout, then skips Redis for a while', async () => {
      const { port } = server.address() as { port: number };
      const paused = new Redis({ port, host: '127.0.0.1', enableReadyCheck: false, commandTimeout: 300, maxRetriesPerRequest: 0 }).on('error', () => {});
      await new Promise((resolve) => paused.once('ready', resolve));
      const load = loaderOf(['from the source']);
      try {
        let started = performance.now();
        expect(await cachedList(entryOf(newGroup()), 1, load, { redis: paused, settings })).toEqual(['from the source']);
        expect(performance.now() - started).toBeLessThan(1000);

        const send = jest.spyOn(paused, 'sendCommand');
        started = performance.now();
        expect(await cachedList(entryOf(newGroup()), 1, load, { redis: paused, settings })).toEqual(['from the source']);
        expect(performance.now() - started).toBeLessThan(100);
        expect(send).not.toHaveBeenCalled();
      } finally {
        paused.disconnect();
      }
    });

    it('gives Redis at most half of a short deadline', async () => {
      const { port } = server.address() as { port: number };
      // ioredis would wait 5 s; the request has 400 ms.
      const paused = new Redis({ port, host: '127.0.0.1', enableReadyCheck: false, commandTimeout: 5000, maxRetriesPerRequest: 0 }).on('error', () => {});
      await new Promise((resolve) => paused.once('ready', resolve));
      try {
        const started = performance.now();
        const answer = await withDeadline(new Deadline(400), () => cachedList(entryOf(newGroup()), 1, loaderOf(['v']), { redis: paused, settings }));
        expect(answer).toEqual(['v']);
        expect(performance.now() - started).toBeLessThan(350);
      } finally {
        paused.disconnect();
      }
    });
  });
});

describe('evictGroup', () => {
  it('drops every value of the group and nothing else, and is harmless to repeat', async () => {
    const [group, other] = [newGroup(), newGroup()];
    for (const variant of ['a', 'b', 'c']) await cachedList(entryOf(group, variant), 1, loaderOf([variant]), { settings });
    await cachedList(entryOf(other), 1, loaderOf(['kept']), { settings });

    expect(await evictGroup(group)).toBe(3);
    const keys = cacheKeys(group);
    expect(await redis().exists(keys.value('a'), keys.value('b'), keys.value('c'), keys.registry)).toBe(0);
    expect(await redis().lrange(cacheKeys(other).value('a'), 0, -1)).toEqual(['kept']);

    expect(await evictGroup(group)).toBe(0);
    const load = loaderOf(['fresh']);
    expect(await cachedList(entryOf(group), 1, load, { settings })).toEqual(['fresh']);
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('deletes a large group in batches', async () => {
    const group = newGroup();
    for (let i = 0; i < 1200; i++) await cachedList(entryOf(group, String(i)), 1, loaderOf([String(i)]), { settings });
    expect(await evictGroup(group)).toBe(1200);
  });
});
