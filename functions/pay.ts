import { callerId } from '../lib/auth';
import { httpHandler } from '../lib/http';
import { httpReply, parseKeyedRequest } from '../lib/idempotency';
import { orderRequest, PAY_ROUTE, payOrder } from '../lib/orders';

/** POST /orders: 201 { orderId, userId, status, totalAmount, balance, items }; optional Idempotency-Key. */
export const handler = httpHandler(async (event, context) => {
  const userId = callerId(event);
  const { body, idempotency } = parseKeyedRequest(event, orderRequest, PAY_ROUTE);
  const reply = await payOrder({ userId, items: body.items, idempotency }, { remainingTimeMs: () => context.getRemainingTimeInMillis() });
  return httpReply(reply);
});
