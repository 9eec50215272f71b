import { z } from 'zod';
import { config } from '../platform/config';
import { db, type Database } from '../platform/db';
import { BalanceLimitExceededError, InternalError, NotFoundError } from '../platform/errors';
import {
  keyParams,
  PRIOR_REPLY,
  rememberReply,
  replayOf,
  withRunningMarker,
  type IdempotencyKey,
  type PriorReply,
  type Reply,
} from './idempotency';
import { LockLostError, withLock, type LockOptions } from '../platform/lock';
import { redis, type RedisClient } from '../platform/redis';

/**
 * Points: reading a balance, charging it, and the way every balance change
 * runs (payments, in lib/points/orders, run the same way):
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
 * 4. Lock and marker are released, also when anything above failed.
 *
 * Round trips per request: Data API 1; Redis 2 (acquire, release), plus 2
 * with an Idempotency-Key (marker set, delete) and 1 per lock retry.
 */

export const CHARGE_ROUTE = 'POST /points/charge';
export const MAX_CHARGE = 1_000_000;
export const MAX_BALANCE = 100_000_000;

export const chargeRequest = z.object({ amount: z.number().int().min(1).max(MAX_CHARGE) });

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

/** A user's Redis keys share this hash tag (one cluster slot). */
const userTag = (userId: number) => `{u:${userId}}`;
export const pointLockKey = (userId: number) => `lock:${userTag(userId)}`;

export async function getBalance(userId: number, database: Database = db()): Promise<{ userId: number; balance: number }> {
  // A committed read needs no lock: it sees each change whole or not at all.
  const { rows } = await database.query<{ balance: number }>('SELECT point_balance AS balance FROM users WHERE id = :userId', { userId });
  if (!rows[0]) throw noAccount(userId);
  return { userId, balance: rows[0].balance };
}

export interface ChargeReceipt {
  userId: number;
  charged: number;
  balance: number;
  historyId: number;
}

export async function chargePoints(request: BalanceRequest & { amount: number }, deps: PointsDeps = {}): Promise<Reply<ChargeReceipt>> {
  return changeBalance<ChargeReceipt>(request, 200, deps, async (database, fence) => {
    const { rows } = await database.query<Verdict>(CHARGE, {
      userId: request.userId,
      amount: request.amount,
      fence,
      maxBalance: MAX_BALANCE,
      ...keyParams(CHARGE_ROUTE, request.idempotency),
    });
    const verdict = rows[0]!;
    if (verdict.outcome === 'over_limit') {
      throw new BalanceLimitExceededError(`balance ${verdict.balance} plus ${request.amount} would exceed ${MAX_BALANCE}`);
    }
    return verdict;
  });
}

/**
 * The CTEs every balance statement starts with: `prior`, the key's stored
 * reply, and `account`, the user's row locked for this statement (FOR
 * UPDATE reads its latest committed version, not the statement's snapshot).
 */
export const ACCOUNT = `${PRIOR_REPLY},
  account AS (
    SELECT point_balance, lock_fence FROM users WHERE id = :userId FOR UPDATE
  )`;

/**
 * The outcomes every balance statement's verdict tries first, in this order
 * (changeBalance settles them): a stored reply wins over everything; a
 * holder with a stale fencing token learns nothing else.
 */
export const FIRST_OUTCOMES = `WHEN prior.request_hash IS NOT NULL THEN 'replay'
      WHEN account.point_balance IS NULL THEN 'no_user'
      WHEN account.lock_fence > :fence THEN 'stale_fence'`;

/** The row a balance statement answers with. */
export interface Verdict extends PriorReply {
  outcome: string;
  /** The balance before the change; null without a users row. */
  balance: number | null;
  /** The reply's body (JSON text) when the change was written. */
  body: string | null;
}

// Every write hangs off `charged`, the fenced balance update: without its
// row, nothing else is written.
const CHARGE = `
WITH ${ACCOUNT},
  verdict AS (
    SELECT CASE
      ${FIRST_OUTCOMES}
      WHEN account.point_balance + :amount > :maxBalance THEN 'over_limit'
      ELSE 'ok'
    END AS outcome,
    account.point_balance AS balance, prior.*
    FROM (VALUES (1)) AS one
    LEFT JOIN account ON true
    LEFT JOIN prior ON true
  ),
  charged AS (
    UPDATE users SET point_balance = point_balance + :amount, lock_fence = :fence
    FROM verdict
    WHERE users.id = :userId AND users.lock_fence <= :fence AND verdict.outcome = 'ok'
    RETURNING users.point_balance
  ),
  history AS (
    INSERT INTO point_history (user_id, type, amount, balance_after)
    SELECT :userId, 'CHARGE', :amount, point_balance FROM charged
    RETURNING id, balance_after
  ),
  receipt AS (
    SELECT json_build_object('userId', :userId, 'charged', :amount, 'balance', balance_after, 'historyId', id) AS body
    FROM history
  ),
  ${rememberReply(200)}
SELECT verdict.*, receipt.body FROM verdict LEFT JOIN receipt ON true`;

/**
 * Runs one balance statement for a request under the user's lock (steps 1,
 * 2 and 4 above), then turns its verdict into the reply. `apply` runs the
 * statement with the lock's fencing token and throws its own refusals; the
 * outcomes of FIRST_OUTCOMES and 'ok' are settled here.
 */
export async function changeBalance<Body>(
  request: BalanceRequest,
  status: number,
  deps: PointsDeps,
  apply: (database: Database, fence: number) => Promise<Verdict>,
): Promise<Reply<Body>> {
  const client = deps.redis ?? redis();
  const database = deps.database ?? db();
  const remainingTimeMs = deps.remainingTimeMs ?? (() => Number.POSITIVE_INFINITY);
  const markerTtlMs = Math.min(config().idempotency.markerTtlMs, remainingTimeMs());
  const verdict = await withRunningMarker(userTag(request.userId), request.idempotency, markerTtlMs, client, () =>
    withLock(pointLockKey(request.userId), (lease) => apply(database, lease.fence), { ...deps.lock, client, remainingTimeMs }),
  );
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
      throw new LockLostError();
    default:
      throw new InternalError(`unexpected balance statement outcome ${verdict.outcome}`);
  }
}

const noAccount = (userId: number) => new NotFoundError(`user ${userId} has no points account`);
