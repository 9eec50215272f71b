/**
 * npm start's stream of queued point requests: the emulator (local/kinesis.ts)
 * and the poller (local/kinesis-poller.ts) that stands in for the event
 * source mapping, invoking apply-point-requests through serverless-offline's
 * Lambda port, the AWS Lambda Invoke API, so the bundle that runs is the
 * function's own (its esbuild bundle, its serverless.yml environment, its
 * metric lines in the stack's output), as the mapping would run it.
 *
 * The on-failure destination is this process: the records are logged (one
 * JSON line each, `point request dead-lettered`) and ended REJECTED 503 with
 * the same code the destination's function runs in AWS (lib/points/queue/reject).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { rejectRecords } from '../lib/points/queue/reject';
import { ensureKinesis, kinesisClient, type LocalKinesis } from './kinesis';
import { startPoller, type Poller } from './kinesis-poller';

/** serverless.yml's service and the consumer's name: offline's function name is service-stage-function. */
const CONSUMER = 'likes-points-popular-local-apply-point-requests';

/** The mapping's settings, locally: serverless.yml's, but retries spaced by the poller's short backoff. */
export const LOCAL_MAPPING = { batchSize: 100, batchingWindowMs: 0, maxRetryAttempts: 5, maxRecordAgeMs: 3_600_000, bisect: true } as const;

export interface LocalStream {
  kinesis: LocalKinesis;
  /** Starts the poller once the Lambda port answers. */
  startConsumer(lambdaPort: number): void;
  close(): Promise<void>;
}

export async function startLocalStream(options: { port: number; stream: string }): Promise<LocalStream> {
  let kinesis = await ensureKinesis({ port: options.port, stream: options.stream, shards: 2 });
  const client = kinesisClient(kinesis.url);
  let poller: Poller | undefined;
  let closing = false;
  // The emulator of another stack went away with that stack: start one here.
  const watchEmulator = async () => {
    while (!closing) {
      if (!kinesis.owned) {
        await sleep(1000);
        if (closing) return;
        kinesis = await ensureKinesis({ port: options.port, stream: options.stream, shards: 2 }).catch(() => kinesis);
        continue;
      }
      await kinesis.exited;
      if (closing) return;
      console.error('The Kinesis emulator stopped; starting it again.');
      kinesis = await ensureKinesis({ port: options.port, stream: options.stream, shards: 2 });
    }
  };
  void watchEmulator().catch((error: Error) => console.error(`The Kinesis emulator could not be restarted: ${error.message}`));
  return {
    get kinesis() {
      return kinesis;
    },
    startConsumer(lambdaPort) {
      // The consumer's cold start (loading its bundle) is paid now, not by the first queued request.
      void invokeThroughLambdaPort(lambdaPort, { Records: [] }, () => closing).catch(() => undefined);
      poller = startPoller({
        client,
        stream: options.stream,
        streamArn: kinesis.streamArn,
        ...LOCAL_MAPPING,
        invoke: (event) => invokeThroughLambdaPort(lambdaPort, event, () => closing),
        async onFailure(records, why) {
          for (const record of records) {
            console.log(JSON.stringify({ level: 'WARN', message: 'point request dead-lettered', why, sequenceNumber: record.kinesis.sequenceNumber }));
          }
          await rejectRecords(
            records.map((record) => ({
              sequenceNumber: record.kinesis.sequenceNumber,
              data: Buffer.from(record.kinesis.data, 'base64').toString('utf8'),
              arrivalMs: record.kinesis.approximateArrivalTimestamp * 1000,
            })),
          );
        },
        log: (message, fields) => console.log(JSON.stringify({ level: 'INFO', message: `point-request poller: ${message}`, ...fields })),
      });
    },
    async close() {
      closing = true;
      await poller?.stop();
      client.destroy();
      await kinesis.close();
    },
  };
}

/**
 * One Invoke through serverless-offline's Lambda port. A handler that threw
 * is a function error (thrown here); a port that does not answer yet (offline
 * still booting) is waited for, as the mapping waits for a function to exist,
 * and is never counted as an attempt.
 */
async function invokeThroughLambdaPort(lambdaPort: number, event: KinesisStreamEvent, closing: () => boolean): Promise<KinesisStreamBatchResponse> {
  const url = `http://127.0.0.1:${lambdaPort}/2015-03-31/functions/${CONSUMER}/invocations`;
  for (;;) {
    let response: Response;
    try {
      response = await fetch(url, { method: 'POST', body: JSON.stringify(event), headers: { 'content-type': 'application/json' } });
    } catch (error) {
      if (closing()) throw error;
      await sleep(200);
      continue;
    }
    const text = await response.text();
    const functionError = response.headers.get('x-amz-function-error');
    if (!response.ok || functionError) throw new Error(`apply-point-requests failed (${functionError ?? response.status}): ${text.slice(0, 500)}`);
    const payload = JSON.parse(text) as KinesisStreamBatchResponse | { errorMessage?: string } | null;
    if (payload && 'errorMessage' in payload) throw new Error(`apply-point-requests failed: ${payload.errorMessage}`);
    return (payload as KinesisStreamBatchResponse | null) ?? { batchItemFailures: [] };
  }
}
