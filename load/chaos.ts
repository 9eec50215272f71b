/**
 * npm run load -- --chaos: the load test's own stack, and faults at random
 * moments while the mix runs against it.
 *
 * The stack is `npm start`'s (serverless-offline, tests/support/offline)
 * with a redis-server of its own (tests/support/redis-server: paused,
 * killed, restarted empty) and its Data API calls through a fault proxy
 * (tests/support/fault-proxy: replies dropped after the statement ran,
 * latency) in front of a Data API endpoint serving a database made for the
 * run on DATABASE_URL's server (dropped at the end).
 *
 * The faults come from a seeded generator: the same seed gives the same
 * faults, durations and gaps (LOAD_CHAOS_SEED), though not the same
 * requests around them.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { startDataApi } from '../local/data-api/server';
import { startFaultProxy, type FaultProxy } from '../tests/support/fault-proxy';
import { startOfflineStack } from '../tests/support/offline';
import { startRedisServer, type RedisServer } from '../tests/support/redis-server';

export interface ChaosStack {
  baseUrl: string;
  /** The run's database (pg), for arranging rows and checking them. */
  databaseUrl: string;
  redis: RedisServer;
  dataApi: FaultProxy;
  stop(): Promise<void>;
}

/** `serverUrl`: a PostgreSQL server on which the run may create (and drop) a database of its own. */
export async function startChaosStack(serverUrl: string): Promise<ChaosStack> {
  const name = `load_chaos_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = new Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE "${name}"`);
  const databaseUrl = Object.assign(new URL(serverUrl), { pathname: `/${name}` }).toString();
  const closers: (() => Promise<unknown>)[] = [() => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)];
  const stop = async () => {
    for (const close of closers.reverse()) await close().catch((error: Error) => console.error(`chaos: cleanup: ${error.message}`));
  };
  try {
    const redis = await startRedisServer();
    closers.push(() => redis.stop());
    const endpoint = await startDataApi({ databaseUrl: serverUrl, port: 0 });
    closers.push(() => endpoint.close());
    const upstream = new URL(endpoint.url);
    const dataApi = await startFaultProxy({ host: upstream.hostname, port: Number(upstream.port) });
    closers.push(() => dataApi.close());
    const stack = await startOfflineStack({
      REDIS_URL: redis.url,
      REDIS_CLUSTER: 'false',
      REDIS_KEY_PREFIX: '',
      DATA_API_ENDPOINT: dataApi.url('http'),
      DATABASE_URL: undefined,
      DB_NAME: name,
      SEED_DEMO_DATA: 'false',
    });
    closers.push(() => stack.stop());
    return { baseUrl: stack.baseUrl, databaseUrl, redis, dataApi, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** How often the run's sync-likes goes (AWS: every minute; here often, so that most likes are synced when Redis loses them). */
const SYNC_EVERY_MS = 2000;
/** The remaining time each run is given: sync-likes stops starting rounds 10 s before its end. */
const SYNC_RUN_MS = 12_000;

/**
 * sync-likes, run in this process every SYNC_EVERY_MS against the stack's
 * Redis and, through the fault proxy, its database, as the schedule runs it
 * in AWS: the likes it has written survive a Redis restarted empty, and the
 * like checks then count them. A run that meets a fault fails; the next
 * one goes on from there.
 */
export async function startSyncing(stack: ChaosStack): Promise<{ stop(): Promise<{ ok: number; failed: number }> }> {
  // Its log and metric lines would drown the run's own output; failures still show.
  process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
  Object.assign(process.env, {
    REDIS_URL: stack.redis.url,
    REDIS_CLUSTER: 'false',
    REDIS_KEY_PREFIX: '',
    DATA_API_ENDPOINT: stack.dataApi.url('http'),
    DB_NAME: new URL(stack.databaseUrl).pathname.slice(1),
  });
  const { connectToLocalStack } = await import('../local/stack');
  const { loadLuaAsText } = await import('../local/env');
  await connectToLocalStack('the chaos run syncs likes');
  loadLuaAsText();
  const { handler } = await import('../functions/sync-likes');
  const { closeRedis } = await import('../lib/platform/redis/client');
  const runs = { ok: 0, failed: 0 };
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const end = Date.now() + SYNC_RUN_MS;
      const context = { awsRequestId: randomBytes(8).toString('hex'), functionName: 'sync-likes', getRemainingTimeInMillis: () => end - Date.now() };
      await handler(undefined, context as never).then(
        () => runs.ok++,
        () => runs.failed++,
      );
      await sleep(SYNC_EVERY_MS);
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop;
      await closeRedis();
      return runs;
    },
  };
}

/** A fault that hit: from `at` to `until`, in ms since the scenario started (Date.now()). */
export interface ChaosEvent {
  at: number;
  until: number;
  what: string;
}

/** mulberry32: small, seedable, good enough to pick moments. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultRun {
  events: ChaosEvent[];
  /** When Redis last came back empty (Date.now()), or -1. */
  lastRestartAt(): number;
  /** Resolves once the last fault has ended and everything is back to normal. */
  done: Promise<void>;
}

/**
 * Faults one after another, each after a random gap, until `durationMs`
 * from `startedAt` (Date.now()): Redis paused (SIGSTOP) for up to 3 s,
 * Redis killed and restarted empty after up to 2 s, Data API replies
 * dropped after their statement ran (one reply at a time, a few times: a
 * reply lost for longer than DB_RESOLVE_BUDGET_MS is the one documented case
 * where a 503 may hide a committed charge), Data API latency of up to 1.5 s
 * for up to 3 s. Ends with Redis running and the proxy passing.
 */
export function runFaults(stack: ChaosStack, seed: number, startedAt: number, durationMs: number): FaultRun {
  const random = seededRandom(seed);
  const between = (from: number, to: number) => Math.round(from + random() * (to - from));
  const now = () => Date.now() - startedAt;
  const events: ChaosEvent[] = [];
  let restartedAt = -1;
  const hit = async (what: string, during: () => Promise<void>) => {
    const event = { at: Math.round(now()), until: 0, what };
    events.push(event);
    await during();
    event.until = Math.round(now());
  };
  const kinds: (() => Promise<void>)[] = [
    () => {
      const ms = between(500, 3000);
      return hit(`Redis paused (SIGSTOP) ${ms} ms`, async () => {
        stack.redis.pause();
        await sleep(ms);
        stack.redis.resume();
      });
    },
    () => {
      const ms = between(300, 2000);
      return hit(`Redis killed, restarted empty after ${ms} ms`, async () => {
        await stack.redis.kill();
        await sleep(ms);
        await stack.redis.restart();
        restartedAt = Date.now();
      });
    },
    () => {
      const times = between(2, 5);
      return hit(`Data API: ${times} replies dropped after their statement ran`, async () => {
        for (let i = 0; i < times; i++) {
          stack.dataApi.set({ mode: 'dropAfterRequest', once: true });
          await sleep(250);
        }
        stack.dataApi.set({ mode: 'pass' });
      });
    },
    () => {
      const latency = between(200, 1500);
      const ms = between(1000, 3000);
      return hit(`Data API latency ${latency} ms for ${ms} ms`, async () => {
        stack.dataApi.set({ mode: 'latency', ms: latency });
        await sleep(ms);
        stack.dataApi.set({ mode: 'pass' });
      });
    },
  ];
  const done = (async () => {
    try {
      for (;;) {
        const gap = between(800, 2500);
        if (now() + gap >= durationMs) break;
        await sleep(gap);
        await kinds[Math.floor(random() * kinds.length)]!();
      }
    } finally {
      stack.redis.resume();
      stack.dataApi.set({ mode: 'pass' });
    }
  })();
  return { events, lastRestartAt: () => restartedAt, done };
}
