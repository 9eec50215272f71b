import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import * as z from 'zod/mini';
import { config } from '../lib/platform/config';
import { deadlineOf, withDeadline } from '../lib/platform/deadline';
import { logger } from '../lib/platform/logger';
import { observe } from '../lib/platform/observability';
import { readRange } from '../lib/platform/stream';
import { rejectRecords } from '../lib/points/queue/reject';

/**
 * The on-failure destination's reader: each SQS message names a range of a
 * shard that apply-point-requests could not apply (every retry failed, or
 * the records grew too old). Its records are read back from the stream and
 * their requests end REJECTED 503 (lib/points/queue/reject). A message that
 * fails (the database away) stays on the queue and comes back.
 */
const failure = z.object({
  KinesisBatchInfo: z.object({
    shardId: z.string(),
    startSequenceNumber: z.string(),
    endSequenceNumber: z.string(),
    streamArn: z.string(),
  }),
});

config(); // validate the environment at cold start
export const handler = (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
  observe(
    { context, route: 'reject-point-requests' },
    'batch',
    (outcome) => ('error' in outcome ? { outcome: 'failed' } : { outcome: 'ok', retry: outcome.result.batchItemFailures.length }),
    () =>
      withDeadline(deadlineOf(context), async () => {
        const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
        for (const message of event.Records) {
          try {
            const { KinesisBatchInfo: info } = z.parse(failure, JSON.parse(message.body));
            await rejectRecords(await readRange(info.streamArn, info.shardId, info.startSequenceNumber, info.endSequenceNumber));
          } catch (error) {
            logger.error('dead-lettered range not rejected yet; the queue redelivers it', { messageId: message.messageId, error });
            batchItemFailures.push({ itemIdentifier: message.messageId });
          }
        }
        return { batchItemFailures };
      }),
  );
