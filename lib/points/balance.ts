import { randomUUID } from 'node:crypto';
import { config } from '../platform/config';
import { db, DatabaseUnavailableError, type Database } from '../platform/db';
import { currentDeadline } from '../platform/deadline';
import { InternalError, NotFoundError } from '../platform/errors';
import { replayOf, withRunningMarker, type IdempotencyKey, type PriorReply, type Reply } from './idempotency';
import { LockLostError, raiseFence, withLock, type LockOptions } from '../platform/lock';
import { metric } from '../platform/metrics';
import { redis, type RedisClient } from '../platform/redis/client';
import { pointLockKey } from './keys';
import { resolveLostCall, rowsBusy } from './resolve';
import { pointLockOptions, pointsSettings } from './settings';

/**
 * The way every balance change runs (charges in lib/points/points, payments
 * in lib/points/orders):
 *
 * 1. Keyed requests set their Idempotency-Key's running marker (lib/points/idempotency).
 * 2. The user's point lock is taken: one lock per user, shared by charge and
 *    pay, with a fencing token (lib/platform/lock). Redis down: 503, nothing written.
 * 3. ONE database statement does the rest, all or nothing: it finds an
 *    earlier reply to the key, locks and checks the rows, writes the balance
 *    only if the users row has seen no newer fencing token, writes history
 *    (and the order), and stores the reply under the key. A single statement
 *    is its own transaction: one Data API round trip instead of three
 *    (BeginTransaction, statement, CommitTransaction), and the lock is held
 *    for exactly that one call. It reports what happened as one row
 *    (`outcome`), since the Data API gives errors no SQLSTATE.
 *    The statement refuses ('expired', nothing written) once the database's
 *    clock is past the call's cutoff after it has taken its row locks, and
 *    writes the request's random id with its reply (balance_requests), so:
 * 4. When the call fails after it may have reached the database (a timeout,
 *    an abort, a connection lost after the request went out), the outcome is
 *    resolved before anyone is answered, still under the lock: one more
 *    statement inserts the request id as a tombstone. If the statement
 *    committed, the tombstone meets its row and returns its reply, and the
 *    client gets the success; if not, the tombstone takes the id first and
 *    the statement, should it still run, fails on that key: a 503 then is
 *    the truth, now and later. A statement found still queued behind another
 *    transaction's row lock is contention on a database that answers, not an
 *    outage: 409 LOCK_TIMEOUT (busy, retry), equally true.
 * 5. Lock and marker are released, also when anything above failed.
 *
 * Round trips per request: Data API 1 (plus 1 to resolve, only after an
 * ambiguous failure); Redis 2 (acquire, release), plus 2 with an
 * Idempotency-Key (marker set, delete) and 1 per lock retry.
 */

export interface PointsDeps {
  database?: Database;
  redis?: RedisClient;
  /** Lease, wait budget and backoff of the user's lock; defaults from config. */
  lock?: Pick<LockOptions, 'leaseMs' | 'waitBudgetMs' | 'backoff'>;
  /** The Lambda's remaining time (context.getRemainingTimeInMillis): bounds the lease and the marker. */
  remainingTimeMs?: () => number;
  /** Runs after the commit and before the reply: tests simulate a crash there. */
  afterCommit?: () => void | Promise<void>;
}

/** What every balance change names: whose balance, and the request's key if it has one. */
export interface BalanceRequest {
  userId: number;
  idempotency?: IdempotencyKey | undefined;
}

/** The row a balance statement (charge.sql, pay.sql) answers with. */
export interface Verdict extends PriorReply {
  outcome: string;
  /** The balance before the change; null without a users row. */
  balance: number | null;
  /** The fence users.lock_fence held; null without a users row. */
  lock_fence: number | null;
  /** The reply's body (JSON text) when the change was written. */
  body: string | null;
}

/** What changeBalance gives the balance statement of one attempt. */
export interface BalanceCall {
  /** The lock's fencing token. */
  fence: number;
  /** Random per attempt: written with the effect, the key to resolving a lost reply. */
  requestId: string;
  /** When the statement was sent (ms since the epoch): the database measures how long it took to arrive. */
  sentAtMs: number;
  /** The database refuses to write once its clock is past this (ms since the epoch). */
  cutoffMs: number;
  /** How long the client waits for the statement's reply. */
  timeoutMs: number;
}

export const callParams = (call: BalanceCall) => ({ fence: call.fence, requestId: call.requestId, sentAtMs: call.sentAtMs, cutoffMs: call.cutoffMs });

/**
 * Runs one balance statement for a request under the user's lock (steps 1,
 * 2, 4 and 5 above), then turns its verdict into the reply. `apply` runs the
 * statement for a BalanceCall and throws its own refusals; the outcomes of
 * the first outcomes (see charge.sql) and 'ok' are settled here.
 */
export async function changeBalance<Body>(
  request: BalanceRequest,
  status: number,
  deps: PointsDeps,
  apply: (database: Database, call: BalanceCall) => Promise<Verdict>,
): Promise<Reply<Body>> {
  const client = deps.redis ?? redis();
  const database = deps.database ?? db();
  const remainingTimeMs = deps.remainingTimeMs ?? (() => Number.POSITIVE_INFINITY);
  const markerTtlMs = Math.min(pointsSettings().IDEMPOTENCY_MARKER_TTL_MS, remainingTimeMs());
  const lockKey = pointLockKey(request.userId);
  const underLock = () =>
    withLock(lockKey, (lease) => applyOnce(database, request.userId, lease.fence, apply), { ...pointLockOptions(), ...deps.lock, client, remainingTimeMs });
  const verdict = await withRunningMarker(request.userId, request.idempotency, markerTtlMs, client, async () => {
    const first = await underLock();
    if (first.outcome !== 'stale_fence' || first.lock_fence === null) return first;
    // users.lock_fence is ahead of every token this lock has issued since:
    // either a holder with a newer token wrote while our lease had run out,
    // or Redis lost the counter and its clock stepped back, which would
    // refuse this user forever. Raising the counter to the fence the
    // database holds repairs the second and is harmless in the first; one
    // more attempt under a fresh lock (and a fresh token) then decides.
    try {
      await raiseFence(lockKey, first.lock_fence, client);
    } catch {
      return first; // Redis away: the refusal stands (409, retry later)
    }
    return underLock();
  });
  switch (verdict.outcome) {
    case 'ok':
      if (verdict.body === null) throw new InternalError('balance statement passed its checks but wrote nothing');
      await deps.afterCommit?.();
      return { status, body: JSON.parse(verdict.body) as Body, replayed: false };
    case 'replay':
      return replayOf<Body>(verdict, request.idempotency!);
    case 'no_user':
      throw noAccount(request.userId);
    case 'stale_fence':
      metric('StaleFence');
      throw new LockLostError();
    case 'lock_wait':
      // Rows another transaction held kept it past its cutoff on a database
      // that answered: busy, not away. It wrote nothing.
      throw rowsBusy();
    case 'expired':
      // The way to the database was too slow for a reply in time: it wrote nothing.
      throw new DatabaseUnavailableError(false, { cause: new Error('the balance statement reached the database too late to write') });
    default:
      throw new InternalError(`unexpected balance statement outcome ${verdict.outcome}`);
  }
}

/**
 * One attempt's statement, with its cutoff and request id; after a failure
 * that may have run it, its resolution. Runs under the user's lock, so no
 * other attempt for the user interleaves while the outcome is unknown.
 */
async function applyOnce(
  database: Database,
  userId: number,
  fence: number,
  apply: (database: Database, call: BalanceCall) => Promise<Verdict>,
): Promise<Verdict> {
  const deadline = currentDeadline();
  const { callTimeoutMs, resolveBudgetMs } = config().db;
  // The statement's time ends resolveBudgetMs before the request's, so that
  // a lost reply can still be resolved before the answer is due.
  const timeoutMs = Math.floor(Math.min(callTimeoutMs, deadline.remainingMs() - resolveBudgetMs));
  if (timeoutMs <= 0) {
    throw new DatabaseUnavailableError(false, { cause: new Error('no time left for the balance statement and its resolution') });
  }
  // The database's clock may be behind ours by the skew margin: it passes
  // the cutoff no later than our clock passes the moment we stop waiting.
  const sentAtMs = Date.now();
  const call: BalanceCall = { fence, requestId: randomUUID(), sentAtMs, cutoffMs: sentAtMs + timeoutMs - config().deadline.clockSkewMarginMs, timeoutMs };
  // Labelled with the request id, so that the resolution can tell a
  // statement still queued behind a row lock from one the database never got.
  const labelledDatabase: Database = {
    query: (sql, params, options) => database.query(sql, params, { ...options, label: call.requestId }),
    transaction: (fn) => database.transaction(fn),
  };
  try {
    return await apply(labelledDatabase, call);
  } catch (error) {
    if (!(error instanceof DatabaseUnavailableError) || !error.mayHaveRun) throw error;
    return resolveLostCall(database, userId, call.requestId, deadline, error);
  }
}

export const noAccount = (userId: number) => new NotFoundError(`user ${userId} has no points account`);
