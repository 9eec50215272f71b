import * as z from 'zod/mini';
import { idNumber } from '../platform/http';

/**
 * The response bodies of the HTTP contract (docs/api.md), as zod
 * schemas: lib/openapi/document publishes them, and the e2e tests check live
 * answers against the published document. Strict objects: a field the
 * document does not name is a mismatch, so the document grows with the API.
 */

const integer = (min: number) => z.number().check(z.int(), z.minimum(min));
const count = integer(0);
const amount = integer(0);
const day = z.string().check(z.regex(/^\d{4}-\d{2}-\d{2}$/), z.describe('YYYY-MM-DD in the business time zone'));

export const likeChange = (liked: boolean) =>
  z.strictObject({
    postId: idNumber,
    liked: z.literal(liked),
    changed: z.boolean().check(z.describe(liked ? 'true when this request added the like' : 'true when this request removed the like')),
    likeCount: count,
  });

export const likeStatus = z.strictObject({ postId: idNumber, likeCount: count, likedByMe: z.boolean() });
export const receivedLikes = z.strictObject({ userId: idNumber, receivedLikeCount: count });

export const balance = z.strictObject({ userId: idNumber, balance: amount });
export const chargeReceipt = z.strictObject({ userId: idNumber, charged: amount, balance: amount, historyId: idNumber });
export const orderReceipt = z.strictObject({
  orderId: idNumber,
  userId: idNumber,
  status: z.literal('PAID'),
  totalAmount: amount,
  balance: amount,
  items: z.array(z.strictObject({ itemId: idNumber, quantity: integer(1), unitPrice: amount })),
});

export const popularItems = z.strictObject({
  days: integer(1),
  limit: integer(1),
  from: day,
  to: day,
  items: z.array(
    z.strictObject({ rank: integer(1), itemId: idNumber, name: z.string(), price: amount, soldQuantity: integer(1) }),
  ),
});

export const trendingItems = z.strictObject({
  minutes: integer(1),
  limit: integer(1),
  asOf: z.string().check(z.describe('the ISO 8601 UTC instant the ranking is as of')),
  items: z.array(
    z.strictObject({ rank: integer(1), itemId: idNumber, name: z.string(), price: amount, soldQuantity: integer(1) }),
  ),
});

const part = z.enum(['ok', 'down']);
export const health = z.strictObject({ redis: part, database: part });

export const problemCodes = [
  'VALIDATION_ERROR',
  'UNAUTHORIZED',
  'NOT_FOUND',
  'INSUFFICIENT_BALANCE',
  'OUT_OF_STOCK',
  'BALANCE_LIMIT_EXCEEDED',
  'LOCK_TIMEOUT',
  'IDEMPOTENCY_IN_PROGRESS',
  'IDEMPOTENCY_KEY_REUSED',
  'DEPENDENCY_UNAVAILABLE',
  'INTERNAL',
] as const;

/** RFC 9457 problem details, as every function answers an error. */
export const problem = z.strictObject({
  type: z.string(),
  title: z.string(),
  status: z.number().check(z.int(), z.minimum(400), z.maximum(599)),
  code: z.enum(problemCodes),
  detail: z.string(),
  instance: z.optional(z.string()).check(z.describe("the request's correlation id, as in the logs and the HTTP API access log")),
});

/** 202 to a queued charge or order (Prefer: respond-async). */
export const queuedRequest = z.strictObject({ requestId: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/)), status: z.literal('PENDING') });

/** GET /points/requests/{requestId}: PENDING, or the outcome a direct request would have had. */
export const pointRequest = z.union([
  queuedRequest,
  z.strictObject({
    requestId: z.string(),
    status: z.enum(['DONE', 'REJECTED']),
    statusCode: z.number().check(z.int()).check(z.describe('200 (charge) or 201 (order) when DONE; 404, 409, 422 or 503 when REJECTED')),
    result: z.union([chargeReceipt, orderReceipt, problem]),
  }),
]);
