import { setTimeout as sleep } from 'node:timers/promises';
import { config } from '../platform/config';
import { DatabaseUnavailableError, STILL_WAITING_ON_LOCK, type Database } from '../platform/db';
import type { Deadline } from '../platform/deadline';
import { LockTimeoutError } from '../platform/errors';
import type { Verdict } from './balance';

/**
 * The extra round trip of an ambiguous failure, and only of one: the
 * request id goes in as a tombstone, or meets the statement's own row.
 *
 * - It runs in a statement of its own, after the lost call, so it does not
 *   read a snapshot older than the statement's commit; and ON CONFLICT DO
 *   UPDATE waits for a conflicting row's transaction (a statement still
 *   committing) and then returns that row's latest committed version, which
 *   a plain SELECT under READ COMMITTED would not.
 * - It waits for no users row lock: a statement still queued behind another
 *   session's lock has written no id yet, so the tombstone wins and that
 *   statement, when it gets its locks, fails on the id (and is past its
 *   cutoff anyway). No waiting for the cutoff is needed either: the key, not
 *   the clock, decides.
 * - It is idempotent, so it is retried while the request's time lasts (a
 *   reset connection, a database restarting).
 */
export async function resolveLostCall(database: Database, userId: number, requestId: string, deadline: Deadline, lost: DatabaseUnavailableError): Promise<Verdict> {
  // What applyOnce kept back from the statement, and no more: a database that
  // does not answer still gets its 503 within DB_CALL_TIMEOUT_MS + DB_RESOLVE_BUDGET_MS.
  const until = deadline.within(config().db.resolveBudgetMs);
  let last: unknown = lost;
  for (let attempt = 0; until.remainingMs() > 0; attempt++) {
    let row: { status_code: number | null; body: string | null; waiting: boolean } | undefined;
    try {
      const { rows } = await database.query<{ status_code: number | null; body: string | null; waiting: boolean }>(
        RESOLVE,
        { requestId, userId, label: requestId },
        { timeoutMs: until.remainingMs() },
      );
      row = rows[0];
    } catch (error) {
      // Whatever kept this call from the database says nothing about the lost one: try again.
      if (!(error instanceof DatabaseUnavailableError)) throw error;
      last = error;
      await sleep(Math.min(50 * 2 ** attempt, 200, until.remainingMs()));
      continue;
    }
    if (row?.status_code != null && row.body !== null) {
      return { outcome: 'ok', body: row.body, balance: null, lock_fence: null, request_hash: null, status_code: null, response_body: null };
    }
    // The tombstone is in: the statement did not commit, and now never will.
    // Still queued behind another transaction's row lock, on a database that
    // just answered: contention, the client may retry (and no alarm).
    if (row?.waiting) throw rowsBusy();
    throw new DatabaseUnavailableError(false, { cause: lost });
  }
  // Out of time without an answer: the statement may still have committed.
  // The one case where a 503 may not be the truth (the database answered the
  // statement and then nothing at all); an Idempotency-Key makes the retry safe.
  throw new DatabaseUnavailableError(true, { cause: last });
}

const RESOLVE = `
WITH tombstone AS (
  INSERT INTO balance_requests (request_id, user_id, resolved_at)
  VALUES (CAST(:requestId AS uuid), :userId, clock_timestamp())
  ON CONFLICT (request_id) DO UPDATE SET resolved_at = clock_timestamp()
  RETURNING status_code, response_body AS body
)
SELECT tombstone.*, ${STILL_WAITING_ON_LOCK} AS waiting FROM tombstone`;

export const rowsBusy = () => new LockTimeoutError('the balance statement waited too long for rows another request was writing; nothing was changed');
