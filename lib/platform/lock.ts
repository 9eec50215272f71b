import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import acquireSource from './lock/lock-acquire.lua';
import extendSource from './lock/lock-extend.lua';
import handoverSource from './lock/lock-handover.lua';
import preludeSource from './lock/lock.prelude.lua';
import raiseFenceSource from './lock/lock-raise-fence.lua';
import { config } from './config';
import { currentDeadline } from './deadline';
import { LockTimeoutError } from './errors';
import { logger } from './logger';
import { metric } from './metrics';
import { notificationAvailable, waitForMail } from './lock/mailbox';
import { redis, type RedisClient } from './redis/client';
import { luaScript, runScript } from './redis/scripts';
import { isRedisUnavailable } from './dependency-errors';

/**
 * A fenced mutual-exclusion lock in Redis, with a lease.
 *
 * Acquiring issues a fencing token that only grows. Whatever the lock guards
 * must refuse a write that carries an older token than the last one it
 * accepted (the points tables do, in the database): a lease can expire under
 * a holder that stalled (a GC pause, a frozen Lambda), and the token is what
 * stops that holder from writing after the next one.
 * See docs/decisions/004-fencing-tokens-and-leases.md
 *
 * Three ways to wait for a held lock (LockOptions.strategy):
 * - 'fail-fast': do not wait: LockTimeoutError at once.
 * - 'spin': poll with exponential backoff and full jitter.
 * - 'notify' (the default): queue up, first in first out, and sleep on a
 *   BLPOP of one's own mailbox; the releaser hands the lock straight to the
 *   oldest live waiter in the same script that frees it (lib/platform/lock/lock-handover.lua),
 *   so no time is lost between holders and nobody polls. A handover pushed
 *   before the waiter blocks stays in its mailbox, so no wake-up is missed.
 *   Without a blocking connection (see lock/mailbox.ts) a queued waiter polls
 *   instead, and finds a lock handed to it by its own token.
 *   See docs/decisions/003-lock-handover.md
 *
 * A lock's keys share its hash tag, so they live in one cluster slot: the
 * lock `K` (value "<random token>:<fence>"), `K:fence` (the counter), `K:q`
 * and `K:qt` (the waiters and their times) and each waiter's `K:w:<token>`.
 * The caller names `K` and the lock derives the others from it, so a key
 * meant for Redis Cluster must carry a hash tag of its own (`lock:{u:42}`).
 *
 * Nothing a request gave up on takes effect later: acquire and extend are
 * deadline scripts (they refuse once Redis TIME is past the request's
 * cutoff), an acquire sent twice (ioredis re-sends after a reconnect) finds
 * its own token and returns the same fence, and a waiter that fails or gives
 * up withdraws (and hands on a lock handed to it meanwhile). A waiter that
 * dies without withdrawing drops out of the queue within a short silence
 * (SILENT_WAITER_MS past its next check), and a lock handed to it lapses
 * after its short handover lease. The wait obeys both the wait budget and
 * the request's deadline, on the monotonic clock.
 *
 * Redis commands per acquisition: 1 (acquire) + 1 (release) when free; with
 * 'notify' and the lock busy, +1 (the BLPOP), and +2 each time a waiter
 * checks on the lock itself (when the lease it saw ends, and at least every
 * handover lease: the holder may have died without handing over); renewals,
 * 1 each, only when the work outlasts a third of its lease (a lock handed
 * over starts with the short handover lease, so work longer than a third of
 * it renews once early).
 *
 * Longer than most modules: the three strategies are one acquire loop over
 * shared settings, leases and withdrawal; apart, they would only pass each
 * other's private state (the mailbox itself is lock/mailbox.ts).
 */

export const acquireScript = luaScript('lockAcquire', 4, acquireSource, { deadline: true, prelude: preludeSource });
const extendScript = luaScript('lockExtend', 1, extendSource, { deadline: true });
export const handoverScript = luaScript('lockHandover', 4, handoverSource, { prelude: preludeSource });
const raiseFenceScript = luaScript('lockRaiseFence', 1, raiseFenceSource);

/**
 * How long a lock's fencing counter outlives its last use. Tokens stay
 * monotonic without it (lock-acquire.lua never issues less than Redis TIME),
 * so it only needs to cover clock steps backwards; the TTL keeps idle users
 * from holding memory forever.
 */
const FENCE_COUNTER_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * A queued waiter wakes when the holder's lease would end (the holder may
 * have died without handing over) plus this much, to check on the lock.
 */
const WAKE_SLACK_MS = 20;
/**
 * What the last check of a wait may take to reach Redis: the wait ends this
 * long before the request's cutoff, so a lock still busy then is a 409, not
 * an EXPIRED (503).
 */
const LAST_CHECK_MS = 50;
/**
 * How late Redis may end a BLPOP past its timeout: it looks at blocked
 * clients' timeouts on its event loop, which can sleep for 1000/hz ms (100
 * at the default hz 10). A wait's last stretch polls instead.
 */
const BLPOP_LATENESS_MS = 100;
/**
 * How long past that check a waiter's queue entry lives without it: the
 * waiter is back within a round trip unless it died, and a dead waiter must
 * drop out before the lock is handed to it.
 */
const SILENT_WAITER_MS = 300;
/**
 * The lease of a lock handed to a waiter, until it renews it (at a third, as
 * any holder). Short, because the waiter may have died since its last check;
 * long enough for a live one to wake and renew on a busy machine.
 */
const DEFAULT_HANDOVER_LEASE_MS = 1000;

const keysOf = (key: string) => [key, `${key}:fence`, `${key}:q`, `${key}:qt`];
const mailboxOf = (key: string, token: string) => `${key}:w:${token}`;

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
  /** The lock's value while held ("<random>:<fence>"): only its holder may release or renew it. */
  readonly token: string;
  /** The fencing token: greater than every token issued for this key before. */
  readonly fence: number;
  /** The lease granted at acquisition, ms (a handed-over lock starts with a short one). */
  readonly leaseMs: number;
}

export type LockStrategy = 'fail-fast' | 'spin' | 'notify';

export interface LockOptions {
  client?: RedisClient;
  /** How to wait for a held lock; default 'notify'. */
  strategy?: LockStrategy;
  /** Lease length; renewed every third of it while the work runs. */
  leaseMs?: number;
  /** How long to wait for a held lock before LockTimeoutError (never past the request's deadline). */
  waitBudgetMs?: number;
  /**
   * Time left before the process is stopped (in Lambda,
   * context.getRemainingTimeInMillis). No lease is set beyond it, nor beyond
   * the request's deadline, so a function killed at its timeout never keeps
   * others waiting for longer.
   */
  remainingTimeMs?: () => number;
  /** 'spin', and 'notify' without notification: backoff with full jitter, first cap, largest cap. */
  backoff?: { baseMs: number; maxMs: number };
  /** 'notify': the lease of a lock handed to this waiter until it renews it. */
  handoverLeaseMs?: number;
  /**
   * 'notify': the most requests one lock queues; past it a request is
   * refused at once (LockTimeoutError) by the same acquire call, touching
   * Redis once and the database never. 0: no cap.
   */
  maxWaiters?: number;
}

/**
 * A 5 ms first cap lets a waiter in right behind a short holder (one Data
 * API call). The 100 ms largest cap bounds how long a free lock waits for
 * the next poll, at about 20 Redis calls a second per waiter.
 * See docs/decisions/003-lock-handover.md
 */
const DEFAULT_BACKOFF = { baseMs: 5, maxMs: 100 };
const unlimited = () => Number.POSITIVE_INFINITY;

type Settings = Required<LockOptions>;

/**
 * What a caller does not choose. A feature passes its own settings (the
 * points feature: POINT_LOCK_*, lib/points/settings.ts); the lock reads none.
 */
const DEFAULTS = { strategy: 'notify', leaseMs: 2000, waitBudgetMs: 8000, maxWaiters: 256 } as const;

function settingsOf(options: LockOptions): Settings {
  const leaseMs = options.leaseMs ?? DEFAULTS.leaseMs;
  return {
    client: options.client ?? redis(),
    strategy: options.strategy ?? DEFAULTS.strategy,
    leaseMs,
    waitBudgetMs: options.waitBudgetMs ?? DEFAULTS.waitBudgetMs,
    remainingTimeMs: options.remainingTimeMs ?? unlimited,
    backoff: options.backoff ?? DEFAULT_BACKOFF,
    handoverLeaseMs: Math.min(options.handoverLeaseMs ?? DEFAULT_HANDOVER_LEASE_MS, leaseMs),
    maxWaiters: options.maxWaiters ?? DEFAULTS.maxWaiters,
  };
}

/** How long this process may still hold a lock: the Lambda's time and the request's deadline. */
function holdableMs(settings: Pick<Settings, 'remainingTimeMs'>): number {
  return Math.max(1, Math.floor(Math.min(settings.remainingTimeMs(), currentDeadline().remainingMs())));
}

/** The lease to ask for now: the configured one, cut to the time the process has left. */
function leaseNow(settings: Pick<Settings, 'leaseMs' | 'remainingTimeMs'>): number {
  return Math.min(Math.max(1, Math.floor(settings.leaseMs)), holdableMs(settings));
}

export type Attempt = { acquired: true; lease: Lease } | { acquired: false; heldForMs: number };

type AcquireReply = [fence: number, heldForMs: number, grantedMs: number];

function runAcquire(key: string, token: string, settings: Settings, queueForMs: number): Promise<AcquireReply> {
  const holdable = holdableMs(settings);
  return runScript<AcquireReply>(
    acquireScript,
    keysOf(key),
    [
      leaseNow(settings),
      FENCE_COUNTER_TTL_MS,
      token,
      queueForMs,
      holdable,
      Math.max(1, Math.min(settings.handoverLeaseMs, holdable)),
      SILENT_WAITER_MS,
      settings.handoverLeaseMs,
      settings.maxWaiters,
    ],
    settings.client,
  );
}

/**
 * How long a queued waiter sleeps before it checks on the lock itself: until
 * the lease it saw ends (the holder may die without handing over), and at
 * most one handover lease, because the lock may meanwhile have been handed
 * to a waiter that died, whose short lease nobody else would notice ending.
 */
const sliceMs = (heldForMs: number, settings: Settings) => Math.max(0, Math.min(heldForMs, settings.handoverLeaseMs)) + WAKE_SLACK_MS;

const leaseOf = (key: string, token: string, fence: number, leaseMs: number): Lease => ({ key, token: `${token}:${fence}`, fence, leaseMs });

/** One attempt, no waiting, no queueing. When the lock is held, says how long its lease still runs. */
export async function tryAcquire(key: string, leaseMs: number, client: RedisClient = redis()): Promise<Attempt> {
  const token = randomUUID();
  const settings = settingsOf({ client, leaseMs, strategy: 'fail-fast' });
  const [fence, heldForMs, grantedMs] = await runAcquire(key, token, settings, 0);
  return fence > 0 ? { acquired: true, lease: leaseOf(key, token, fence, grantedMs) } : { acquired: false, heldForMs };
}

/** Renews the lease; false when the lock is no longer this holder's. Refused (EXPIRED) past the request's deadline. */
export async function extendLock(lease: Lease, leaseMs: number, client: RedisClient = redis()): Promise<boolean> {
  return (await runScript<number>(extendScript, [lease.key], [lease.token, leaseMs], client)) === 1;
}

/**
 * Frees the lock and hands it to the oldest live waiter, if any; false when
 * it was no longer this holder's (the lease had expired).
 */
export async function releaseLock(lease: Lease, client: RedisClient = redis()): Promise<boolean> {
  return (await runScript<number>(handoverScript, keysOf(lease.key), [lease.token, '', FENCE_COUNTER_TTL_MS], client)) === 1;
}

/**
 * Raises the key's fencing counter to at least `atLeast`, so the next lock
 * taken gets a greater token: for a guarded store that is ahead of Redis (a
 * lost counter and a clock step back), which would otherwise refuse every
 * holder as stale. Returns the counter's value. The current holder keeps its
 * (now stale) token: take the lock again to write.
 */
export async function raiseFence(key: string, atLeast: number | bigint | string, client: RedisClient = redis()): Promise<number> {
  // A bigint column may come back from the database as text.
  const value = String(atLeast);
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) throw new RangeError(`raiseFence: ${value} is not a fencing token`);
  return Number(await runScript<number>(raiseFenceScript, [`${key}:fence`], [value, FENCE_COUNTER_TTL_MS], client));
}

/** A waiter stops waiting: out of the queue, and a lock handed to it meanwhile goes on to the next. */
function withdraw(key: string, token: string, client: RedisClient): Promise<unknown> {
  return runScript(handoverScript, keysOf(key), ['', token, FENCE_COUNTER_TTL_MS], client);
}

/**
 * Takes the lock, waiting by the chosen strategy within the wait budget and
 * the request's deadline; past them, LockTimeoutError (409 LOCK_TIMEOUT,
 * Retry-After). Redis failing is thrown as it is (a 503), never retried here.
 */
export async function acquireLock(key: string, options: LockOptions = {}): Promise<Lease> {
  return acquireWith(key, settingsOf(options));
}

async function acquireWith(key: string, settings: Settings): Promise<Lease> {
  const { strategy, client } = settings;
  // The last check must reach Redis before the request's cutoff (its
  // deadline less the skew margin), or a busy lock would read as a 503.
  const budgetMs = Math.max(0, Math.min(settings.waitBudgetMs, currentDeadline().remainingMs() - config().deadline.clockSkewMarginMs - LAST_CHECK_MS));
  const waitEnd = performance.now() + budgetMs;
  const token = randomUUID();
  const queues = strategy === 'notify';
  let queued = false;
  let held = false;
  try {
    for (let attempt = 0; ; attempt++) {
      const queueForMs = queues ? Math.max(1, Math.ceil(waitEnd - performance.now())) : 0;
      const [fence, heldForMs, grantedMs] = await runAcquire(key, token, settings, queueForMs);
      if (fence > 0) {
        held = true;
        return leaseOf(key, token, fence, grantedMs);
      }
      if (fence === -1) {
        throw new LockTimeoutError(`${settings.maxWaiters} requests are already waiting for this lock`, Math.max(1, Math.ceil(heldForMs / 1000)));
      }
      queued ||= queues;
      const left = waitEnd - performance.now();
      if (strategy === 'fail-fast' || left <= 0) {
        throw new LockTimeoutError(`still held by another request after ${Math.round(budgetMs)} ms`, 1);
      }
      if (queues && left > BLPOP_LATENESS_MS && notificationAvailable(client)) {
        const mail = await waitForMail(client, mailboxOf(key, token), Math.min(left - BLPOP_LATENESS_MS, sliceMs(heldForMs, settings)));
        if (mail !== null) {
          const [handedFence, handedLeaseMs, handedAt] = mail.split(':').map(Number) as [number, number, number];
          const handed = leaseOf(key, token, handedFence, handedLeaseMs);
          // Collected late, the short lease may be over and the lock someone
          // else's. Renewing tells, and keeps it.
          // See docs/decisions/003-lock-handover.md
          if (Date.now() - handedAt > handedLeaseMs / 2) {
            const renewedMs = leaseNow(settings);
            if (!(await extendLock(handed, renewedMs, client))) continue;
            held = true;
            return { ...handed, leaseMs: renewedMs };
          }
          held = true;
          return handed;
        }
        // No handover in time: the holder may have died; check on the lock.
        continue;
      }
      const cap = Math.min(settings.backoff.maxMs, settings.backoff.baseMs * 2 ** attempt);
      // A holder's lease ends within heldForMs at the latest (it may have died).
      await sleep(Math.max(1, Math.min(Math.random() * cap, left, heldForMs > 0 ? heldForMs : cap)));
    }
  } catch (error) {
    if (!held && isRedisUnavailable(error)) {
      // An acquire that timed out here may still run when Redis answers
      // again (or may have run, its reply lost): take back whatever it did,
      // without making the 503 wait for it.
      withdraw(key, token, client).catch(() => undefined);
      queued = false;
    }
    throw error;
  } finally {
    if (queued && !held) {
      await withdraw(key, token, client).catch((error: Error) =>
        logger.warn('lock wait withdrawal failed; the queue entry lapses by itself', { key, error: error.message }),
      );
    }
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
  const waitStarted = performance.now();
  const lease = await acquireWith(key, settings);
  metric('LockWaitMs', performance.now() - waitStarted);
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

  const schedule = (currentLeaseMs: number) => {
    timer = setTimeout(() => {
      const next = leaseNow(settings);
      renewing = extendLock(lease, next, settings.client).then(
        (held) => {
          if (!held) logger.warn('lock lost during the work; its writes are fenced', { key: lease.key });
          else if (!stopped) schedule(next);
        },
        (error: Error) => {
          // Past the request's deadline the lease must run out, not be renewed.
          if (error.message.includes('EXPIRED')) return;
          // Redis may be back before the lease ends: keep trying.
          logger.warn('lock renewal failed', { key: lease.key, error: error.message });
          if (!stopped) schedule(currentLeaseMs);
        },
      );
    }, Math.max(1, currentLeaseMs / 3));
    timer.unref();
  };

  schedule(lease.leaseMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      // Release must not race a renewal still in flight.
      await renewing;
    },
  };
}
