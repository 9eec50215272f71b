import { jobDeadlineOf, withDeadline } from '../lib/platform/deadline';
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
 * there. The event carries nothing it needs.
 *
 * Its calls are bounded by the invocation's remaining time (a JobDeadline),
 * not by a request's per-call cap: a batch of a thousand changes on a slow
 * database still commits. A failure is thrown, counted, and not retried:
 * the next minute's run is the retry. Lambda sends the failed invocation to
 * the scheduled functions' dead-letter queue (its async invoke config,
 * deploy/resources.js), whose alarm fires. Whatever it committed stays
 * committed, and what it did not is synced by a later run, exactly once
 * either way.
 */
export const handler = scheduledHandler('sync-likes', async (context): Promise<SyncSummary> => {
  // Without a context (npm run sync-likes) it runs until caught up.
  const deadline = context ? jobDeadlineOf(context) : undefined;
  const sync = () => syncLikes(undefined, { keepGoing: () => !deadline || deadline.remainingMs() > LAST_ROUND_MS });
  const summary = deadline ? await withDeadline(deadline, sync) : await sync();
  logger.info('likes synced to post_likes', { ...summary });
  return summary;
});
