import { createHash, randomBytes } from 'node:crypto';
import { ReplyError } from 'ioredis';
import * as z from 'zod/mini';
import { db, deleteInBatches, type Queryable } from '../platform/db';
import { IdempotencyInProgressError, IdempotencyKeyReusedError, InternalError } from '../platform/errors';
import { header, json, parseBody, validate, type HttpEvent, type HttpResult } from '../platform/http';
import { logger } from '../platform/logger';
import { type RedisClient } from '../platform/redis/client';
import { runScript } from '../platform/redis/scripts';
import { idempotencyMarkerKey } from './keys';
import { claimScript, releaseScript } from './scripts';
import { pointsSettings } from './settings';

/**
 * Idempotency-Key (docs/api.md), scoped to (user, route, key).
 *
 * The reply to a successful request is stored by the same database statement
 * as its effect (the CTEs prior and remembered of lib/points/charge.sql and
 * pay.sql), so it exists exactly when the effect committed: a crash between
 * the commit and the response cannot lead a retry to charge twice. That
 * statement runs under the user's point lock, which makes its look-up of an
 * earlier reply race-free.
 *
 * A Redis marker, held while the request runs, only turns a concurrent
 * duplicate into an immediate 409 (or 422 when its body differs) instead of
 * a wait for the lock; correctness never depends on it.
 */

/** The answer to a request: fresh, or the stored first answer replayed. */
export interface Reply<Body> {
  status: number;
  body: Body;
  replayed: boolean;
}

export interface IdempotencyKey {
  /** e.g. 'POST /orders': the same key on another route is another key. */
  route: string;
  key: string;
  /** SHA-256 of the body's canonical JSON: the same JSON value, the same hash. */
  requestHash: string;
}

const keyHeader = z.string().check(z.regex(/^[!-~]{1,255}$/, 'must be 1 to 255 characters from ! to ~ (no spaces)'));

/**
 * A POST's body and Idempotency-Key, checked in the contract's order: the
 * body (400), then the header (400). The hash covers the whole body as sent,
 * unknown fields included.
 */
export function parseKeyedRequest<S extends z.core.$ZodType>(
  event: HttpEvent,
  schema: S,
  route: string,
): { body: z.output<S>; idempotency: IdempotencyKey | undefined } {
  const sent = parseBody(event, z.unknown());
  const body = validate(schema, sent, 'body');
  const key = header(event, 'idempotency-key');
  if (key === undefined) return { body, idempotency: undefined };
  return { body, idempotency: { route, key: validate(keyHeader, key, 'Idempotency-Key header'), requestHash: requestHash(sent) } };
}

export function requestHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/**
 * JSON with object keys sorted at every depth: equal JSON values, equal text.
 *
 * Iterative, with an explicit stack: a body is client input, and JSON.parse
 * accepts nesting far deeper than any recursion (or JSON.stringify) survives,
 * so a 100,000-deep unknown field must hash like any other, not overflow the
 * stack into a 500.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  // Either a value still to write or literal text, popped in order.
  const pending: Array<{ value: unknown } | string> = [{ value }];
  while (pending.length > 0) {
    const next = pending.pop()!;
    if (typeof next === 'string') {
      out.push(next);
      continue;
    }
    const current = next.value;
    if (Array.isArray(current)) {
      out.push('[');
      pending.push(']');
      for (let i = current.length - 1; i >= 0; i--) {
        pending.push({ value: current[i] });
        if (i > 0) pending.push(',');
      }
    } else if (current !== null && typeof current === 'object') {
      const entries = Object.entries(current).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      out.push('{');
      pending.push('}');
      for (let i = entries.length - 1; i >= 0; i--) {
        const [name, field] = entries[i]!;
        pending.push({ value: field });
        pending.push(`${i > 0 ? ',' : ''}${JSON.stringify(name)}:`);
      }
    } else {
      // Values come from JSON.parse: strings, numbers, booleans and null.
      out.push(JSON.stringify(current) ?? 'null');
    }
  }
  return out.join('');
}

export function httpReply(reply: Reply<unknown>): HttpResult {
  return json(reply.status, reply.body, reply.replayed ? { 'idempotent-replayed': 'true' } : {});
}

/**
 * Runs fn with the key's "still running" marker set. A duplicate arriving
 * meanwhile gets 409 IDEMPOTENCY_IN_PROGRESS (with Retry-After), or 422 when
 * its body differs. Costs two Redis round trips (claim, release), only for
 * keyed requests.
 *
 * The marker's value is the request's hash and a nonce of this request: a
 * claim that runs twice (re-sent after a reconnect) finds its own marker and
 * is still claimed, and only its owner deletes it, so a request whose marker
 * expired mid-way cannot delete the marker of the next one. The claim is a
 * deadline script: one that reaches Redis after this request gave up (a
 * paused Redis resuming) sets nothing, so a 503 leaves no marker behind to
 * turn the client's retry into a 409.
 *
 * The marker lives at most ttlMs: a request killed mid-way blocks retries of
 * its key no longer than that, after which the stored reply (or its absence)
 * decides. A key holding anything else (a bug, a manual edit) is a 500, not
 * taken for a request running.
 */
export async function withRunningMarker<T>(
  userId: number,
  idempotency: IdempotencyKey | undefined,
  ttlMs: number,
  client: RedisClient,
  fn: () => Promise<T>,
): Promise<T> {
  if (!idempotency) return fn();
  const marker = idempotencyMarkerKey(userId, idempotency.route, idempotency.key);
  const owner = `${idempotency.requestHash} ${randomBytes(12).toString('hex')}`;
  const release = () => runScript(releaseScript, [marker], [owner], client);
  const running = await runScript<string | null>(claimScript, [marker], [owner, Math.max(1, Math.floor(ttlMs))], client).catch((error: unknown) => {
    // The claim may have run with its reply lost: take it back, without
    // making the 503 wait, so a retry of the key is not a 409 until it expires.
    release().catch(() => undefined);
    if (error instanceof ReplyError && (error as Error).message.startsWith('CORRUPT ')) {
      throw new InternalError(`idempotency claim refused: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  });
  if (running !== null) {
    if (running !== idempotency.requestHash) throw reusedKey();
    throw new IdempotencyInProgressError('a request with this Idempotency-Key is still being processed');
  }
  try {
    return await fn();
  } finally {
    await release().catch((error: Error) =>
      logger.warn('idempotency marker not deleted; it will expire', { error: error.message }),
    );
  }
}

const reusedKey = () => new IdempotencyKeyReusedError('this Idempotency-Key was used with a different request');

export function keyParams(route: string, idempotency: IdempotencyKey | undefined) {
  return { route, key: idempotency?.key ?? null, requestHash: idempotency?.requestHash ?? null };
}

/** The columns the CTE `prior` of a balance statement (lib/points/charge.sql) adds to its reply. */
export interface PriorReply {
  request_hash: string | null;
  status_code: number | null;
  response_body: string | null;
}

/** The stored first reply, or 422 when the key first came with another request. */
export function replayOf<Body>(prior: PriorReply, idempotency: IdempotencyKey): Reply<Body> {
  if (prior.request_hash !== idempotency.requestHash) throw reusedKey();
  return { status: prior.status_code!, body: JSON.parse(prior.response_body!) as Body, replayed: true };
}

/**
 * Deletes stored replies older than the retention (IDEMPOTENCY_RETENTION_DAYS,
 * at least a day as docs/api.md promises), in batches so that no statement runs
 * near the Data API's 45 s limit or holds many row locks. Run daily by the
 * purge-idempotency-keys function. Returns how many were deleted.
 */
export async function purgeStoredReplies(
  retentionDays: number = pointsSettings().IDEMPOTENCY_RETENTION_DAYS,
  database: Queryable = db(),
  batchSize = 5000,
): Promise<number> {
  return deleteInBatches(
    database,
    `DELETE FROM idempotency_keys
     WHERE (user_id, route, idempotency_key) IN (
       SELECT user_id, route, idempotency_key FROM idempotency_keys
       WHERE created_at < now() - make_interval(days => CAST(:retentionDays AS integer))
       LIMIT :batchSize
     )`,
    { retentionDays },
    batchSize,
  );
}
