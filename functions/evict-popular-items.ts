import { logger } from '../lib/platform/logger';
import { scheduledHandler } from '../lib/platform/observability';
import { refreshPopularItems, type PopularItemsRefresh } from '../lib/popular-items/popular-items';

/**
 * Runs at 00:00 in the business time zone (an EventBridge Scheduler schedule,
 * see serverless.yml), and once per `npm run evict-popular-items`. The event
 * carries nothing it needs, so it may be called with none; the environment is
 * read on first use, so a script may set it after importing this module. A
 * failure is thrown, for the scheduler's retry policy to run it again.
 */
export const handler = scheduledHandler('evict-popular-items', async (): Promise<PopularItemsRefresh> => {
  try {
    const summary = await refreshPopularItems();
    logger.info('popular items evicted and re-warmed', { ...summary });
    return summary;
  } catch (error) {
    logger.error('popular items eviction failed', { error });
    throw error;
  }
});
