import * as z from 'zod/mini';
import { config } from '../../platform/config';
import { asJson, db, type Database } from '../../platform/db';
import { unavailableDependency } from '../../platform/dependency-errors';
import { AppError, InternalError } from '../../platform/errors';
import { raiseFence, withLock, type LockOptions } from '../../platform/lock';
import { logger } from '../../platform/logger';
import { metric } from '../../platform/metrics';
import { redis, type RedisClient } from '../../platform/redis/client';
import { pointLockKey } from '../keys';
import { MAX_BALANCE } from '../points';
import { APPLY_RUN } from './apply-sql';
import { queuedRecord, type QueuedRequest } from './record';
import { pointLockOptions } from '../settings';
import { queueSettings } from './settings';

/**
 * The consumer of queued point requests: what the Kinesis event source
 * mapping invokes with a batch of one shard's records, in order.
 *
 * 1. Every record is decoded first. One that cannot be is a bug or a
 *    forgery: the whole batch fails before anything is applied (a function
 *    error), so the mapping bisects it, retries it, and hands it to the
 *    on-failure destination.
 * 2. A record the stream took in after its accepting function gave up
 *    (`until`, lib/points/queue/accept) was answered 503: it is skipped.
 * 3. The batch is split into runs, one per user, each in stream order.
 *    Runs of different users are applied concurrently; each run takes its
 *    user's point lock once (the lock direct charges and payments take, so
 *    they never interleave) and applies all its requests with ONE statement
 *    (APPLY_RUN): one Data API call and two Redis commands per user per
 *    batch, however many requests the run holds.
 * 4. A run that fails for a reason that may pass (a dependency, the lock
 *    not free in time, a stale fence, a race lost to the same request id)
 *    is reported as a batch item failure at its first record, and the run
 *    stops there: the user's later requests must not overtake it. The
 *    mapping retries from the lowest failure; runs already applied find
 *    their rows and change nothing. Any other error fails the batch.
 */

/** A record as the consumer needs it (the handler unwraps the Kinesis event). */
export interface StreamRecord {
  sequenceNumber: string;
  /** The record's data, as UTF-8 text. */
  data: string;
  /** When the stream took the record in, ms since the epoch. */
  arrivalMs: number;
}

export interface BatchOutcome {
  /** Sequence numbers of the first record of each run that failed (to be retried). */
  failed: string[];
  applied: number;
  rejected: number;
  /** Already had an outcome (a redelivery). */
  known: number;
}

export interface ApplyDeps {
  database?: Database;
  redis?: RedisClient;
  lock?: Pick<LockOptions, 'leaseMs' | 'waitBudgetMs'>;
  remainingTimeMs?: () => number;
  /** Runs of different users applied at once. */
  concurrency?: number;
}

/** A record that does not decode: not retryable by itself; the batch fails so the mapping can isolate it. */
export class PoisonRecordError extends InternalError {}

interface Decoded {
  sequenceNumber: string;
  request: QueuedRequest;
}

export function decodeRecord(record: StreamRecord): QueuedRequest {
  let value: unknown;
  try {
    value = JSON.parse(record.data);
  } catch {
    throw new PoisonRecordError(`record ${record.sequenceNumber} is not JSON`);
  }
  const parsed = z.safeParse(queuedRecord, value);
  if (!parsed.success) throw new PoisonRecordError(`record ${record.sequenceNumber} is not a queued point request: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export async function applyBatch(records: StreamRecord[], deps: ApplyDeps = {}): Promise<BatchOutcome> {
  const decoded: Decoded[] = [];
  for (const record of records) {
    const request = decodeRecord(record);
    if (record.arrivalMs > request.until) {
      logger.warn('queued request reached the stream after its 503; skipped', { requestId: request.id, late: record.arrivalMs - request.until });
      continue;
    }
    decoded.push({ sequenceNumber: record.sequenceNumber, request });
  }
  const runs = new Map<number, Decoded[]>();
  for (const item of decoded) {
    const run = runs.get(item.request.user);
    if (run) run.push(item);
    else runs.set(item.request.user, [item]);
  }
  const outcome: BatchOutcome = { failed: [], applied: 0, rejected: 0, known: 0 };
  let fatal: unknown;
  const queue = [...runs.values()];
  const worker = async () => {
    for (let run = queue.shift(); run; run = queue.shift()) {
      try {
        const result = await applyRun(run, deps);
        outcome.applied += result.applied;
        outcome.rejected += result.rejected;
        outcome.known += result.known;
      } catch (error) {
        if (!retryable(error)) {
          fatal ??= error;
          continue;
        }
        logger.warn('queued run failed; the mapping retries it', { userId: run[0]!.request.user, requests: run.length, error: (error as Error).message });
        outcome.failed.push(run[0]!.sequenceNumber);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(deps.concurrency ?? 8, queue.length) }, worker));
  if (fatal) throw fatal;
  metric('PointRequestApplied', outcome.applied);
  metric('PointRequestRejected', outcome.rejected);
  if (outcome.failed.length > 0) metric('PointRequestRetried', outcome.failed.length);
  const oldest = Math.min(...records.map((record) => record.arrivalMs));
  if (Number.isFinite(oldest)) metric('PointRequestAgeMs', Math.max(0, Date.now() - oldest));
  return outcome;
}

/** What may pass by itself: the mapping's retry is the remedy. */
function retryable(error: unknown): boolean {
  if (error instanceof RunRetry) return true;
  if (error instanceof AppError) return error.status === 503 || error.code === 'LOCK_TIMEOUT';
  return unavailableDependency(error) !== undefined;
}

/** A run that wrote nothing and should be tried again (expired, stale fence, a lost race). */
class RunRetry extends Error {}

interface RunVerdict {
  state: 'ok' | 'expired' | 'stale_fence';
  lock_fence: number | null;
  known: string;
  outcomes: string;
}

async function applyRun(run: Decoded[], deps: ApplyDeps): Promise<{ applied: number; rejected: number; known: number }> {
  const userId = run[0]!.request.user;
  const database = deps.database ?? db();
  const client = deps.redis ?? redis();
  const lockKey = pointLockKey(userId);
  // A request id twice in one run (a repeated key put again): its first place counts.
  const seen = new Set<string>();
  const requests = run
    .filter(({ request }) => !seen.has(request.id) && seen.add(request.id))
    .map(({ request }, n) => ({
      n,
      id: request.id,
      route: request.route,
      amount: request.route === 'POST /points/charge' ? request.body.amount : null,
      lines: request.route === 'POST /orders' ? request.body.items.map((line, index) => ({ item_id: line.itemId, quantity: line.quantity, line_no: index })) : null,
      key: request.key ?? null,
      hash: request.hash ?? null,
      accepted_ms: request.at,
    }));
  const timeoutMs = queueSettings().POINT_REQUEST_RUN_TIMEOUT_MS;
  const verdict = await withLock(
    lockKey,
    async (lease) => {
      const { rows } = await database.query<RunVerdict>(
        APPLY_RUN,
        {
          userId,
          fence: lease.fence,
          cutoffMs: Date.now() + timeoutMs - config().deadline.clockSkewMarginMs,
          maxBalance: MAX_BALANCE,
          requests: asJson(requests),
          requestCount: requests.length,
          lineCount: requests.reduce((sum, request) => sum + (request.lines?.length ?? 0), 0),
        },
        { timeoutMs },
      );
      return rows[0]!;
    },
    { ...pointLockOptions(), ...deps.lock, client, remainingTimeMs: deps.remainingTimeMs },
  ).catch((error: unknown) => {
    // The same request id inserted by a statement that won a race (a lost
    // reply's statement and its retry): the retry finds its row.
    if (!(error instanceof AppError) && unavailableDependency(error) === undefined && /point_requests_pkey|idempotency_keys_pkey/.test(String((error as Error).message))) {
      throw new RunRetry('another statement applied these requests first', { cause: error });
    }
    throw error;
  });
  if (verdict.state === 'stale_fence') {
    metric('StaleFence');
    // As in lib/points/balance: a database ahead of Redis' counter would refuse this user forever.
    if (verdict.lock_fence !== null) await raiseFence(lockKey, verdict.lock_fence, client).catch(() => undefined);
    throw new RunRetry('a newer lock holder has written');
  }
  if (verdict.state === 'expired') throw new RunRetry('the run statement got its row locks after its cutoff');
  const outcomes = JSON.parse(verdict.outcomes) as { id: string; status: string; statusCode: number }[];
  const known = (JSON.parse(verdict.known) as string[]).length;
  return {
    applied: outcomes.filter((o) => o.status === 'DONE').length,
    rejected: outcomes.filter((o) => o.status === 'REJECTED').length,
    known,
  };
}
