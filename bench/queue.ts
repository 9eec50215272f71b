import { Client } from 'pg';
import { config } from '../lib/platform/config';
import { db, type Database } from '../lib/platform/db';
import { withDeadline, Deadline } from '../lib/platform/deadline';
import { redis } from '../lib/platform/redis/client';
import { CHARGE_ROUTE, chargePoints } from '../lib/points/points';
import { enqueuePointRequest } from '../lib/points/queue/accept';
import { applyBatch } from '../lib/points/queue/apply';
import { ensureKinesis, kinesisClient, type LocalKinesis } from '../local/kinesis';
import { startPoller } from '../local/kinesis-poller';
import { countCommands, report, section } from './harness';
import { queueSettings } from '../lib/points/queue/settings';

/**
 * Queued point requests against the lock, side by side in one run, for one
 * hot user and for 100 users:
 * (a) direct: POST /points/charge's service (the user's lock, one statement),
 *     CONCURRENCY callers at once, as fast as they are served;
 * (b) queued: the same charges accepted (one Redis command, one put each),
 *     then applied by the consumer as the mapping would feed it (batches of
 *     100 from a kinesis-local stream): one statement per user per batch.
 * Reported: requests per second (served, or applied), Data API calls and
 * Redis commands per request, and for (b) the time from 202 to applied
 * (point_requests.applied_at - accepted_at). The stream's emulator is this
 * run's own (bench/run.ts starts it: the configuration must name it before
 * anything reads it).
 */

const REQUESTS = Number(process.env.QUEUE_BENCH_REQUESTS ?? 1000);
const CONCURRENCY = 16;

export async function startBenchKinesis(): Promise<LocalKinesis> {
  const kinesis = await ensureKinesis({ port: 0, stream: 'point-requests-bench', shards: 2 });
  process.env.KINESIS_ENDPOINT = kinesis.url;
  process.env.POINT_REQUEST_STREAM = 'point-requests-bench';
  return kinesis;
}

let nextUser = 9_000_000;

export async function run(): Promise<void> {
  if (!config().kinesis.endpoint) throw new Error('bench/queue needs the emulator bench/run.ts starts (KINESIS_ENDPOINT)');
  const url = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
  url.pathname = `/${config().db.database}`;
  const pg = new Client({ connectionString: url.toString() });
  await pg.connect();
  try {
    for (const users of [1, 100]) {
      section(`queue vs lock: ${REQUESTS} charges of ${users === 1 ? 'one hot user' : `${users} users`}, ${CONCURRENCY} callers`);
      const direct = await directRun(pg, users);
      const queued = await queuedRun(pg, users);
      report('(a) direct under the lock: requests/s served', `${direct.rps.toFixed(0)}${direct.failed ? `  (${direct.failed} refused: 409/503)` : ''}`);
      report('(b) queued: requests/s applied', `${queued.rps.toFixed(0)}  (x${(queued.rps / direct.rps).toFixed(1)} vs direct)`);
      report('(b) queued: requests/s accepted (202)', queued.acceptRps.toFixed(0));
      report('Data API calls per request: direct / queued', `${direct.dataApi.toFixed(2)} / ${queued.dataApi.toFixed(3)}`);
      report('Data API calls per user run of a batch (queued)', queued.callsPerRun.toFixed(2));
      report('Redis commands per request: direct / queued (accept + apply)', `${direct.redis.toFixed(2)} / ${queued.redis.toFixed(3)}`);
      report('(b) consumer batches: count, requests and ms each', `${queued.batch.count}, ${queued.batch.records.toFixed(0)}, ${queued.batch.ms.toFixed(0)} ms`);
      report('(b) 202 to applied: p50 / p95 / max (backlog accepted first)', `${queued.lag.p50} / ${queued.lag.p95} / ${queued.lag.max} ms`);
    }
  } finally {
    await pg.end();
  }
}

async function usersWith(pg: Client, count: number): Promise<number[]> {
  const ids = Array.from({ length: count }, () => nextUser++);
  await pg.query('INSERT INTO users (id, name, point_balance) SELECT id, $2, 0 FROM unnest($1::bigint[]) AS id', [ids, 'bench']);
  return ids;
}

/** Counts the calls made through a Database and a Redis client while fn runs. */
async function counted<T>(fn: (database: Database) => Promise<T>): Promise<{ result: T; dataApi: number; redis: number }> {
  const commands = countCommands(redis());
  let calls = 0;
  const base = db();
  const database: Database = {
    query: (sql, params, options) => {
      calls++;
      return base.query(sql, params, options);
    },
    transaction: (fn2) => base.transaction(fn2),
  };
  try {
    return { result: await fn(database), dataApi: calls, redis: commands.count };
  } finally {
    commands.stop();
  }
}

async function inParallel(count: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < count; i = next++) await work(i);
    }),
  );
}

/** Each call as a request of its own, with a request's deadline. */
const asRequest = <T>(fn: () => Promise<T>) => withDeadline(new Deadline(14_000), fn);

async function directRun(pg: Client, userCount: number) {
  const users = await usersWith(pg, userCount);
  const started = performance.now();
  let failed = 0;
  const { dataApi, redis: commands } = await counted((database) =>
    inParallel(REQUESTS, async (i) => {
      // A busy machine answers some with 409 LOCK_TIMEOUT or 503: counted, not retried.
      await asRequest(() => chargePoints({ userId: users[i % users.length]!, amount: 1 }, { database })).catch(() => failed++);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { rps: (REQUESTS - failed) / seconds, failed, dataApi: dataApi / REQUESTS, redis: commands / REQUESTS };
}

async function queuedRun(pg: Client, userCount: number) {
  const users = await usersWith(pg, userCount);
  const acceptStarted = performance.now();
  const accepted = await counted(() =>
    inParallel(REQUESTS, async (i) => {
      await asRequest(() => enqueuePointRequest({ userId: users[i % users.length]!, route: CHARGE_ROUTE, body: { amount: 1 }, idempotency: undefined }));
    }),
  );
  const acceptSeconds = (performance.now() - acceptStarted) / 1000;

  // The backlog is on the stream: the consumer now applies it as the mapping would.
  const kinesisUrl = config().kinesis.endpoint!;
  const client = kinesisClient(kinesisUrl);
  let runs = 0;
  let batches = 0;
  let batchMs = 0;
  // From the consumer's first batch: the poller's own start (listing the shards) is not the consumer's rate.
  let applyStarted: number | undefined;
  let poller: ReturnType<typeof startPoller> | undefined;
  const applied = await counted(async (database) => {
    poller = startPoller({
      client,
      stream: queueSettings().POINT_REQUEST_STREAM,
      streamArn: 'arn:aws:kinesis:us-east-1:000000000000:stream/bench',
      batchSize: 100,
      checkpoints: checkpoints,
      invoke: async (event) => {
        runs += new Set(event.Records.map((record) => record.kinesis.partitionKey)).size;
        batches++;
        const batchStarted = performance.now();
        applyStarted ??= batchStarted;
        const outcome = await applyBatch(
          event.Records.map((record) => ({
            sequenceNumber: record.kinesis.sequenceNumber,
            data: Buffer.from(record.kinesis.data, 'base64').toString('utf8'),
            arrivalMs: record.kinesis.approximateArrivalTimestamp * 1000,
          })),
          { database },
        );
        batchMs += performance.now() - batchStarted;
        return { batchItemFailures: outcome.failed.map((itemIdentifier) => ({ itemIdentifier })) };
      },
      onFailure: async () => {
        throw new Error('the bench expects no failures');
      },
    });
    // Done when every request has its row.
    for (;;) {
      const { rows } = await pg.query('SELECT count(*)::int AS n FROM point_requests WHERE user_id = ANY($1::bigint[])', [users]);
      if (rows[0].n >= REQUESTS) break;
      await new Promise((done) => setTimeout(done, 20));
    }
  });
  const applySeconds = (performance.now() - applyStarted!) / 1000;
  await poller!.stop();
  client.destroy();
  const { rows } = await pg.query(
    `SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_disc(0.95) WITHIN GROUP (ORDER BY ms) AS p95, max(ms) AS max
     FROM (SELECT round(extract(epoch FROM applied_at - accepted_at) * 1000)::int AS ms FROM point_requests WHERE user_id = ANY($1::bigint[])) AS lags`,
    [users],
  );
  return {
    rps: REQUESTS / applySeconds,
    acceptRps: REQUESTS / acceptSeconds,
    dataApi: (accepted.dataApi + applied.dataApi) / REQUESTS,
    callsPerRun: applied.dataApi / runs,
    redis: (accepted.redis + applied.redis) / REQUESTS,
    lag: rows[0] as { p50: number; p95: number; max: number },
    batch: { count: batches, records: REQUESTS / batches, ms: batchMs / batches },
  };
}

/** Shared by the runs: each poller goes on where the last one stopped. */
const checkpoints = new Map<string, string>();
