import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { db } from '../lib/platform/db';
import { acquireLock, releaseLock, withLock } from '../lib/platform/lock';
import { chargePoints, pointLockKey } from '../lib/points/points';
import { redis, type RedisClient } from '../lib/platform/redis';
import { measure, report, reportLatency, section } from './harness';

/**
 * The point lock (lib/platform/lock) against what it cannot beat:
 * - uncontended: acquire + release against a raw SET NX PX + DEL pair (the
 *   least any Redis lock needs), in Redis round trips and latency;
 * - contended: N workers each holding one key for d ms; the total wall time
 *   over N*d is the lock's efficiency (1.0 is the limit: no time lost
 *   between holders);
 * - a whole charge (lock + one statement) against a bare Data API UPDATE.
 */

/** Every lock key a run takes; their fencing counters outlive the locks. */
const used = new Set<string>();
const lockKey = (name: string) => {
  const key = `bench:lock:{${name}}`;
  used.add(key).add(`${key}:fence`);
  return key;
};

export async function run(): Promise<void> {
  const client = redis();
  try {
    await uncontended(client);
    await contended();
    await charge();
  } finally {
    // The bench environment drops its database, not its Redis keys.
    await client.del(...used, `${pointLockKey(BENCH_USER)}:fence`);
  }
}

async function uncontended(client: RedisClient): Promise<void> {
  section('lock: uncontended acquire + release');
  const key = lockKey('raw');
  const raw = async () => {
    await client.set(key, '1', 'PX', 5000, 'NX');
    await client.del(key);
  };
  const lock = async () => releaseLock(await acquireLock(lockKey('service')));
  const held = async () => withLock(lockKey('scoped'), async () => undefined);

  report('Redis round trips: raw SET NX PX + DEL', String(await roundTrips(client, raw)));
  report('Redis round trips: acquireLock + releaseLock', String(await roundTrips(client, lock)));
  report('Redis round trips: withLock (work shorter than lease/3)', String(await roundTrips(client, held)));

  const baseline = await measure(raw);
  reportLatency('raw SET NX PX + DEL (baseline)', baseline);
  reportLatency('acquireLock + releaseLock', await measure(lock), baseline);
  reportLatency('withLock around nothing', await measure(held), baseline);
}

/** Commands one call of fn sends (each its own round trip: nothing here is pipelined). */
async function roundTrips(client: RedisClient, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // loads the scripts, so NOSCRIPT fallbacks are not counted
  const send = client.sendCommand;
  let sent = 0;
  client.sendCommand = function counted(this: RedisClient, ...args: unknown[]) {
    sent++;
    return Reflect.apply(send, this, args);
  } as typeof send;
  try {
    await fn();
  } finally {
    client.sendCommand = send;
  }
  return sent;
}

async function contended(): Promise<void> {
  section('lock: N workers holding one key for d ms each');
  for (const [workers, holdMs] of [
    [10, 20],
    [50, 10],
    [100, 5],
  ] as const) {
    const key = lockKey(`contended-${workers}`);
    const wall = await timed(() => Promise.all(Array.from({ length: workers }, () => withLock(key, () => sleep(holdMs), { waitBudgetMs: 120_000 }))));
    // The same holds back to back with no lock: what timers alone cost.
    const serial = await timed(async () => {
      for (let i = 0; i < workers; i++) await sleep(holdMs);
    });
    report(
      `N=${workers} d=${holdMs} ms: wall ${wall.toFixed(0)} ms, N*d ${workers * holdMs} ms`,
      `x${(wall / (workers * holdMs)).toFixed(2)} (1.00 is the limit; N back-to-back sleeps: x${(serial / (workers * holdMs)).toFixed(2)})`,
    );
  }
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

const BENCH_USER = 1;

async function charge(): Promise<void> {
  section('points: one uncontended charge');
  const userId = BENCH_USER;
  await db().query('INSERT INTO users (id, name, point_balance) VALUES (:userId, :name, 0)', { userId, name: 'bench' });
  const update = () => db().query('UPDATE users SET point_balance = point_balance + 1 WHERE id = :userId', { userId });
  const baseline = await measure(update, 300, 30);
  reportLatency('bare Data API UPDATE of the balance (baseline)', baseline);
  reportLatency('chargePoints (lock, one statement, release)', await measure(() => chargePoints({ userId, amount: 1 }), 300, 30), baseline);
}
