import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import acquireSource from '../../lua/lock-acquire.lua';
import extendSource from '../../lua/lock-extend.lua';
import releaseSource from '../../lua/lock-release.lua';
import { config } from './config';
import { LockTimeoutError } from './errors';
import { logger } from './logger';
import { luaScript, redis, runScript, type RedisClient } from './redis';

/**
 * A fenced mutual-exclusion lock in Redis, with a lease.
 *
 * Acquiring issues a fencing token that only grows. Whatever the lock guards
 * must refuse a write that carries an older token than the last one it
 * accepted (the points tables do, in the database): a lease can expire under
 * a holder that stalled (a GC pause, a frozen Lambda), and the token is what
 * stops that holder from writing after the next one.
 *
 * Round trips to Redis: one to acquire (plus one per retry while it is held),
 * one to release, and one per renewal; a renewal happens only when the work
 * outlasts a third of the lease.
 */

const acquireScript = luaScript('lockAcquire', 2, acquireSource);
const extendScript = luaScript('lockExtend', 1, extendSource);
const releaseScript = luaScript('lockRelease', 1, releaseSource);

/**
 * How long a lock's fencing counter outlives its last use. Tokens stay
 * monotonic without it (lock-acquire.lua never issues less than Redis TIME),
 * so it only needs to cover clock steps backwards; the TTL keeps idle users
 * from holding memory forever.
 */
const FENCE_COUNTER_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * The guarded store refused a write: its fencing token was older than one it
 * had already accepted, because this holder's lease expired and another
 * holder wrote. Nothing was written. For the client it is the same as not
 * getting the lock in time: 409 LOCK_TIMEOUT, retry after a second.
 */
export class LockLostError extends LockTimeoutError {
  constructor() {
    super('the lock expired before the write and another request has written since; nothing was changed', 1);
  }
}

/** A held lock. */
export interface Lease {
  readonly key: string;
  /** Random, the lock's value while held: only its holder may release or renew it. */
  readonly token: string;
  /** The fencing token: greater than every token issued for this key before. */
  readonly fence: number;
}

export interface LockOptions {
  client?: RedisClient;
  /** Lease length; renewed every third of it while the work runs. */
  leaseMs?: number;
  /** How long to wait for a held lock before LockTimeoutError. */
  waitBudgetMs?: number;
  /**
   * Time left before the process is stopped (in Lambda,
   * context.getRemainingTimeInMillis). No lease is set beyond it, so a
   * function killed at its timeout never keeps others waiting for longer.
   */
  remainingTimeMs?: () => number;
  /** Exponential backoff with full jitter between attempts: first cap, largest cap. */
  backoff?: { baseMs: number; maxMs: number };
}

/**
 * A 5 ms first cap lets a waiter in right behind a short holder (one Data
 * API call). The 100 ms largest cap bounds how long a free lock waits for
 * the next poll, at about 20 Redis calls a second per waiter (measured in
 * bench/lock.ts: larger caps lose up to half the time between holders).
 */
const DEFAULT_BACKOFF = { baseMs: 5, maxMs: 100 };
const unlimited = () => Number.POSITIVE_INFINITY;

type Settings = Required<LockOptions>;

/** Defaults: the point lock's settings from config, the one lock of this service. */
function settingsOf(options: LockOptions): Settings {
  return {
    client: options.client ?? redis(),
    leaseMs: options.leaseMs ?? config().pointLock.leaseMs,
    waitBudgetMs: options.waitBudgetMs ?? config().pointLock.waitBudgetMs,
    remainingTimeMs: options.remainingTimeMs ?? unlimited,
    backoff: options.backoff ?? DEFAULT_BACKOFF,
  };
}

/** The lease to ask for now: the configured one, cut to the time the process has left. */
function leaseNow(settings: Settings): number {
  return Math.max(1, Math.floor(Math.min(settings.leaseMs, settings.remainingTimeMs())));
}

export type Attempt = { acquired: true; lease: Lease } | { acquired: false; heldForMs: number };

/** One attempt, no waiting. When the lock is held, says how long its lease still runs. */
export async function tryAcquire(key: string, leaseMs: number, client: RedisClient = redis()): Promise<Attempt> {
  const token = randomUUID();
  const [fence, heldForMs] = await runScript<[number, number]>(acquireScript, [key, `${key}:fence`], [leaseMs, FENCE_COUNTER_TTL_MS, token], client);
  return fence > 0 ? { acquired: true, lease: { key, token, fence } } : { acquired: false, heldForMs };
}

/** Renews the lease; false when the lock is no longer this holder's. */
export async function extendLock(lease: Lease, leaseMs: number, client: RedisClient = redis()): Promise<boolean> {
  return (await runScript<number>(extendScript, [lease.key], [lease.token, leaseMs], client)) === 1;
}

/** Frees the lock; false when it was no longer this holder's (the lease had expired). */
export async function releaseLock(lease: Lease, client: RedisClient = redis()): Promise<boolean> {
  return (await runScript<number>(releaseScript, [lease.key], [lease.token], client)) === 1;
}

/**
 * Takes the lock, retrying with exponential backoff and full jitter within
 * the wait budget; past it, LockTimeoutError (409 LOCK_TIMEOUT, Retry-After).
 * Redis failing is thrown as it is (a 503), never retried here.
 */
export async function acquireLock(key: string, options: LockOptions = {}): Promise<Lease> {
  return acquireWith(key, settingsOf(options));
}

async function acquireWith(key: string, settings: Settings): Promise<Lease> {
  const deadline = Date.now() + settings.waitBudgetMs;
  for (let attempt = 0; ; attempt++) {
    const result = await tryAcquire(key, leaseNow(settings), settings.client);
    if (result.acquired) return result.lease;
    const left = deadline - Date.now();
    if (left <= 0) throw new LockTimeoutError(`still held by another request after ${settings.waitBudgetMs} ms`, 1);
    const cap = Math.min(settings.backoff.maxMs, settings.backoff.baseMs * 2 ** attempt);
    // A holder's lease ends within heldForMs at the latest (it may have died).
    const pause = Math.min(Math.random() * cap, left, result.heldForMs > 0 ? result.heldForMs : cap);
    await sleep(Math.max(1, pause));
  }
}

/**
 * Runs fn while holding the lock: takes it (waiting as acquireLock does),
 * renews the lease every third of it while fn runs, and always releases it,
 * even when fn throws.
 *
 * Should a renewal find the lock gone (the lease expired during a stall),
 * fn is not interrupted: its writes carry lease.fence, which the guarded
 * store refuses once a newer holder has written.
 */
export async function withLock<T>(key: string, fn: (lease: Lease) => Promise<T>, options: LockOptions = {}): Promise<T> {
  const settings = settingsOf(options);
  const lease = await acquireWith(key, settings);
  const renewal = keepRenewed(lease, settings);
  try {
    return await fn(lease);
  } finally {
    await renewal.stop();
    // A failed release is not the caller's failure: the lease expires anyway.
    await releaseLock(lease, settings.client).catch((error: Error) =>
      logger.warn('lock release failed; the lease will expire', { key, error: error.message }),
    );
  }
}

function keepRenewed(lease: Lease, settings: Settings): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let renewing: Promise<void> = Promise.resolve();

  const schedule = () => {
    timer = setTimeout(() => {
      renewing = extendLock(lease, leaseNow(settings), settings.client).then(
        (held) => {
          if (!held) logger.warn('lock lost during the work; its writes are fenced', { key: lease.key });
          else if (!stopped) schedule();
        },
        (error: Error) => {
          // Redis may be back before the lease ends: keep trying.
          logger.warn('lock renewal failed', { key: lease.key, error: error.message });
          if (!stopped) schedule();
        },
      );
    }, Math.max(1, settings.leaseMs / 3));
    timer.unref();
  };

  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      // Release must not race a renewal still in flight.
      await renewing;
    },
  };
}
