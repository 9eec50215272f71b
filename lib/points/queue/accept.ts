import { randomBytes } from 'node:crypto';
import { config } from '../../platform/config';
import { currentDeadline } from '../../platform/deadline';
import { IdempotencyKeyReusedError } from '../../platform/errors';
import { header, json, type HttpEvent, type HttpResult } from '../../platform/http';
import { logger } from '../../platform/logger';
import { metric } from '../../platform/metrics';
import { redis, type RedisClient } from '../../platform/redis/client';
import { runScript } from '../../platform/redis/scripts';
import { putRecord } from '../../platform/stream';
import type { IdempotencyKey } from '../idempotency';
import { acceptScript, forgetScript } from '../scripts';
import { acceptedMarkerKey } from './keys';
import { requestIdOf, type QueuedRequest } from './record';
import { queueSettings } from './settings';

/**
 * Accepting a queued point request (`Prefer: respond-async`): the body and
 * the key were checked as for a direct request; here the request is put on
 * the stream and answered 202. No lock and no database call: that is what
 * keeps this path short whatever the user's other requests are doing.
 *
 * Round trips: Redis 1 (the accepted marker, which GET answers PENDING
 * from and which turns a repeated key with another body into a 422 without
 * asking the database), Kinesis 1 (PutRecord). The marker is written first:
 * a record on the stream always has a marker, so its request is never a
 * 404 while pending.
 *
 * A repeated key with the same body is put again: the first put may have
 * failed (its client got a 503 and retried), and a second record of the
 * same request id is a no-op for the consumer, which applies a request id
 * once. A put that fails is a 503 and its marker is taken back; a record
 * the stream took in after this function stopped waiting carries that
 * moment (`until`) and the consumer ignores it, so a 503 here means nothing
 * was queued.
 */

/** How long the put may take: with the marker, a 503 within about 2 s when the stream does not answer. */
const PUT_TIMEOUT_MS = 1500;

export interface QueueInput {
  userId: number;
  route: QueuedRequest['route'];
  body: QueuedRequest['body'];
  idempotency: IdempotencyKey | undefined;
}

export interface Accepted {
  requestId: string;
  /** The key was accepted before, with the same body. */
  replayed: boolean;
}

export async function enqueuePointRequest(input: QueueInput, deps: { redis?: RedisClient } = {}): Promise<Accepted> {
  const client = deps.redis ?? redis();
  const { userId, route, idempotency } = input;
  const requestId = requestIdOf(userId, route, idempotency);
  const marker = acceptedMarkerKey(userId, requestId);
  const hash = idempotency?.requestHash ?? '-';
  const owner = `${hash} ${randomBytes(12).toString('hex')}`;
  const firstHash = await runScript<string | null>(acceptScript, [marker], [owner, queueSettings().POINT_REQUEST_MARKER_TTL_S], client);
  if (firstHash !== null && firstHash !== hash) throw new IdempotencyKeyReusedError('this Idempotency-Key was used with a different request');
  const replayed = firstHash !== null;

  const at = Date.now();
  const timeoutMs = Math.min(PUT_TIMEOUT_MS, currentDeadline().remainingMs());
  const until = at + timeoutMs - config().deadline.clockSkewMarginMs;
  const record = {
    v: 1,
    id: requestId,
    user: userId,
    route,
    body: input.body,
    ...(idempotency ? { key: idempotency.key, hash: idempotency.requestHash } : {}),
    at,
    until,
  };
  try {
    await putRecord(queueSettings().POINT_REQUEST_STREAM, String(userId), JSON.stringify(record), { timeoutMs });
  } catch (error) {
    // A replay's marker belongs to the first request, which may be queued.
    if (!replayed) {
      await runScript(forgetScript, [marker], [owner], client).catch((forgetError: Error) =>
        logger.warn('accepted marker not taken back; it expires', { error: forgetError.message }),
      );
    }
    throw error;
  }
  metric('PointRequestQueued');
  return { requestId, replayed };
}

/** RFC 7240: does the request carry the preference `respond-async` (among others, with parameters or not)? */
export function prefersAsync(event: HttpEvent): boolean {
  const prefer = header(event, 'prefer');
  if (prefer === undefined) return false;
  return prefer.split(',').some((preference) => preference.split(';')[0]!.trim().toLowerCase() === 'respond-async');
}

/** 202 { requestId, status: PENDING } with Location and Preference-Applied. */
export function acceptedReply(accepted: Accepted): HttpResult {
  return json(
    202,
    { requestId: accepted.requestId, status: 'PENDING' },
    {
      location: `/points/requests/${accepted.requestId}`,
      'preference-applied': 'respond-async',
      ...(accepted.replayed ? { 'idempotent-replayed': 'true' } : {}),
    },
  );
}
