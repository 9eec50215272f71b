import { createHash, randomBytes } from 'node:crypto';
import * as z from 'zod/mini';
import { idNumber } from '../../platform/http';
import type { IdempotencyKey } from '../idempotency';
import { orderRequest, PAY_ROUTE } from '../orders';
import { CHARGE_ROUTE, chargeRequest } from '../points';

/**
 * One queued point request as it travels on the stream (partition key: the
 * user id, so a shard keeps each user's requests in the order they were
 * accepted). Versioned: a consumer meets records written by older code.
 */

export const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;

const common = {
  v: z.literal(1),
  id: z.string().check(z.regex(REQUEST_ID)),
  user: idNumber,
  /** The Idempotency-Key and the body's hash, when the request had one. */
  key: z.optional(z.string()),
  hash: z.optional(z.string()),
  /** When the request was accepted, ms since the epoch. */
  at: z.number(),
  /**
   * ms since the epoch: the accepting function stopped waiting for its put
   * then (less the clock skew margin), and answered 503 if the put had not
   * answered. A record the stream took in only after it was never accepted.
   */
  until: z.number(),
};

export const queuedRecord = z.discriminatedUnion('route', [
  z.object({ ...common, route: z.literal(CHARGE_ROUTE), body: chargeRequest }),
  z.object({ ...common, route: z.literal(PAY_ROUTE), body: orderRequest }),
]);

export type QueuedRequest = z.output<typeof queuedRecord>;

/**
 * The request id: with an Idempotency-Key, derived from (user, route, key),
 * so a repeat gets the same id without a look-up, and a key used on both
 * paths names one request; without one, random. 43 or 22 characters of
 * base64url, inside the contract's 1..64 of A-Z a-z 0-9 - _.
 */
export function requestIdOf(userId: number, route: string, idempotency: IdempotencyKey | undefined): string {
  if (!idempotency) return randomBytes(16).toString('base64url');
  return createHash('sha256').update(`${userId}\n${route}\n${idempotency.key}`).digest('base64url');
}

/** A requestId in a path: anything else is a 400. */
export const requestIdPath = z.string().check(z.regex(REQUEST_ID, 'must be 1 to 64 characters of A-Z a-z 0-9 - _'));
