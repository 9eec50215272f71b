import { GetRecordsCommand, GetShardIteratorCommand, KinesisClient, PutRecordCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { config } from './config';
import { currentDeadline } from './deadline';
import { DependencyUnavailableError } from './errors';
import { logger } from './logger';
import { traceAwsClient } from './tracing';

/**
 * The only door to Kinesis Data Streams: putRecord, given up on at the
 * request's deadline or after `timeoutMs`.
 *
 * Puts made while another put to the same stream is in flight wait for it
 * and then go together, as one PutRecords: no put ever waits longer than
 * one call, and a process serving many requests at once (the local stack's
 * one serverless-offline process) makes one call for them instead of one
 * each (the local emulator took 0.7 to 1.8 s for 20 PutRecords at once, and
 * 0.06 to 0.2 s for one PutRecords of 20). A Lambda instance serves one
 * request at a time, so in AWS every put is a single PutRecord.
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
      region: config().kinesis.endpoint ? LOCAL_EMULATOR_REGION : config().region,
      endpoint: config().kinesis.endpoint,
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

interface Pending {
  partitionKey: string;
  data: Buffer;
  /** Ends the wait (and the call, when it is the only record in it). */
  signal: AbortSignal;
  settle(outcome: { result: PutResult } | { error: unknown }): void;
}

/** Per stream: whether a call is in flight, and the puts waiting for it. */
const lanes = new Map<string, { busy: boolean; waiting: Pending[] }>();

/** PutRecords takes at most 500 records (and 5 MB; queued requests are small). */
const MAX_RECORDS_PER_CALL = 500;

/** Puts one record; resolves with where it went. */
export async function putRecord(stream: string, partitionKey: string, data: string, options: { timeoutMs: number }): Promise<PutResult> {
  const budgetMs = Math.min(options.timeoutMs, currentDeadline().remainingMs());
  if (budgetMs <= 0) throw new DependencyUnavailableError('stream', { cause: new Error('no time left to put the record') });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), budgetMs);
  const started = performance.now();
  try {
    return await new Promise<PutResult>((resolve, reject) => {
      const pending: Pending = {
        partitionKey,
        data: Buffer.from(data, 'utf8'),
        signal: abort.signal,
        settle: (outcome) => ('result' in outcome ? resolve(outcome.result) : reject(outcome.error)),
      };
      // Still waiting when its time ends: it is never sent.
      abort.signal.addEventListener('abort', () => reject(new Error('Request aborted')), { once: true });
      let lane = lanes.get(stream);
      if (!lane) lanes.set(stream, (lane = { busy: false, waiting: [] }));
      lane.waiting.push(pending);
      if (!lane.busy) void drain(stream, lane);
    });
  } catch (error) {
    logger.warn('stream unavailable', { operation: 'PutRecord', afterMs: Math.round(performance.now() - started), error: (error as Error).message });
    throw new DependencyUnavailableError('stream', { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

async function drain(stream: string, lane: { busy: boolean; waiting: Pending[] }): Promise<void> {
  lane.busy = true;
  try {
    while (lane.waiting.length > 0) {
      const batch = lane.waiting.splice(0, MAX_RECORDS_PER_CALL).filter((pending) => !pending.signal.aborted);
      if (batch.length === 1) await putOne(stream, batch[0]!);
      else if (batch.length > 1) await putMany(stream, batch);
    }
  } finally {
    lane.busy = false;
  }
}

async function putOne(stream: string, pending: Pending): Promise<void> {
  try {
    const output = await client().send(new PutRecordCommand({ StreamName: stream, PartitionKey: pending.partitionKey, Data: pending.data }), {
      abortSignal: pending.signal,
    });
    pending.settle({ result: { shardId: output.ShardId!, sequenceNumber: output.SequenceNumber! } });
  } catch (error) {
    pending.settle({ error });
  }
}

async function putMany(stream: string, batch: Pending[]): Promise<void> {
  // The call ends when the last of its puts stops waiting; each put's own
  // time still ends its own wait (above).
  const abort = new AbortController();
  let waiting = batch.length;
  for (const pending of batch) {
    if (pending.signal.aborted) waiting--;
    else pending.signal.addEventListener('abort', () => --waiting === 0 && abort.abort(), { once: true });
  }
  try {
    const output = await client().send(
      new PutRecordsCommand({ StreamName: stream, Records: batch.map((pending) => ({ PartitionKey: pending.partitionKey, Data: pending.data })) }),
      { abortSignal: abort.signal },
    );
    batch.forEach((pending, i) => {
      const entry = output.Records?.[i];
      if (entry?.SequenceNumber) pending.settle({ result: { shardId: entry.ShardId!, sequenceNumber: entry.SequenceNumber } });
      else pending.settle({ error: new Error(`${entry?.ErrorCode ?? 'no result'}: ${entry?.ErrorMessage ?? 'the record was not stored'}`) });
    });
  } catch (error) {
    for (const pending of batch) pending.settle({ error });
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
