import { setTimeout as sleep } from 'node:timers/promises';
import { LockTimeoutError } from '../../lib/platform/errors';
import { toAppError } from '../../lib/platform/http';
import { acquireLock, extendLock, releaseLock, tryAcquire, withLock } from '../../lib/platform/lock';
import { closeRedis, redis } from '../../lib/platform/redis/client';

afterAll(async () => {
  await closeRedis();
});

let keys = 0;
const freshKey = () => `lock:{test:${++keys}}`;

describe('tryAcquire', () => {
  it('issues a fencing token that grows with every acquisition', async () => {
    const key = freshKey();
    const tokens: number[] = [];
    for (let i = 0; i < 5; i++) {
      const attempt = await tryAcquire(key, 1000);
      if (!attempt.acquired) throw new Error('lock should be free');
      tokens.push(attempt.lease.fence);
      await releaseLock(attempt.lease);
    }
    expect(tokens.every((token, i) => i === 0 || token > tokens[i - 1]!)).toBe(true);
    expect(tokens.every(Number.isSafeInteger)).toBe(true);
  });

  it('refuses a held lock and says how long its lease still runs', async () => {
    const key = freshKey();
    const first = await tryAcquire(key, 5000);
    const second = await tryAcquire(key, 5000);
    expect(first.acquired).toBe(true);
    expect(second).toEqual({ acquired: false, heldForMs: expect.any(Number) });
    if (second.acquired) return;
    expect(second.heldForMs).toBeGreaterThan(0);
    expect(second.heldForMs).toBeLessThanOrEqual(5000);
  });

  it('keeps tokens growing when Redis loses the fencing counter', async () => {
    const key = freshKey();
    const first = await tryAcquire(key, 1000);
    if (!first.acquired) throw new Error('lock should be free');
    await releaseLock(first.lease);
    await redis().del(`${key}:fence`); // a failover without persistence
    const second = await tryAcquire(key, 1000);
    if (!second.acquired) throw new Error('lock should be free');
    expect(second.lease.fence).toBeGreaterThan(first.lease.fence);
  });
});

describe('release and extend', () => {
  it('only the holder releases or extends', async () => {
    const key = freshKey();
    const held = await acquireLock(key, { leaseMs: 5000 });
    const impostor = { ...held, token: 'not-the-holder' };
    expect(await releaseLock(impostor)).toBe(false);
    expect(await extendLock(impostor, 60_000)).toBe(false);
    expect(await redis().pttl(key)).toBeLessThanOrEqual(5000);
    expect(await extendLock(held, 60_000)).toBe(true);
    expect(await redis().pttl(key)).toBeGreaterThan(5000);
    expect(await releaseLock(held)).toBe(true);
    expect(await redis().exists(key)).toBe(0);
  });

  it('a holder whose lease expired cannot free the next holder’s lock', async () => {
    const key = freshKey();
    const stale = await acquireLock(key, { leaseMs: 20 });
    await sleep(60);
    const current = await acquireLock(key, { leaseMs: 5000 });
    expect(await releaseLock(stale)).toBe(false);
    expect(await redis().get(key)).toBe(current.token);
  });
});

describe('acquireLock', () => {
  it('waits for the holder to release, then takes the lock', async () => {
    const key = freshKey();
    const held = await acquireLock(key, { leaseMs: 5000 });
    const waiting = acquireLock(key, { leaseMs: 5000, waitBudgetMs: 5000 });
    await sleep(30);
    await releaseLock(held);
    const next = await waiting;
    expect(next.fence).toBeGreaterThan(held.fence);
  });

  it('gives up after the wait budget with LOCK_TIMEOUT and Retry-After', async () => {
    const key = freshKey();
    await acquireLock(key, { leaseMs: 10_000 });
    const error = await acquireLock(key, { waitBudgetMs: 100 }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(toAppError(error)).toMatchObject({ status: 409, code: 'LOCK_TIMEOUT', retryAfterSeconds: 1 });
  });

  it('takes over a dead holder’s lock once its lease has run out', async () => {
    const key = freshKey();
    await acquireLock(key, { leaseMs: 50 }); // never released: the holder died
    const next = await acquireLock(key, { waitBudgetMs: 5000 });
    expect(next.key).toBe(key);
  });

  it('never sets a lease beyond the time the function has left', async () => {
    const key = freshKey();
    await acquireLock(key, { leaseMs: 60_000, remainingTimeMs: () => 800 });
    const ttl = await redis().pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(800);
  });
});

describe('withLock', () => {
  it('lets one holder at a time in: 50 concurrent read-modify-writes lose no update', async () => {
    const key = freshKey();
    const counter = `${key}:counter`;
    await redis().set(counter, '0');
    await Promise.all(
      Array.from({ length: 50 }, () =>
        withLock(
          key,
          async () => {
            const value = Number(await redis().get(counter));
            await sleep(1); // widen the window a lost update would need
            await redis().set(counter, String(value + 1));
          },
          { waitBudgetMs: 20_000 },
        ),
      ),
    );
    expect(await redis().get(counter)).toBe('50');
    expect(await redis().exists(key)).toBe(0);
  });

  it('passes the fencing token to fn and releases after fn returns', async () => {
    const key = freshKey();
    const fence = await withLock(key, async (lease) => {
      expect(await redis().get(key)).toBe(lease.token);
      return lease.fence;
    });
    expect(fence).toBeGreaterThan(0);
    expect(await redis().exists(key)).toBe(0);
  });

  it('releases the lock when fn throws', async () => {
    const key = freshKey();
    await expect(withLock(key, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await redis().exists(key)).toBe(0);
  });

  it('renews the lease while fn runs past it', async () => {
    const key = freshKey();
    await withLock(
      key,
      async (lease) => {
        await sleep(600); // four leases
        expect(await redis().get(key)).toBe(lease.token);
        expect((await tryAcquire(key, 1000)).acquired).toBe(false);
      },
      { leaseMs: 150 },
    );
    expect(await redis().exists(key)).toBe(0);
  });
});
