import type { Context } from 'aws-lambda';
import { JobDeadline, jobDeadlineOf, withDeadline } from '../lib/platform/deadline';
import { logger } from '../lib/platform/logger';
import { scheduledHandler } from '../lib/platform/observability';
import { refreshPopularItems, type PopularItemsRefresh } from '../lib/popular-items/popular-items';

/**
 * Runs at 00:00 in the business time zone (an EventBridge Scheduler schedule,
 * see serverless.yml), and once per `npm run evict-popular-items`: recomputes
 * the daily sales rollup for the longest window (storing the day that just
 * ended), drops every cached variant, and re-warms the default one. The event
 * carries nothing it needs, so it may be called with none; the environment is
 * read on first use, so a script may set it after importing this module. A
 * failure is thrown: Lambda retries the invocation twice (its async invoke
 * config, deploy/resources.js), then sends it to the scheduled functions'
 * dead-letter queue, whose alarm fires.
 *
 * The whole job runs under one JobDeadline: the invocation's remaining time
 * when Lambda gives a context, else LOCAL_BUDGET_MS (a CLI has no timeout to
 * answer before, and a day of a busy shop takes seconds to recompute). Its
 * database calls are bounded by that, not by a request's per-call cap.
 */
const LOCAL_BUDGET_MS = 15 * 60_000;

export const handler = scheduledHandler('evict-popular-items', async (context?: Context): Promise<PopularItemsRefresh> => {
  const deadline = context ? jobDeadlineOf(context) : new JobDeadline(LOCAL_BUDGET_MS);
  try {
    const summary = await withDeadline(deadline, () => refreshPopularItems());
    logger.info('popular items rolled up, evicted and re-warmed', { ...summary });
    return summary;
  } catch (error) {
    logger.error('popular items eviction failed', { error });
    throw error;
  }
});
