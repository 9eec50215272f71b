/**
 * What the Kinesis event source mapping does in AWS, for the local stack and
 * the tests: serverless-offline runs no mapping.
 *
 * Per shard, one loop: read records in order, hand them to the consumer in
 * batches (up to `batchSize`, waiting up to `batchingWindowMs` for a batch
 * to fill), and checkpoint only what the consumer finished:
 * - it answers batch item failures (ReportBatchItemFailures): the records
 *   before the lowest failed one are done; the batch is retried from it;
 * - it throws (a function error): with `bisect`, the batch is split in two
 *   and each half retried (BisectBatchOnFunctionError); a single record is
 *   retried as it is;
 * - a record still failing after `maxRetryAttempts` retries (a batch that
 *   keeps failing is bisected first, so one poison record does not take its
 *   neighbours along), or older than `maxRecordAgeMs`, goes to `onFailure`
 *   (the on-failure destination) and the shard moves on. onFailure is
 *   retried until it succeeds: the shard never checkpoints past a record
 *   that was neither finished nor handed over.
 * Retries back off (100 ms doubling to 1 s) as the mapping's do.
 *
 * Checkpoints live in `checkpoints` (this process's memory by default): a
 * new poller without them starts from the oldest record, and the consumer,
 * which applies each request id once, finds the rest done. Two pollers on
 * one stream (two local stacks) both read every shard: each hands a user's
 * records to the consumer in stream order, so a request is applied only
 * after the requests before it were applied or found done, and the request
 * id's row makes the second delivery a no-op. That doubles the consumer's
 * work locally, never an effect.
 *
 * Longer than most modules: one shard loop whose retry, bisect and
 * checkpoint rules share its state, so the rules above read in one place.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand, type KinesisClient, type _Record } from '@aws-sdk/client-kinesis';
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';

export interface PollerOptions {
  client: KinesisClient;
  stream: string;
  streamArn: string;
  /** The consumer: answers batch item failures, throws for a function error. */
  invoke(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse | void>;
  /** The on-failure destination: records the mapping gave up on. */
  onFailure(records: KinesisStreamRecord[], why: string): Promise<void>;
  batchSize?: number;
  batchingWindowMs?: number;
  maxRetryAttempts?: number;
  maxRecordAgeMs?: number;
  bisect?: boolean;
  /**
   * How long an empty shard waits before it is read again: from 20 ms right
   * after records, doubling to this (the mapping polls each shard about once
   * a second; locally faster, and the emulator allows 5 reads a second per shard).
   */
  pollIntervalMs?: number;
  /** shard id -> sequence number of the last finished record. */
  checkpoints?: Map<string, string>;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

export interface Poller {
  /** Stops reading; a batch being delivered is abandoned without a checkpoint. */
  stop(): Promise<void>;
  readonly checkpoints: Map<string, string>;
  /** Calls made to the consumer so far. */
  readonly invocations: number;
}

class Stopped extends Error {}

export function startPoller(options: PollerOptions): Poller {
  const settings = {
    batchSize: options.batchSize ?? 100,
    batchingWindowMs: options.batchingWindowMs ?? 0,
    maxRetryAttempts: options.maxRetryAttempts ?? 5,
    maxRecordAgeMs: options.maxRecordAgeMs ?? 3_600_000,
    bisect: options.bisect ?? true,
    pollIntervalMs: options.pollIntervalMs ?? 250,
  };
  const checkpoints = options.checkpoints ?? new Map<string, string>();
  const log = options.log ?? (() => {});
  const stopper = new AbortController();
  let stopped = false;
  let invocations = 0;
  const running = new Map<string, Promise<void>>();

  const pause = (ms: number) => sleep(ms, undefined, { signal: stopper.signal }).catch(() => undefined);
  const check = () => {
    if (stopped) throw new Stopped();
  };
  // A consumer call still running when the poller stops is abandoned, as a
  // mapping's would be when its poller dies: no checkpoint for it.
  const abandoned = new Promise<never>((_, reject) => stopper.signal.addEventListener('abort', () => reject(new Stopped()), { once: true }));
  abandoned.catch(() => undefined);

  const toEvent = (records: _Record[], shardId: string): KinesisStreamRecord[] =>
    records.map((record) => ({
      awsRegion: process.env.AWS_REGION ?? 'us-east-1',
      eventID: `${shardId}:${record.SequenceNumber}`,
      eventName: 'aws:kinesis:record',
      eventSource: 'aws:kinesis',
      eventSourceARN: options.streamArn,
      eventVersion: '1.0',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/local',
      kinesis: {
        approximateArrivalTimestamp: (record.ApproximateArrivalTimestamp?.getTime() ?? Date.now()) / 1000,
        data: Buffer.from(record.Data ?? new Uint8Array()).toString('base64'),
        kinesisSchemaVersion: '1.0',
        partitionKey: record.PartitionKey ?? '',
        sequenceNumber: record.SequenceNumber!,
      },
    }));

  const handOver = async (shardId: string, records: KinesisStreamRecord[], why: string) => {
    for (let attempt = 0; ; attempt++) {
      check();
      try {
        await options.onFailure(records, why);
        checkpoints.set(shardId, records.at(-1)!.kinesis.sequenceNumber);
        return;
      } catch (error) {
        log('on-failure destination failed; retrying', { shardId, error: (error as Error).message });
        await pause(backoff(attempt));
      }
    }
  };

  /** Delivers `records` until every one is finished or handed over; checkpoints as it goes. */
  const settle = async (shardId: string, records: KinesisStreamRecord[]): Promise<void> => {
    let batch = records;
    let attempts = 0;
    while (batch.length > 0) {
      check();
      const tooOld = batch.filter((record) => Date.now() - record.kinesis.approximateArrivalTimestamp * 1000 > settings.maxRecordAgeMs);
      if (tooOld.length > 0) {
        // Records of a shard arrive in order: the old ones are at the front.
        await handOver(shardId, tooOld, 'older than the maximum record age');
        batch = batch.slice(tooOld.length);
        continue;
      }
      let failedAt = -1;
      let functionError: Error | undefined;
      try {
        invocations++;
        const response = await Promise.race([options.invoke({ Records: batch }), abandoned]);
        check();
        const failed = new Set((response?.batchItemFailures ?? []).map((failure) => failure.itemIdentifier));
        failedAt = batch.findIndex((record) => failed.has(record.kinesis.sequenceNumber));
        if (failed.size > 0 && failedAt === -1) failedAt = 0; // an identifier not in the batch: retry it all, as Lambda does
      } catch (error) {
        if (error instanceof Stopped) throw error;
        check();
        functionError = error as Error;
      }
      if (!functionError && failedAt === -1) {
        checkpoints.set(shardId, batch.at(-1)!.kinesis.sequenceNumber);
        return;
      }
      if (functionError && settings.bisect && batch.length > 1) {
        log('function error; bisecting the batch', { shardId, records: batch.length, error: functionError.message });
        const half = Math.ceil(batch.length / 2);
        await settle(shardId, batch.slice(0, half));
        await settle(shardId, batch.slice(half));
        return;
      }
      if (failedAt > 0) {
        checkpoints.set(shardId, batch[failedAt - 1]!.kinesis.sequenceNumber);
        batch = batch.slice(failedAt);
        attempts = 0;
      }
      attempts++;
      if (attempts > settings.maxRetryAttempts) {
        if (settings.bisect && batch.length > 1) {
          const half = Math.ceil(batch.length / 2);
          await settle(shardId, batch.slice(0, half));
          await settle(shardId, batch.slice(half));
          return;
        }
        await handOver(shardId, batch, functionError ? `function error: ${functionError.message}` : 'still failing after the last retry');
        return;
      }
      log('retrying', { shardId, from: batch[0]!.kinesis.sequenceNumber, attempt: attempts, error: functionError?.message });
      await pause(backoff(attempts - 1));
    }
  };

  const pollShard = async (shardId: string) => {
    let iterator: string | undefined;
    let buffered: KinesisStreamRecord[] = [];
    let firstBufferedAt = 0;
    let errors = 0;
    let idleMs = 0;
    // Bumped when the shard is read again from its checkpoint: a read still
    // under way from before must not add its records after that.
    let generation = 0;
    while (!stopped) {
      try {
        if (!iterator) {
          const after = checkpoints.get(shardId);
          const { ShardIterator } = await options.client.send(
            new GetShardIteratorCommand({
              StreamName: options.stream,
              ShardId: shardId,
              ...(after ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after } : { ShardIteratorType: 'TRIM_HORIZON' }),
            }),
          );
          iterator = ShardIterator;
          buffered = [];
        }
        const readNext = (from: string, limit: number) => {
          const at = generation;
          return options.client.send(new GetRecordsCommand({ ShardIterator: from, Limit: limit })).then(
            (output) => ({ generation: at, iterator: output.NextShardIterator, records: output.Records ?? [] }),
            () => undefined, // read again, from the same iterator, on the next turn
          );
        };
        let more = false;
        if (buffered.length < settings.batchSize) {
          const output = await options.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: settings.batchSize - buffered.length }));
          iterator = output.NextShardIterator;
          const records = output.Records ?? [];
          if (records.length > 0 && buffered.length === 0) firstBufferedAt = performance.now();
          buffered.push(...toEvent(records, shardId));
          more = (output.MillisBehindLatest ?? 0) > 0 && records.length > 0;
        }
        errors = 0;
        if (buffered.length === 0) {
          idleMs = Math.min(Math.max(20, idleMs * 2), settings.pollIntervalMs);
          await pause(idleMs);
          continue;
        }
        idleMs = 0;
        const full = buffered.length >= settings.batchSize;
        if (!full && performance.now() - firstBufferedAt < settings.batchingWindowMs) {
          if (!more) await pause(Math.min(settings.pollIntervalMs, settings.batchingWindowMs));
          continue;
        }
        const batch = buffered.slice(0, settings.batchSize);
        buffered = buffered.slice(batch.length);
        firstBufferedAt = performance.now();
        // With more records waiting, the next ones are read while the
        // consumer works on these, as the mapping reads ahead.
        const readAhead = more && iterator && buffered.length < settings.batchSize ? readNext(iterator, settings.batchSize - buffered.length) : undefined;
        await settle(shardId, batch);
        const ahead = await readAhead;
        if (ahead && ahead.generation === generation) {
          iterator = ahead.iterator;
          buffered.push(...toEvent(ahead.records, shardId));
        }
      } catch (error) {
        if (error instanceof Stopped || stopped) return;
        // The emulator restarted or went away: read again from the checkpoint.
        generation++;
        iterator = undefined;
        if ((error as Error).name === 'ResourceNotFoundException' || (error as Error).name === 'InvalidArgumentException') checkpoints.delete(shardId);
        errors++;
        if (errors === 1 || errors % 20 === 0) log('reading the shard failed; retrying', { shardId, error: (error as Error).message });
        await pause(backoff(errors));
      }
    }
  };

  const watchShards = async () => {
    let errors = 0;
    while (!stopped) {
      try {
        const { Shards = [] } = await options.client.send(new ListShardsCommand({ StreamName: options.stream }));
        for (const shard of Shards) {
          const shardId = shard.ShardId!;
          if (!running.has(shardId)) running.set(shardId, pollShard(shardId));
        }
        errors = 0;
      } catch (error) {
        errors++;
        if (errors === 1 || errors % 20 === 0) log('listing the shards failed; retrying', { error: (error as Error).message });
      }
      await pause(running.size > 0 ? 5000 : 200);
    }
  };
  const watching = watchShards();

  return {
    checkpoints,
    get invocations() {
      return invocations;
    },
    async stop() {
      stopped = true;
      stopper.abort();
      await watching;
      await Promise.all(running.values());
    },
  };
}

const backoff = (attempt: number) => Math.min(100 * 2 ** attempt, 1000);
