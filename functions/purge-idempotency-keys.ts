import { purgeStoredReplies } from '../lib/points/idempotency';
import { logger } from '../lib/platform/logger';
import { scheduledHandler } from '../lib/platform/observability';

/**
 * Runs daily (an EventBridge Scheduler schedule, see serverless.yml): drops
 * stored Idempotency-Key replies past their retention. A failure is thrown,
 * for the scheduler's retry policy to run it again; a rerun is harmless.
 */
export const handler = scheduledHandler('purge-idempotency-keys', async (): Promise<{ purged: number }> => {
  const purged = await purgeStoredReplies();
  logger.info('idempotency keys purged', { purged });
  return { purged };
});
