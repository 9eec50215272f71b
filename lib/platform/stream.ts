import { GetRecordsCommand, GetShardIteratorCommand, KinesisClient, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { config } from './config';
import { currentDeadline } from './deadline';
import { DependencyUnavailableError } from './errors';
import { logger } from './logger';
import { traceAwsClient } from './tracing';

/**
 * The only door to Kinesis Data Streams: one PutRecord per call, given up on
 * at the request's deadline or after `timeoutMs`.
 *
 * A record keeps its place among the records of its partition key: one put
 * answered before another is sent comes first in the shard. Every failure to
 * put is a 503 (DependencyUnavailableError 'stream'). A put given up on may
 * still be stored by the service; callers that must not have it take effect
 * put their own give-up time in the record (see lib/queued-points).
 */

export interface PutResult {
  shardId: string;
  sequenceNumber: string;
}

/** The region local/kinesis.ts creates its stream in. */
export const LOCAL_EMULATOR_REGION = 'us-east-1';

let shared: KinesisClient | undefined;

function client(): KinesisClient {
  shared ??= traceAwsClient(
    new KinesisClient({
      // The local emulator keeps streams per signing region, and the local
      // stack's functions run under the template's region: the emulator's is
      // the one local/kinesis.ts creates the stream in.
      region: config().pointRequests.endpoint ? LOCAL_EMULATOR_REGION : config().region,
      endpoint: config().pointRequests.endpoint,
      // HTTP/1.1 keep-alive: the emulator speaks plain HTTP/1.1, and Kinesis
      // serves PutRecord over it as well as over HTTP/2.
      requestHandler: new NodeHttpHandler({ connectionTimeout: 1000, requestTimeout: 10_000 }),
      // Throttling and 5xx are retried inside the call's time: a duplicate
      // record is harmless to consumers that deduplicate, a missing one is not.
      maxAttempts: 3,
    }),
  );
  return shared;
}

/** Puts one record; resolves with where it went. */
export async function putRecord(stream: string, partitionKey: string, data: string, options: { timeoutMs: number }): Promise<PutResult> {
  const budgetMs = Math.min(options.timeoutMs, currentDeadline().remainingMs());
  if (budgetMs <= 0) throw new DependencyUnavailableError('stream', { cause: new Error('no time left to put the record') });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), budgetMs);
  const started = performance.now();
  try {
    const output = await client().send(
      new PutRecordCommand({ StreamName: stream, PartitionKey: partitionKey, Data: Buffer.from(data, 'utf8') }),
      { abortSignal: abort.signal },
    );
    return { shardId: output.ShardId!, sequenceNumber: output.SequenceNumber! };
  } catch (error) {
    logger.warn('stream unavailable', { operation: 'PutRecord', afterMs: Math.round(performance.now() - started), error: (error as Error).message });
    throw new DependencyUnavailableError('stream', { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** A stored record, as readRange returns it. */
export interface StoredRecord {
  sequenceNumber: string;
  /** UTF-8 text. */
  data: string;
  arrivalMs: number;
}

/**
 * The records of one shard from `first` to `last` (sequence numbers, both
 * included), in order: what an on-failure destination's message names.
 */
export async function readRange(streamArn: string, shardId: string, first: string, last: string): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  let { ShardIterator: iterator } = await client().send(
    new GetShardIteratorCommand({ StreamARN: streamArn, ShardId: shardId, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: first }),
  );
  const end = BigInt(last);
  while (iterator) {
    const output = await client().send(new GetRecordsCommand({ StreamARN: streamArn, ShardIterator: iterator, Limit: 1000 }));
    for (const record of output.Records ?? []) {
      if (BigInt(record.SequenceNumber!) > end) return records;
      records.push({
        sequenceNumber: record.SequenceNumber!,
        data: Buffer.from(record.Data ?? new Uint8Array()).toString('utf8'),
        arrivalMs: record.ApproximateArrivalTimestamp?.getTime() ?? 0,
      });
    }
    if (records.length > 0 && BigInt(records.at(-1)!.sequenceNumber) >= end) return records;
    // At the tip with nothing more: the range's end was trimmed or never written.
    if ((output.Records ?? []).length === 0 && (output.MillisBehindLatest ?? 0) === 0) return records;
    iterator = output.NextShardIterator;
  }
  return records;
}
