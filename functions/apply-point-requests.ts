import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { config } from '../lib/platform/config';
import { deadlineOf, withDeadline } from '../lib/platform/deadline';
import { observe } from '../lib/platform/observability';
import { applyBatch } from '../lib/points/queue/apply';

/**
 * The Kinesis event source mapping's target (serverless.yml): one shard's
 * batch of queued point requests, in order. Answers the records to retry
 * (ReportBatchItemFailures); throws only for a batch it cannot read, which
 * the mapping bisects.
 */
config(); // validate the environment at cold start
export const handler = (event: KinesisStreamEvent, context: Context): Promise<KinesisStreamBatchResponse> =>
  observe(
    { context, route: 'apply-point-requests' },
    'batch',
    (outcome) => ('error' in outcome ? { outcome: 'failed', records: event.Records.length } : { outcome: 'ok', records: event.Records.length, retry: outcome.result.batchItemFailures.length }),
    () =>
      withDeadline(deadlineOf(context), async () => {
        const outcome = await applyBatch(
          event.Records.map((record) => ({
            sequenceNumber: record.kinesis.sequenceNumber,
            data: Buffer.from(record.kinesis.data, 'base64').toString('utf8'),
            arrivalMs: Math.round(record.kinesis.approximateArrivalTimestamp * 1000),
          })),
          { remainingTimeMs: () => context.getRemainingTimeInMillis() },
        );
        return { batchItemFailures: outcome.failed.map((itemIdentifier) => ({ itemIdentifier })) };
      }),
  );
