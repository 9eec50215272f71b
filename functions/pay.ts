import { callerId } from '../lib/platform/auth';
import { httpHandler } from '../lib/platform/http';
import { metric } from '../lib/platform/metrics';
import { httpReply, parseKeyedRequest } from '../lib/points/idempotency';
import { orderRequest, PAY_ROUTE, payOrder } from '../lib/points/orders';
import { acceptedReply, enqueuePointRequest, prefersAsync } from '../lib/points/queue/accept';

/**
 * POST /orders: 201 { orderId, userId, status, totalAmount, balance, items }; optional Idempotency-Key.
 * With `Prefer: respond-async`: 202 { requestId, status: PENDING }, applied later (lib/points/queue).
 */
export const handler = httpHandler(async (event, context) => {
  const userId = callerId(event);
  const { body, idempotency } = parseKeyedRequest(event, orderRequest, PAY_ROUTE);
  if (prefersAsync(event)) return acceptedReply(await enqueuePointRequest({ userId, route: PAY_ROUTE, body, idempotency }));
  const reply = await payOrder({ userId, items: body.items, idempotency }, { remainingTimeMs: () => context.getRemainingTimeInMillis() });
  // A replay paid nothing (IdempotentReplay is counted in httpHandler).
  if (!reply.replayed) {
    metric('OrderPaid');
    metric('OrderAmount', reply.body.totalAmount);
  }
  return httpReply(reply);
});
