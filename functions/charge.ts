import { callerId } from '../lib/platform/auth';
import { httpHandler, json } from '../lib/platform/http';
import { metric } from '../lib/platform/metrics';
import { httpReply, parseKeyedRequest } from '../lib/points/idempotency';
import { CHARGE_ROUTE, chargePoints, chargeRequest, getBalance } from '../lib/points/points';
import { acceptedReply, enqueuePointRequest, prefersAsync } from '../lib/points/queue/accept';

/**
 * GET /points: 200 { userId, balance }.
 * POST /points/charge: 200 { userId, charged, balance, historyId }; optional Idempotency-Key.
 *   With `Prefer: respond-async`: 202 { requestId, status: PENDING }, applied later (lib/points/queue).
 */
export const handler = httpHandler(async (event, context) => {
  const userId = callerId(event);
  if (event.routeKey === 'GET /points') return json(200, await getBalance(userId));
  const { body, idempotency } = parseKeyedRequest(event, chargeRequest, CHARGE_ROUTE);
  if (prefersAsync(event)) return acceptedReply(await enqueuePointRequest({ userId, route: CHARGE_ROUTE, body, idempotency }));
  const reply = await chargePoints(
    { userId, amount: body.amount, idempotency },
    { remainingTimeMs: () => context.getRemainingTimeInMillis() },
  );
  // A replay moved no points (IdempotentReplay is counted in httpHandler).
  if (!reply.replayed) {
    metric('PointsCharged');
    metric('ChargedAmount', reply.body.charged);
  }
  return httpReply(reply);
});
