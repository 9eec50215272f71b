import { purgeStoredReplies } from '../lib/points/idempotency';
import { logger } from '../lib/platform/logger';

/**
 * Runs daily (an EventBridge Scheduler schedule, see serverless.yml): drops
 * stored Idempotency-Key replies past their retention. A failure is thrown,
 * for the scheduler's retry policy to run it again; a rerun is harmless.
 */
export const handler = async (): Promise<{ purged: number }> => {
  const purged = await purgeStoredReplies();
  logger.info('idempotency keys purged', { purged });
  return { purged };
};
