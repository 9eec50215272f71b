import { purgeStoredReplies } from '../lib/points/idempotency';
import { purgeBalanceRequests } from '../lib/points/purge';
import { purgePointRequests } from '../lib/points/queue/purge';
import { jobDeadlineOf, withDeadline } from '../lib/platform/deadline';
import { logger } from '../lib/platform/logger';
import { scheduledHandler } from '../lib/platform/observability';

/**
 * Runs daily (an EventBridge Scheduler schedule, see serverless.yml): drops
 * stored Idempotency-Key replies past their retention, and the request
 * outcomes (balance_requests) that only lost replies of the last seconds
 * need, and queued requests' outcomes (point_requests) past the same
 * retention as the keys. Its calls are bounded by the invocation's remaining time (a
 * JobDeadline), not by a request's per-call cap. A failure is thrown: Lambda
 * retries the invocation twice (its async invoke config, deploy/resources.js),
 * then sends it to the scheduled functions' dead-letter queue, whose alarm
 * fires; a rerun is harmless.
 */
export const handler = scheduledHandler('purge-idempotency-keys', async (context): Promise<{ purged: number; purgedRequests: number; purgedQueued: number }> => {
  const purge = async () => {
    const purged = await purgeStoredReplies();
    const purgedRequests = await purgeBalanceRequests();
    const purgedQueued = await purgePointRequests();
    return { purged, purgedRequests, purgedQueued };
  };
  // Without a context (a direct call) each call keeps the default budget.
  const summary = context ? await withDeadline(jobDeadlineOf(context), purge) : await purge();
  logger.info('idempotency keys and request outcomes purged', { ...summary });
  return summary;
});
