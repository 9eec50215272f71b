import Redis, { Cluster } from 'ioredis';
import { logger } from '../logger';
import type { RedisClient } from '../redis/client';

/**
 * Where a queued waiter sleeps until the lock is handed to it: a BLPOP on its
 * own mailbox list, on a connection of its own. A blocking command holds its
 * connection for as long as it waits, so it never runs on the shared module
 * client (every other command of the instance would queue behind it).
 *
 * Connections are made lazily, one per waiter waiting at the same time (a
 * Lambda instance serves one request at a time: one connection; a process
 * running many waiters, like the bench, needs as many), kept for reuse, and
 * closed when their base client ends (closeRedis), so nothing outlives it.
 * On Redis Cluster each is a duplicate of the Cluster client, which sends
 * the BLPOP to the node owning the mailbox's slot.
 *
 * When a blocking connection cannot be had or fails, notification is off for
 * a while and waiters poll instead (the lock stays correct: a handover is
 * also found by the waiter's next acquire attempt).
 * See docs/decisions/003-lock-handover.md
 */

/** Beyond this many waiters at once in one process, the rest poll. */
const MAX_CONNECTIONS = 256;
/** How long notification stays off after a blocking connection failed. */
const UNAVAILABLE_FOR_MS = 5000;
/**
 * How long past its own timeout a BLPOP may stay unanswered before its
 * connection is given up as dead (a paused or unreachable Redis).
 */
const REPLY_GRACE_MS = 250;

interface Pool {
  idle: RedisClient[];
  all: Set<RedisClient>;
  unavailableUntil: number;
}

const pools = new WeakMap<RedisClient, Pool>();

function poolOf(base: RedisClient): Pool {
  let pool = pools.get(base);
  if (!pool) {
    const created: Pool = { idle: [], all: new Set(), unavailableUntil: 0 };
    pools.set(base, created);
    base.once('end', () => closeAll(created));
    pool = created;
  }
  return pool;
}

function closeAll(pool: Pool): void {
  for (const connection of pool.all) connection.disconnect();
  pool.all.clear();
  pool.idle.length = 0;
}

/** Is a blocking wait possible now on this client's Redis? */
export function notificationAvailable(base: RedisClient): boolean {
  const pool = poolOf(base);
  return performance.now() >= pool.unavailableUntil && (pool.idle.length > 0 || pool.all.size < MAX_CONNECTIONS);
}

/** Closes the blocking connections made for `base` (tests; closeRedis does it for the module client). */
export function closeMailboxConnections(base: RedisClient): void {
  closeAll(poolOf(base));
}

function open(base: RedisClient): RedisClient {
  // No command or socket timeout: a BLPOP is meant to wait, silently; the
  // guard in waitForMail gives up on a dead connection instead. No
  // reconnect: a broken blocking connection is dropped and the next waiter
  // makes a fresh one. waitForMail sends no BLPOP before it is ready.
  const connection: RedisClient =
    base instanceof Cluster
      ? base.duplicate([], {
          enableOfflineQueue: true,
          redisOptions: { ...base.options.redisOptions, commandTimeout: undefined, socketTimeout: undefined, retryStrategy: () => null },
        })
      : (base as Redis).duplicate({
          commandTimeout: undefined,
          socketTimeout: undefined,
          retryStrategy: () => null,
          maxRetriesPerRequest: 0,
          enableOfflineQueue: true,
        });
  connection.on('error', () => {});
  return connection;
}

/**
 * Waits up to timeoutMs for one message in `mailbox`. Resolves the message,
 * or null when none came in time or notification is unavailable (the caller
 * then checks the lock itself).
 */
export async function waitForMail(base: RedisClient, mailbox: string, timeoutMs: number): Promise<string | null> {
  const pool = poolOf(base);
  let connection = pool.idle.pop();
  if (!connection) {
    if (pool.all.size >= MAX_CONNECTIONS) return null;
    connection = open(base);
    pool.all.add(connection);
  }
  const startedAt = performance.now();
  let guard: NodeJS.Timeout | undefined;
  try {
    // A fresh connection is slow to come up when many are made at once (a
    // Cluster client of its own each): that is not a dead Redis, so it gets
    // the wait's own time to connect, and the waiter, if it is not ready by
    // then, checks the lock itself and finds the connection next time.
    if (!(await readyWithin(connection, timeoutMs))) {
      pool.idle.push(connection);
      return null;
    }
    const wait = Math.max(1, Math.ceil(timeoutMs - (performance.now() - startedAt)));
    const reply = await Promise.race([
      // Redis takes a timeout in seconds with decimals; 0 would mean forever.
      connection.blpop(mailbox, (wait / 1000).toFixed(3)),
      new Promise<never>((_, reject) => {
        guard = setTimeout(() => reject(new Error('blocking connection did not answer')), wait + REPLY_GRACE_MS);
        guard.unref();
      }),
    ]);
    pool.idle.push(connection);
    return reply ? reply[1] : null;
  } catch (error) {
    // A late reply on this connection could hand a lock to nobody: drop it.
    pool.all.delete(connection);
    connection.disconnect();
    pool.unavailableUntil = performance.now() + UNAVAILABLE_FOR_MS;
    logger.warn('lock notification unavailable; waiting by polling', { error: (error as Error).message });
    return null;
  } finally {
    clearTimeout(guard);
  }
}

/** True once the connection can take the BLPOP at once, false if it cannot within `ms`; rejects if it fails first. */
function readyWithin(connection: RedisClient, ms: number): Promise<boolean> {
  // The usual case, a connection used before: no timer and no listener.
  if (connection.status === 'ready' && !(connection instanceof Cluster && connection.nodes('master').some((node) => node.status === 'wait'))) {
    return Promise.resolve(true);
  }
  const ready = connected(connection).then(() => true);
  ready.catch(() => {}); // settled after the timer won: nobody waits for it any more
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(1, ms));
    timer.unref();
  });
  return Promise.race([ready, late]).finally(() => clearTimeout(timer));
}

async function connected(connection: RedisClient): Promise<void> {
  if (connection.status !== 'ready') {
    if (connection.status === 'end') throw new Error('blocking connection closed');
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        connection.off('end', onEnd);
        resolve();
      };
      const onEnd = () => {
        connection.off('ready', onReady);
        reject(new Error('blocking connection closed before it was ready'));
      };
      connection.once('ready', onReady);
      connection.once('end', onEnd);
    });
  }
  // A Cluster client connects to a node at its first command to it: connect
  // them all now, so that no BLPOP spends its grace on a connect.
  if (connection instanceof Cluster) {
    await Promise.all(connection.nodes('master').filter((node) => node.status === 'wait').map((node) => node.connect()));
  }
}
