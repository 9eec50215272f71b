import { z } from 'zod';
import { idNumber } from '../platform/http';

/**
 * The response bodies of the HTTP contract (../shared/API.md), as zod
 * schemas: lib/openapi/document publishes them, and the e2e tests check live
 * answers against the published document. Strict objects: a field the
 * document does not name is a mismatch, so the document grows with the API.
 */

const count = z.number().int().min(0);
const amount = z.number().int().min(0);
const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/).describe('YYYY-MM-DD in the business time zone');

export const likeChange = (liked: boolean) =>
  z.strictObject({
    postId: idNumber,
    liked: z.literal(liked),
    changed: z.boolean().describe(liked ? 'true when this request added the like' : 'true when this request removed the like'),
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
  items: z.array(z.strictObject({ itemId: idNumber, quantity: z.number().int().min(1), unitPrice: amount })),
});

export const popularItems = z.strictObject({
  days: z.number().int().min(1),
  limit: z.number().int().min(1),
  from: day,
  to: day,
  items: z.array(
    z.strictObject({ rank: z.number().int().min(1), itemId: idNumber, name: z.string(), price: amount, soldQuantity: z.number().int().min(1) }),
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
  status: z.number().int().min(400).max(599),
  code: z.enum(problemCodes),
  detail: z.string(),
  instance: z.string().optional().describe("the request's correlation id, as in the logs and the HTTP API access log"),
});
