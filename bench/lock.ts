import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { db } from '../lib/platform/db';
import Redis from 'ioredis';
import Redlock from 'redlock';
import { Mutex } from 'redis-semaphore';
import { acquireLock, releaseLock, withLock, type LockStrategy } from '../lib/platform/lock';
import { pointLockKey } from '../lib/points/keys';
import { chargePoints } from '../lib/points/points';
import { redis, type RedisClient } from '../lib/platform/redis/client';
import { countCommands, measure, report, reportLatency, section } from './harness';

/**
 * The point lock (lib/platform/lock) against what it cannot beat:
 * - uncontended: acquire + release against a raw SET NX PX + DEL pair (the
 *   least any Redis lock needs), in Redis round trips and latency;
 * - contended: N workers each holding one key for d ms, beside node-redlock
 *   and redis-semaphore in the same run: wall time and longest wait over
 *   N*d (1.0 is the limit: no time lost between holders), and Redis
 *   commands per acquisition;
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
  const commands = countCommands(client);
  try {
    await fn();
  } finally {
    commands.stop();
  }
  return commands.count;
}

interface Contender {
  name: string;
  /** Takes the lock on `key`, runs fn, releases. */
  hold(key: string, fn: () => Promise<void>): Promise<void>;
}

interface Figures {
  wall: number;
  longestWait: number;
  commands: number;
}

/**
 * N workers start at once and each holds one key for d ms. Figures, as
 * ratios to N*d (the least any lock can take): wall time until the last one
 * released, and the longest any worker waited for the lock; and the Redis
 * commands all of them sent, per acquisition. Every lock gets one warm-up
 * round per N (scripts loaded, connections made), then ROUNDS measured ones;
 * each figure is the median of its rounds. The floor row is what the
 * holds alone take back to back (timers overshoot on a busy machine). Commands are counted in this
 * process (every ioredis client's sendCommand), so other users of the same
 * Redis do not show up in them.
 */
const HOLD_MS = 10;
const ROUNDS = 5;

async function contended(): Promise<void> {
  section(`lock: N workers holding one key for ${HOLD_MS} ms each, against node-redlock and redis-semaphore`);
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const keyPrefix = process.env.REDIS_KEY_PREFIX;
  const redlockClient = new Redis(url, { keyPrefix });
  const semaphoreClient = new Redis(url, { keyPrefix });
  const redlock = new Redlock([redlockClient], { retryCount: -1, retryDelay: 10, retryJitter: 10 });
  const ours = (strategy: LockStrategy) => (key: string, fn: () => Promise<void>) =>
    withLock(key, fn, { strategy, waitBudgetMs: 120_000 });
  const contenders: Contender[] = [
    { name: "withLock 'notify' (default)", hold: ours('notify') },
    { name: "withLock 'spin'", hold: ours('spin') },
    {
      name: 'node-redlock, 10 ms retry + 10 ms jitter',
      hold: async (key, fn) => {
        const lock = await redlock.acquire([key], 5000);
        try {
          await fn();
        } finally {
          await lock.release();
        }
      },
    },
    {
      name: 'redis-semaphore Mutex, defaults',
      hold: async (key, fn) => {
        const mutex = new Mutex(semaphoreClient, key, { acquireTimeout: 120_000 });
        await mutex.acquire();
        try {
          await fn();
        } finally {
          await mutex.release();
        }
      },
    },
  ];
  const table: string[] = ['| N | lock | wall / (N·d) | longest wait / (N·d) | Redis commands per acquisition |', '|---|---|---|---|---|'];
  const verdicts: string[] = [];
  try {
    for (const workers of [10, 50, 100]) {
      const figures = new Map<string, Figures>();
      for (const contender of contenders) await round(contender, workers); // warm-up
      // Rounds go round-robin over the locks, so a change in the machine's
      // load (it is shared) falls on all of them alike.
      const rounds = new Map<string, Figures[]>(contenders.map((c) => [c.name, []]));
      const floors: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        floors.push(await serialHolds(workers));
        for (const contender of contenders) rounds.get(contender.name)!.push(await round(contender, workers));
      }
      table.push(`| ${workers} | floor: N back-to-back sleep(d), no lock | x${median(floors).toFixed(2)} | | 0 |`);
      for (const contender of contenders) {
        const mine = rounds.get(contender.name)!;
        const result = { wall: median(mine.map((r) => r.wall)), longestWait: median(mine.map((r) => r.longestWait)), commands: median(mine.map((r) => r.commands)) };
        figures.set(contender.name, result);
        table.push(`| ${workers} | ${contender.name} | x${result.wall.toFixed(2)} | x${result.longestWait.toFixed(2)} | ${result.commands.toFixed(1)} |`);
      }
      const mine = figures.get(contenders[0]!.name)!;
      const peers = [...figures].filter(([name]) => name.startsWith('node-redlock') || name.startsWith('redis-semaphore')).map(([, f]) => f);
      const goals = [
        ['wall <= x1.10', mine.wall <= 1.1],
        ['longest wait <= x1.2', mine.longestWait <= 1.2],
        ['<= 6 commands', mine.commands <= 6],
        ['ahead of both peers on every figure', peers.every((p) => mine.wall < p.wall && mine.longestWait < p.longestWait && mine.commands < p.commands)],
      ] as const;
      verdicts.push(`N=${workers}: ${goals.map(([goal, met]) => `${goal} ${met ? 'met' : 'NOT met'}`).join('; ')}`);
    }
  } finally {
    redlockClient.disconnect();
    semaphoreClient.disconnect();
  }
  console.log(['', ...table, ''].join('\n'));
  for (const line of verdicts) report(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2));
}

async function round(contender: Contender, workers: number): Promise<Figures> {
  const key = lockKey(`contended-${contender.name.replace(/[^a-z]+/gi, '-')}-${workers}`);
  const commands = countEveryClientsCommands();
  const started = performance.now();
  let longestWait = 0;
  try {
    await Promise.all(
      Array.from({ length: workers }, () =>
        contender.hold(key, async () => {
          longestWait = Math.max(longestWait, performance.now() - started);
          await sleep(HOLD_MS);
        }),
      ),
    );
  } finally {
    commands.stop();
  }
  const floor = workers * HOLD_MS;
  return { wall: (performance.now() - started) / floor, longestWait: longestWait / floor, commands: commands.count / workers };
}

/**
 * Counts the commands every ioredis client of this process sends (the
 * shared client, the lock's blocking connections, the peers' clients).
 */
function countEveryClientsCommands(): { readonly count: number; stop(): void } {
  const prototype = Redis.prototype as unknown as { sendCommand: (...args: unknown[]) => unknown };
  const original = prototype.sendCommand;
  let count = 0;
  prototype.sendCommand = function counted(this: unknown, ...args: unknown[]) {
    count++;
    return Reflect.apply(original, this, args);
  };
  return {
    get count() {
      return count;
    },
    stop() {
      prototype.sendCommand = original;
    },
  };
}

/** N holds of d ms back to back with no lock, over N*d: what the timers alone cost. */
async function serialHolds(workers: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < workers; i++) await sleep(HOLD_MS);
  return (performance.now() - started) / (workers * HOLD_MS);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

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
