import { purgeStoredReplies } from '../lib/points/idempotency';
import { purgeBalanceRequests } from '../lib/points/points';
import { logger } from '../lib/platform/logger';
import { scheduledHandler } from '../lib/platform/observability';

/**
 * Runs daily (an EventBridge Scheduler schedule, see serverless.yml): drops
 * stored Idempotency-Key replies past their retention, and the request
 * outcomes (balance_requests) that only lost replies of the last seconds
 * need. A failure is thrown, for the scheduler's retry policy to run it
 * again; a rerun is harmless.
 */
export const handler = scheduledHandler('purge-idempotency-keys', async (): Promise<{ purged: number; purgedRequests: number }> => {
  const purged = await purgeStoredReplies();
  const purgedRequests = await purgeBalanceRequests();
  logger.info('idempotency keys and request outcomes purged', { purged, purgedRequests });
  return { purged, purgedRequests };
});
