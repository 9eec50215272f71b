import { createServer, type Server, type Socket } from 'node:net';
import Redis from 'ioredis';
import { cachedField, cacheKeys, evictGroup, type CacheSettings } from '../../lib/platform/cache';
import { Deadline, withDeadline } from '../../lib/platform/deadline';
import { closeRedis, redis } from '../../lib/platform/redis/client';

/** lib/platform/cache against real Redis: the hash cache-aside, its lock, its deadlines and group eviction. */

const settings: CacheSettings = { lockTtlMs: 5000, waitBudgetMs: 10_000, pollIntervalMs: 10, ttlJitterMs: 1000 };
const HOUR = 3_600_000;
let groupSeq = 0;
const newGroup = () => `g${++groupSeq}`;
const entryOf = (group: string, variant = 'a') => ({ group, variant, ttlMs: () => HOUR });

/** A loader of `value` that records its calls. */
const loaderOf = (value: Record<string, string>) => jest.fn(async () => value);
/** A value of one field, 'f'. */
const one = (value: string) => ({ f: value });

afterAll(async () => {
  await closeRedis();
});

describe('cachedField', () => {
  it('loads once, then answers any field from Redis', async () => {
    const group = newGroup();
    const load = loaderOf({ a: 'A', b: 'B' });

    expect(await cachedField(entryOf(group), 'a', load, { settings })).toBe('A');
    expect(await cachedField(entryOf(group), 'b', load, { settings })).toBe('B');
    expect(await cachedField(entryOf(group), 'c', load, { settings })).toBeUndefined();
    expect(load).toHaveBeenCalledTimes(1);

    const keys = cacheKeys(group);
    expect(await redis().hgetall(keys.value('a'))).toEqual({ a: 'A', b: 'B' });
    expect(await redis().exists(keys.lock('a'))).toBe(0);
  });

  it('answers a hit with one plain HGET: no script, nothing else', async () => {
    const group = newGroup();
    await cachedField(entryOf(group), 'f', loaderOf(one('x')), { settings });
    const client = redis();
    const sent = jest.spyOn(client, 'sendCommand');

    expect(await cachedField(entryOf(group), 'f', loaderOf(one('other')), { settings })).toBe('x');

    expect(sent.mock.calls.map(([command]) => command.name)).toEqual(['hget']);
    sent.mockRestore();
  });

  it('keeps variants apart', async () => {
    const group = newGroup();
    expect(await cachedField(entryOf(group, 'a'), 'f', loaderOf(one('A')), { settings })).toBe('A');
    expect(await cachedField(entryOf(group, 'b'), 'f', loaderOf(one('B')), { settings })).toBe('B');
    expect(await cachedField(entryOf(group, 'a'), 'f', loaderOf(one('other')), { settings })).toBe('A');
  });

  it('stores a large hash whole (written in batches)', async () => {
    const group = newGroup();
    const large = Object.fromEntries(Array.from({ length: 1234 }, (_, i) => [`k${i}`, String(i)]));
    await cachedField(entryOf(group), 'k0', loaderOf(large), { settings });
    expect(await redis().hgetall(cacheKeys(group).value('a'))).toEqual(large);
  });

  it('expires values after their TTL plus at most the jitter, and registers them for eviction', async () => {
    const group = newGroup();
    await cachedField(entryOf(group), 'f', loaderOf(one('1')), { settings });
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
      return one('v');
    });
    const answers = await Promise.all(Array.from({ length: 50 }, () => cachedField(entryOf(group), 'f', load, { settings })));
    expect(answers).toEqual(Array(50).fill('v'));
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('propagates a failed load and frees the lock, so the next caller loads at once', async () => {
    const group = newGroup();
    await expect(cachedField(entryOf(group), 'f', () => Promise.reject(new Error('db down')), { settings })).rejects.toThrow('db down');
    expect(await redis().exists(cacheKeys(group).lock('a'))).toBe(0);
    expect(await redis().exists(cacheKeys(group).value('a'))).toBe(0);

    expect(await cachedField(entryOf(group), 'f', loaderOf(one('v')), { settings })).toBe('v');
  });

  it('refuses to store an empty hash, which would read as a miss', async () => {
    const group = newGroup();
    await expect(cachedField(entryOf(group), 'f', loaderOf({}), { settings })).rejects.toThrow('no fields');
    expect(await redis().exists(cacheKeys(group).lock('a'))).toBe(0);
  });

  it('loads without the cache once a stuck filler outlasts the wait budget', async () => {
    const group = newGroup();
    const keys = cacheKeys(group);
    await redis().set(keys.lock('a'), 'a filler that died', 'PX', 60_000);
    const load = loaderOf(one('v'));

    const answer = await cachedField(entryOf(group), 'f', load, { settings: { ...settings, waitBudgetMs: 50 } });

    expect(answer).toBe('v');
    expect(load).toHaveBeenCalledTimes(1);
    // Only the lock holder writes: the stuck filler's lock is left alone.
    expect(await redis().exists(keys.value('a'))).toBe(0);
    expect(await redis().get(keys.lock('a'))).toBe('a filler that died');
  });

  it('does not store a value read before an eviction that ran during the fill', async () => {
    const group = newGroup();
    const load = jest.fn(async () => {
      await evictGroup(group); // midnight, while this filler was reading the database
      return one('read before the eviction');
    });

    expect(await cachedField(entryOf(group), 'f', load, { settings })).toBe('read before the eviction');

    const keys = cacheKeys(group);
    expect(await redis().exists(keys.value('a'), keys.lock('a'))).toBe(0);
    expect(await cachedField(entryOf(group), 'f', loaderOf(one('fresh')), { settings })).toBe('fresh');
  });

  it('stores nothing when the fill reaches Redis after the request gave up', async () => {
    const group = newGroup();
    const slowLoad = jest.fn(async () => {
      await new Promise((resolve) => setTimeout(resolve, 400));
      return one('late');
    });

    // 300 ms left, less the clock-skew margin at Redis: the fill arrives after the cutoff.
    const answer = await withDeadline(new Deadline(300), () => cachedField(entryOf(group), 'f', slowLoad, { settings }));

    expect(answer).toBe('late');
    expect(await redis().exists(cacheKeys(group).value('a'))).toBe(0);
  });

  it('answers from the source when Redis cannot be reached', async () => {
    // Nothing listens on port 1; with no retry strategy the client gives up by itself, leaving nothing to close.
    const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null }).on('error', () => {});
    const load = loaderOf({ f: 'from the source', g: 'x' });

    expect(await cachedField(entryOf(newGroup()), 'f', load, { redis: down, settings })).toBe('from the source');
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('sends nothing to a client that lost Redis and is reconnecting', async () => {
    // disconnectTimeout 0: ioredis would otherwise keep a timer for the socket that never opened.
    const lost = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => 60_000, disconnectTimeout: 0 }).on('error', () => {});
    await lost.connect().catch(() => undefined);
    expect(lost.status).toBe('reconnecting');
    const send = jest.spyOn(lost, 'sendCommand');
    const load = loaderOf(one('from the source'));

    expect(await cachedField(entryOf(newGroup()), 'f', load, { redis: lost, settings })).toBe('from the source');
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
      const load = loaderOf(one('from the source'));
      try {
        let started = performance.now();
        expect(await cachedField(entryOf(newGroup()), 'f', load, { redis: paused, settings })).toBe('from the source');
        expect(performance.now() - started).toBeLessThan(1000);

        const send = jest.spyOn(paused, 'sendCommand');
        started = performance.now();
        expect(await cachedField(entryOf(newGroup()), 'f', load, { redis: paused, settings })).toBe('from the source');
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
        const answer = await withDeadline(new Deadline(400), () => cachedField(entryOf(newGroup()), 'f', loaderOf(one('v')), { redis: paused, settings }));
        expect(answer).toBe('v');
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
    for (const variant of ['a', 'b', 'c']) await cachedField(entryOf(group, variant), 'f', loaderOf(one(variant)), { settings });
    await cachedField(entryOf(other), 'f', loaderOf(one('kept')), { settings });

    expect(await evictGroup(group)).toBe(3);
    const keys = cacheKeys(group);
    expect(await redis().exists(keys.value('a'), keys.value('b'), keys.value('c'), keys.registry)).toBe(0);
    expect(await redis().hget(cacheKeys(other).value('a'), 'f')).toBe('kept');

    expect(await evictGroup(group)).toBe(0);
    const load = loaderOf(one('fresh'));
    expect(await cachedField(entryOf(group), 'f', load, { settings })).toBe('fresh');
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('deletes a large group in batches', async () => {
    const group = newGroup();
    for (let i = 0; i < 1200; i++) await cachedField(entryOf(group, String(i)), 'f', loaderOf(one(String(i))), { settings });
    expect(await evictGroup(group)).toBe(1200);
  });
});
