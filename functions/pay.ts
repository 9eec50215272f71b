import { callerId } from '../lib/platform/auth';
import { httpHandler } from '../lib/platform/http';
import { httpReply, parseKeyedRequest } from '../lib/points/idempotency';
import { orderRequest, PAY_ROUTE, payOrder } from '../lib/points/orders';

/** POST /orders: 201 { orderId, userId, status, totalAmount, balance, items }; optional Idempotency-Key. */
export const handler = httpHandler(async (event, context) => {
  const userId = callerId(event);
  const { body, idempotency } = parseKeyedRequest(event, orderRequest, PAY_ROUTE);
  const reply = await payOrder({ userId, items: body.items, idempotency }, { remainingTimeMs: () => context.getRemainingTimeInMillis() });
  return httpReply(reply);
});
