import { setTimeout as sleep } from 'node:timers/promises';
import { PutRecordCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { HttpHandler, HttpResult } from '../../lib/platform/http';
import { ensureKinesis, kinesisClient, type LocalKinesis } from '../../local/kinesis';
import { startPoller, type Poller, type PollerOptions } from '../../local/kinesis-poller';
import { bodyOf, httpEvent, lambdaContext } from './events';
import { chargeHandler, payHandler } from './points';

/**
 * Queued point requests in tests: a throwaway kinesis-local on free ports
 * (its own stream; never the local stack's 4568), and the poller of the
 * local stack (local/kinesis-poller.ts) driving the real consumer handler
 * in this process, as the event source mapping would.
 *
 * Call useQueueStream() at the top of the file, BEFORE useTestDatabase():
 * KINESIS_ENDPOINT must be set before anything reads the configuration.
 */
export interface QueueStream {
  readonly kinesis: LocalKinesis;
  readonly client: KinesisClient;
  /**
   * A poller feeding functions/apply-point-requests (or `invoke`); stopped
   * after the file at the latest. Pollers share one checkpoint map unless
   * given their own, so one started after another goes on where it stopped.
   */
  poller(options?: Partial<PollerOptions>): Poller;
  /** The checkpoints the pollers share. */
  readonly checkpoints: Map<string, string>;
  /** A poller from before the describe's first test until after its last. */
  usePoller(options?: Partial<PollerOptions>): void;
  /** Puts raw data on the stream under `partitionKey`, as a forged or broken producer would. */
  putRaw(partitionKey: string, data: string): Promise<void>;
}

export const STREAM = 'point-requests-test';

export function useQueueStream(): QueueStream {
  let kinesis: LocalKinesis | undefined;
  let client: KinesisClient | undefined;
  const pollers: Poller[] = [];
  const checkpoints = new Map<string, string>();
  beforeAll(async () => {
    kinesis = await ensureKinesis({ port: 0, stream: STREAM, shards: 2 });
    process.env.KINESIS_ENDPOINT = kinesis.url;
    process.env.POINT_REQUEST_STREAM = STREAM;
    client = kinesisClient(kinesis.url);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(pollers.map((poller) => poller.stop()));
    client?.destroy();
    await kinesis?.close();
  });
  return {
    get kinesis() {
      return kinesis!;
    },
    get client() {
      return client!;
    },
    checkpoints,
    poller(options = {}) {
      const poller = startPoller({
        client: client!,
        stream: STREAM,
        streamArn: kinesis!.streamArn,
        batchSize: 100,
        maxRetryAttempts: 3,
        invoke: invokeConsumer,
        onFailure: rejectDeadLetters,
        checkpoints,
        ...options,
      });
      pollers.push(poller);
      return poller;
    },
    usePoller(options = {}) {
      let poller: Poller | undefined;
      beforeAll(() => {
        poller = this.poller(options);
      });
      afterAll(async () => {
        await poller?.stop();
      });
    },
    async putRaw(partitionKey, data) {
      await client!.send(new PutRecordCommand({ StreamName: STREAM, PartitionKey: partitionKey, Data: Buffer.from(data) }));
    },
  };
}

/** functions/apply-point-requests, loaded on first call (after the file's beforeAll set its environment). */
export async function invokeConsumer(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> {
  const { handler } = await import('../../functions/apply-point-requests');
  return handler(event, lambdaContext(60_000));
}

/** The on-failure destination, as npm start has it: the requests end REJECTED 503. */
export async function rejectDeadLetters(records: KinesisStreamRecord[]): Promise<void> {
  const { rejectRecords } = await import('../../lib/points/queue/reject');
  await rejectRecords(
    records.map((record) => ({
      sequenceNumber: record.kinesis.sequenceNumber,
      data: Buffer.from(record.kinesis.data, 'base64').toString('utf8'),
      arrivalMs: record.kinesis.approximateArrivalTimestamp * 1000,
    })),
  );
}

const pointRequestHandler: HttpHandler = async (event, context) => (await import('../../functions/point-request')).handler(event, context);

const ASYNC = { Prefer: 'respond-async' };

export function queueCharge(userId: number, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return chargeHandler(httpEvent({ routeKey: 'POST /points/charge', body, headers: { ...ASYNC, ...headers }, userId }), lambdaContext());
}

export function queuePay(userId: number, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return payHandler(httpEvent({ routeKey: 'POST /orders', body, headers: { ...ASYNC, ...headers }, userId }), lambdaContext());
}

export function callPointRequest(userId: number | undefined, requestId: string): Promise<HttpResult> {
  return pointRequestHandler(
    httpEvent({ routeKey: 'GET /points/requests/{requestId}', pathParameters: { requestId }, userId }),
    lambdaContext(),
  );
}

export interface Settled {
  requestId: string;
  status: 'DONE' | 'REJECTED';
  statusCode: number;
  result: Record<string, unknown>;
}

/**
 * The request's outcome once it has one; waits (polling GET every 50 ms) as
 * long as the test's own timeout lets it. A 503 (the shared machine's
 * database slow to answer) is polled again like PENDING.
 */
export async function settled(userId: number, requestId: string): Promise<Settled> {
  for (;;) {
    const result = await callPointRequest(userId, requestId);
    const body = bodyOf<Settled | { status: 'PENDING' }>(result);
    if (result.statusCode === 200 && body.status !== 'PENDING') return body as Settled;
    if (result.statusCode !== 200 && result.statusCode !== 503) throw new Error(`GET /points/requests/${requestId}: ${result.statusCode} ${result.body}`);
    await sleep(50);
  }
}

/** The outcomes of requests, one after the other (a poll each at a time, not one per request at once). */
export async function settledAll(userId: number, requestIds: string[]): Promise<Settled[]> {
  const outcomes: Settled[] = [];
  for (const id of requestIds) outcomes.push(await settled(userId, id));
  return outcomes;
}

export const requestIdOf = (result: HttpResult): string => bodyOf<{ requestId: string }>(result).requestId;
