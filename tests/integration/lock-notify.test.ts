import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import Redis from 'ioredis';
import { Deadline, withDeadline } from '../../lib/platform/deadline';
import { LockTimeoutError } from '../../lib/platform/errors';
import { acquireLock, acquireScript, handoverScript, raiseFence, releaseLock, withLock, type LockStrategy } from '../../lib/platform/lock';
import { closeMailboxConnections } from '../../lib/platform/lock/mailbox';
import { closeRedis, createClient, redis, type RedisClient } from '../../lib/platform/redis/client';
import { runScript } from '../../lib/platform/redis/scripts';
import { isRedisUnavailable } from '../../lib/platform/dependency-errors';
import { recordCommands } from '../support/redis-commands';

/**
 * The lock's ways of waiting ('notify', the FIFO handover, and 'spin'),
 * against the real Redis: exclusion, order, fencing, and what happens to
 * waiters and holders that fail, die or come back late.
 */

const ownClients: RedisClient[] = [];
/** A client of its own, as another Lambda instance would have. */
function instance(): RedisClient {
  const client = createClient();
  ownClients.push(client);
  return client;
}

afterAll(async () => {
  for (const client of ownClients) {
    closeMailboxConnections(client);
    client.disconnect();
  }
  await closeRedis();
});

let keys = 0;
const freshKey = () => `lock:{notify-test:${++keys}}`;

/** LLEN of the lock's waiter queue. */
const queueLength = (key: string) => redis().llen(`${key}:q`);

async function until(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const started = performance.now();
  while (!(await condition())) {
    if (performance.now() - started > timeoutMs) throw new Error('condition not reached in time');
    await sleep(2);
  }
}

describe.each<LockStrategy>(['notify', 'spin'])("strategy '%s'", (strategy) => {
  it('lets one holder in at a time: 4 instances x 30 workers, a non-atomic counter loses no update, fences only grow', async () => {
    const key = freshKey();
    const counter = `${key}:counter`;
    await redis().set(counter, '0');
    const clients = [redis(), instance(), instance(), instance()];
    let inside = 0;
    let overlaps = 0;
    const fences: number[] = [];
    // One request's deadline for all of them: outside a request each wait would get the default 10 s.
    await withDeadline(new Deadline(120_000), () => Promise.all(
      clients.flatMap((client) =>
        Array.from({ length: 30 }, () =>
          withLock(
            key,
            async (lease) => {
              if (++inside > 1) overlaps++;
              fences.push(lease.fence);
              const value = Number(await client.get(counter));
              await sleep(1); // the window a lost update needs
              await client.set(counter, String(value + 1));
              inside--;
            },
            { client, strategy, waitBudgetMs: 120_000, leaseMs: 10_000 },
          ),
        ),
      ),
    ));
    expect(overlaps).toBe(0);
    expect(await redis().get(counter)).toBe('120');
    expect(fences.every((fence, i) => i === 0 || fence > fences[i - 1]!)).toBe(true);
    expect(await redis().exists(key)).toBe(0);
    expect(await queueLength(key)).toBe(0);
  });
});

describe("strategy 'notify'", () => {
  it('serves waiters first in, first out, each with a greater fence', async () => {
    const key = freshKey();
    const first = await acquireLock(key, { leaseMs: 10_000 });
    const order: number[] = [];
    const fences: number[] = [first.fence];
    const clients = [redis(), instance(), instance()];
    const waiters: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      const client = clients[i % clients.length]!;
      waiters.push(
        withLock(
          key,
          async (lease) => {
            order.push(i);
            fences.push(lease.fence);
            await sleep(1);
          },
          { client, waitBudgetMs: 30_000, leaseMs: 10_000 },
        ),
      );
      // The next one queues only once this one is in the queue.
      await until(async () => (await queueLength(key)) === i + 1);
    }
    await releaseLock(first);
    await Promise.all(waiters);
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(fences.every((fence, i) => i === 0 || fence > fences[i - 1]!)).toBe(true);
  });

  it('hands over without polling: a waiter sends 3 commands (acquire, BLPOP, release) and gets in right after the release', async () => {
    const key = freshKey();
    const held = await acquireLock(key, { leaseMs: 10_000 });
    const client = instance();
    const sent = recordCommands(client);
    // Its blocking connection is a duplicate of `client`: count there too.
    const duplicate = client.duplicate.bind(client) as () => RedisClient;
    (client as { duplicate: unknown }).duplicate = (...args: unknown[]) => {
      const made = (duplicate as (...a: unknown[]) => RedisClient)(...args);
      recordCommands(made, sent);
      return made;
    };
    let enteredAt = 0;
    const waiting = withLock(key, async () => void (enteredAt = performance.now()), { client, waitBudgetMs: 10_000 });
    await until(async () => (await queueLength(key)) === 1);
    await sleep(300); // a polling waiter would have polled many times by now
    const releasedAt = performance.now();
    await releaseLock(held);
    await waiting;
    expect(enteredAt - releasedAt).toBeLessThan(100);
    // Less what a new connection sends to set itself up (a Cluster client asks for the slots).
    expect(sent.filter((name) => !['info', 'client', 'select', 'hello', 'auth', 'cluster'].includes(name))).toEqual(['evalsha', 'blpop', 'evalsha']);
  });

  it('a handover collected late is renewed before it is trusted', async () => {
    const key = freshKey();
    const held = await acquireLock(key, { leaseMs: 10_000 });
    const client = instance();
    const duplicate = client.duplicate.bind(client) as (...args: unknown[]) => RedisClient;
    (client as { duplicate: unknown }).duplicate = (...args: unknown[]) => {
      const made = duplicate(...args);
      const blpop = made.blpop.bind(made) as (...a: unknown[]) => Promise<unknown>;
      // Its BLPOP reaches Redis 300 ms late, as over a cold or stalled connection.
      (made as { blpop: unknown }).blpop = async (...a: unknown[]) => {
        await sleep(300);
        return blpop(...a);
      };
      return made;
    };
    const waiting = acquireLock(key, { client, leaseMs: 10_000, handoverLeaseMs: 400, waitBudgetMs: 5000 });
    await until(async () => (await queueLength(key)) === 1);
    await releaseLock(held); // handed over at once, for 400 ms
    const lease = await waiting;
    expect(await redis().get(key)).toBe(lease.token);
    expect(await redis().pttl(key)).toBeGreaterThan(400); // renewed to its full lease on collection
    expect(lease.leaseMs).toBeGreaterThan(400);
  });

  it('never sets a lease, nor a handed-over one, beyond the request deadline', async () => {
    const key = freshKey();
    const held = await withDeadline(new Deadline(800), () => acquireLock(key, { leaseMs: 60_000 }));
    expect(await redis().pttl(key)).toBeLessThanOrEqual(800);
    const waiting = withDeadline(new Deadline(1500), () => acquireLock(key, { leaseMs: 60_000, handoverLeaseMs: 60_000, waitBudgetMs: 5000 }));
    await until(async () => (await queueLength(key)) === 1);
    await releaseLock(held);
    const lease = await waiting;
    expect(lease.leaseMs).toBeLessThanOrEqual(1500);
    expect(await redis().pttl(key)).toBeLessThanOrEqual(1500);
  });

  it('a waiter that gives up leaves the queue, and a lock handed to it meanwhile goes on to the next', async () => {
    const key = freshKey();
    const held = await acquireLock(key, { leaseMs: 10_000 });
    const error = await acquireLock(key, { waitBudgetMs: 150 }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(await queueLength(key)).toBe(0);
    await releaseLock(held);
    expect(await redis().exists(key)).toBe(0);
  });

  it('waits no longer than the request deadline, on the monotonic clock', async () => {
    const key = freshKey();
    await acquireLock(key, { leaseMs: 10_000 });
    const started = performance.now();
    const error = await withDeadline(new Deadline(500), () => acquireLock(key, { waitBudgetMs: 10_000 })).catch((thrown: unknown) => thrown);
    const waited = performance.now() - started;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(waited).toBeLessThan(1500);
  });

  it("fails at once with 'fail-fast' when the lock is held, and queues nothing", async () => {
    const key = freshKey();
    await acquireLock(key, { leaseMs: 10_000 });
    const started = performance.now();
    await expect(acquireLock(key, { strategy: 'fail-fast', waitBudgetMs: 10_000 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(performance.now() - started).toBeLessThan(500);
    expect(await queueLength(key)).toBe(0);
  });

  it('caps the waiters of one lock: one more is refused at once by its single acquire call, and the queued ones are still served', async () => {
    const key = freshKey();
    const holder = await acquireLock(key, { leaseMs: 10_000 });
    const waiters = [1, 2].map(() => acquireLock(key, { maxWaiters: 2, waitBudgetMs: 10_000 }));
    await until(async () => (await queueLength(key)) === 2);
    // A client of its own, whose commands this test counts as they are sent.
    const client = instance();
    await client.ping();
    const sent = recordCommands(client);
    await expect(acquireLock(key, { client, maxWaiters: 2, waitBudgetMs: 10_000 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(sent.filter((name) => name !== 'script')).toHaveLength(1);
    expect(await queueLength(key)).toBe(2);
    await releaseLock(holder);
    for (const waiter of waiters) await releaseLock(await waiter);
    expect(await queueLength(key)).toBe(0);
  });

  it('a waiter that died in the queue holds the next one up for about one handover lease at most', async () => {
    const key = freshKey();
    const held = await acquireLock(key, { leaseMs: 10_000 });
    // A waiter that queued and died: its entry says it waits for a long time.
    const farAway = Date.now() + 60_000;
    await redis().rpush(`${key}:q`, 'ghost');
    await redis().hset(`${key}:qt`, 'ghost', `${farAway}:${farAway}:300`);
    const started = performance.now();
    const next = acquireLock(key, { leaseMs: 10_000, waitBudgetMs: 5000 });
    await until(async () => (await queueLength(key)) === 2);
    await releaseLock(held); // handed to the ghost, for its 300 ms claim
    expect(await redis().get(key)).toMatch(/^ghost:/);
    const lease = await next;
    const waited = performance.now() - started;
    expect(lease.fence).toBeGreaterThan(held.fence);
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1500);
  });

  it('a waiter whose process died drops out of the queue within a short silence', async () => {
    const key = freshKey();
    const held = await acquireLock(key, { leaseMs: 400 }); // the holder dies too: never released
    const dying = instance();
    const doomed = acquireLock(key, { client: dying, waitBudgetMs: 10_000 }).catch((error: unknown) => error);
    await until(async () => (await queueLength(key)) === 1);
    dying.disconnect(); // its blocking connection ends with it
    expect(await doomed).toBeInstanceOf(Error);
    // Its entry lapses (within its next check + SILENT_WAITER_MS) and the lock
    // with the dead holder's lease: a new request gets in then, not after 10 s.
    const started = performance.now();
    const lease = await acquireLock(key, { waitBudgetMs: 5000 });
    expect(performance.now() - started).toBeLessThan(2500);
    expect(lease.fence).toBeGreaterThan(held.fence);
  });

  it('takes over a lock key that has no TTL (nobody would ever free it)', async () => {
    const key = freshKey();
    await redis().set(key, 'stray:1');
    const started = performance.now();
    const lease = await acquireLock(key, { waitBudgetMs: 5000 });
    expect(performance.now() - started).toBeLessThan(500);
    expect(await redis().get(key)).toBe(lease.token);
    expect(await redis().pttl(key)).toBeGreaterThan(0);
  });

  it('falls back to polling when no blocking connection can be had, and still serves everyone', async () => {
    const key = freshKey();
    const client = instance();
    let duplicates = 0;
    (client as { duplicate: unknown }).duplicate = () => {
      duplicates++;
      const broken = new Redis({ port: 1, retryStrategy: () => null, maxRetriesPerRequest: 0, disconnectTimeout: 10 });
      broken.on('error', () => undefined);
      return broken;
    };
    const counter = `${key}:counter`;
    await redis().set(counter, '0');
    await Promise.all(
      Array.from({ length: 15 }, () =>
        withLock(
          key,
          async () => {
            const value = Number(await client.get(counter));
            await sleep(2);
            await client.set(counter, String(value + 1));
          },
          { client, waitBudgetMs: 30_000, leaseMs: 10_000 },
        ),
      ),
    );
    expect(duplicates).toBeGreaterThan(0);
    expect(await redis().get(counter)).toBe('15');
    expect(await queueLength(key)).toBe(0);
  });
});

describe('deadline scripts', () => {
  it('an acquire that reaches Redis after its request gave up takes nothing', async () => {
    const key = freshKey();
    const error = await withDeadline(new Deadline(0), () => acquireLock(key)).catch((thrown: unknown) => thrown);
    // Redis' EXPIRED, or the client's own timer first (1 ms): a 503 either way.
    expect(String(error)).toMatch(/EXPIRED|timed out/);
    expect(isRedisUnavailable(error)).toBe(true);
    await sleep(50); // the script has run by now, whichever answered first
    expect(await redis().exists(key)).toBe(0);
    expect(await queueLength(key)).toBe(0);
  });

  it('an acquire sent twice with the same token (a re-send after a reconnect) returns the same fence', async () => {
    const key = freshKey();
    const script = acquireScript;
    const token = randomUUID();
    const run = () =>
      runScript<[number, number, number]>(script, [key, `${key}:fence`, `${key}:q`, `${key}:qt`], [5000, 60_000, token, 1000, 5000, 1000, 300, 1000, 0]);
    const [first] = await run();
    const [again] = await run();
    expect(first).toBeGreaterThan(0);
    expect(again).toBe(first);
    expect(await redis().get(key)).toBe(`${token}:${first}`);
  });
});

describe('raiseFence', () => {
  it('raises the counter so the next lock gets a greater token, and never lowers it', async () => {
    const key = freshKey();
    const before = await acquireLock(key);
    await releaseLock(before);
    const ahead = before.fence + 1_000_000_000;
    expect(await raiseFence(key, ahead)).toBe(ahead);
    expect(await raiseFence(key, before.fence)).toBe(ahead);
    expect(await raiseFence(key, String(before.fence))).toBe(ahead); // a bigint column read as text
    await expect(raiseFence(key, -1)).rejects.toThrow(RangeError);
    const after = await acquireLock(key);
    expect(after.fence).toBeGreaterThan(ahead);
  });
});

/**
 * Model-based: any sequence of acquires (queueing), releases and
 * withdrawals leaves Redis exactly where a plain FIFO model says, and every
 * new holder gets a greater fence. The scripts are run directly, so no
 * timing is involved.
 */
describe('the queue against a model', () => {
  const acquire = acquireScript;
  const handover = handoverScript;

  type Op = { kind: 'acquire'; who: number } | { kind: 'release' } | { kind: 'withdraw'; who: number };
  const op = fc.oneof(
    fc.record({ kind: fc.constant('acquire' as const), who: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant('release' as const) }),
    fc.record({ kind: fc.constant('withdraw' as const), who: fc.integer({ min: 0, max: 5 }) }),
  );

  it('matches a FIFO model with growing fences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops: Op[]) => {
        const key = freshKey();
        const keysOf = [key, `${key}:fence`, `${key}:q`, `${key}:qt`];
        const tokens: string[] = Array.from({ length: 6 }, () => randomUUID());
        let holder: number | null = null;
        let holderValue = '';
        let queue: number[] = [];
        let lastFence = 0;
        const handTo = async (next: number | undefined) => {
          holder = next ?? null;
          if (next === undefined) return;
          const value = (await redis().get(key))!;
          const fence = Number(value.split(':')[1]);
          expect(fence).toBeGreaterThan(lastFence);
          lastFence = fence;
          holderValue = value;
        };
        for (const step of ops) {
          if (step.kind === 'acquire') {
            const [fence] = await runScript<[number]>(acquire, keysOf, [60_000, 60_000, tokens[step.who] as string, 60_000, 60_000, 60_000, 60_000, 60_000, 0]);
            if (holder === step.who) {
              expect(fence).toBe(lastFence);
            } else if (holder === null && (queue.length === 0 || queue[0] === step.who)) {
              expect(fence).toBeGreaterThan(lastFence);
              queue = queue.filter((w) => w !== step.who);
              await handTo(step.who);
            } else {
              expect(fence).toBe(0);
              if (holder === null) await handTo(queue.shift());
              if (!queue.includes(step.who)) queue.push(step.who);
            }
          } else if (step.kind === 'release') {
            const released = await runScript<number>(handover, keysOf, [holder === null ? 'nobody:0' : holderValue, '', 60_000]);
            expect(released).toBe(holder === null ? 0 : 1);
            if (holder !== null) await handTo(queue.shift());
          } else {
            await runScript<number>(handover, keysOf, ['', tokens[step.who] as string, 60_000]);
            queue = queue.filter((w) => w !== step.who);
            if (holder === step.who) await handTo(queue.shift());
          }
          const value = await redis().get(key);
          expect(value === null ? null : tokens.indexOf(value.split(':')[0]!)).toBe(holder);
          expect((await redis().lrange(`${key}:q`, 0, -1)).map((token) => tokens.indexOf(token))).toEqual(queue);
        }
      }),
      { numRuns: 60 },
    );
  });
});

