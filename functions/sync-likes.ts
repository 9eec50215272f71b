import { deadlineOf, withDeadline } from '../lib/platform/deadline';
import { logger } from '../lib/platform/logger';
import { scheduledHandler } from '../lib/platform/observability';
import { syncLikes, type SyncSummary } from '../lib/likes/sync';

/** Time left for a last round's reads, statements and trims; a round past it is not started. */
const LAST_ROUND_MS = 10_000;

/**
 * Every minute (an EventBridge Scheduler schedule, reserved concurrency 1, see
 * serverless.yml), and once per `npm run sync-likes`: writes the likes
 * changed in Redis behind to post_likes (lib/likes/sync) until none is
 * pending or the invocation's time is nearly up; the next run goes on from
 * there. The event carries nothing it needs. A failure is thrown, for the
 * Scheduler's retry policy; whatever it committed stays committed, and what
 * it did not is synced by the next run, exactly once either way.
 */
export const handler = scheduledHandler('sync-likes', async (context): Promise<SyncSummary> => {
  // Without a context (npm run sync-likes) it runs until caught up.
  const deadline = context ? deadlineOf(context) : undefined;
  const sync = () => syncLikes(undefined, { keepGoing: () => !deadline || deadline.remainingMs() > LAST_ROUND_MS });
  const summary = deadline ? await withDeadline(deadline, sync) : await sync();
  logger.info('likes synced to post_likes', { ...summary });
  return summary;
});
