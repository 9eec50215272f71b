import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { isRedisUnavailable } from '../../lib/platform/dependency-errors';
import { startRedisServer, type RedisServer } from '../support/redis-server';
import { ANSWER_BOUND_MS } from './redis-harness';

/**
 * The point lock against a Redis of the test's own that it freezes
 * (SIGSTOP), thaws, kills and restarts empty. A frozen Redis keeps its
 * connections and takes every byte sent to it, then runs all of it on
 * SIGCONT: the case where a lock a request gave up on could still be taken,
 * and then keep the next request waiting.
 *
 * config() is read once, on first use: the server is started and REDIS_URL
 * pointed at it before the lock modules are imported.
 */

type LockModule = typeof import('../../lib/platform/lock');
type RedisModule = typeof import('../../lib/platform/redis/client');

let server: RedisServer;
let lock: LockModule;
let redisModule: RedisModule;
/** A connection of the test's own, to look at the server's keys (with the file's prefix). */
let inspect: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  process.env.REDIS_URL = server.url;
  process.env.REDIS_CLUSTER = 'false';
  lock = await import('../../lib/platform/lock');
  redisModule = await import('../../lib/platform/redis/client');
  inspect = new Redis(server.url, { keyPrefix: process.env.REDIS_KEY_PREFIX });
}, 60_000);

afterAll(async () => {
  server?.resume();
  inspect?.disconnect();
  await redisModule?.closeRedis();
  await server?.stop();
});

let keys = 0;
const freshKey = () => `lock:{fault:${++keys}}`;

async function timed<T>(promise: Promise<T>): Promise<{ outcome: T | Error; ms: number }> {
  const started = performance.now();
  const outcome = await promise.catch((error: unknown) => error as Error);
  return { outcome, ms: performance.now() - started };
}

/** Waits until the module's client answers again after a fault. */
async function untilServed(): Promise<void> {
  const started = performance.now();
  for (;;) {
    try {
      await redisModule.redis().ping();
      return;
    } catch {
      if (performance.now() - started > 10_000) throw new Error('Redis did not come back');
      await sleep(50);
    }
  }
}

it('an acquire sent to a frozen Redis fails fast and takes nothing when Redis thaws', async () => {
  const key = freshKey();
  await redisModule.redis().ping();
  server.pause();
  let answer: { outcome: unknown; ms: number };
  try {
    answer = await timed(lock.acquireLock(key, { waitBudgetMs: 5000 }));
    // Still frozen a while past the request's cutoff: then it runs the script.
    await sleep(500);
  } finally {
    server.resume();
  }
  expect(isRedisUnavailable(answer.outcome)).toBe(true);
  expect(answer.ms).toBeLessThan(ANSWER_BOUND_MS);
  await untilServed();
  await sleep(100);
  expect(await inspect.exists(key)).toBe(0);
  expect(await inspect.llen(`${key}:q`)).toBe(0);
  // And the next request is served at once.
  const next = await timed(lock.acquireLock(key, { waitBudgetMs: 2000 }));
  expect(next.outcome).toMatchObject({ key });
  expect(next.ms).toBeLessThan(500);
});

it('a waiter cut off by a freeze leaves no lock and no queue entry that the next request would wait behind', async () => {
  const key = freshKey();
  const holder = await lock.acquireLock(key); // the default 2 s lease; its request then fails with Redis
  const waiting = timed(lock.acquireLock(key, { waitBudgetMs: 8000 }));
  for (let i = 0; i < 100 && (await inspect.llen(`${key}:q`)) === 0; i++) await sleep(10);
  expect(await inspect.llen(`${key}:q`)).toBe(1);
  server.pause();
  let waiter: { outcome: unknown; ms: number };
  try {
    waiter = await waiting;
    await sleep(300);
  } finally {
    server.resume();
  }
  expect(isRedisUnavailable(waiter.outcome)).toBe(true);
  expect(waiter.ms).toBeLessThan(ANSWER_BOUND_MS + 1500); // one BLPOP slice + its guard, then one command timeout
  await untilServed();
  // The holder's lease ran out during the freeze and the waiter's entry lapsed:
  // the next request is not kept waiting by either.
  const next = await timed(lock.acquireLock(key, { waitBudgetMs: 5000 }));
  expect(next.outcome).toMatchObject({ key });
  expect(next.ms).toBeLessThan(1500);
  expect((next.outcome as { fence: number }).fence).toBeGreaterThan(holder.fence);
});

it('fences keep growing when Redis restarts empty', async () => {
  const key = freshKey();
  const before = await lock.acquireLock(key);
  await server.restart();
  await untilServed();
  expect(await inspect.exists(`${key}:fence`)).toBe(0);
  const after = await lock.acquireLock(key);
  expect(after.fence).toBeGreaterThan(before.fence);
});
