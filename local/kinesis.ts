/**
 * The local Kinesis Data Streams: kinesis-local (the Node build of
 * kinesis-mock, the emulator LocalStack embeds), plain HTTP on
 * 127.0.0.1:<port>, in memory.
 *
 * Two stacks side by side (different PORT, LAMBDA_PORT, DATA_API_PORT, the
 * same Redis and database, as two Lambda instances) must share ONE stream,
 * as two instances share one in AWS: a user's requests accepted by either
 * must be applied in the order they were accepted, which only one stream
 * (one shard per key) keeps. So the first stack starts the emulator on
 * KINESIS_PORT (4568) and a second one finds it answering there and uses it;
 * both consumers read every shard (see local/kinesis-poller.ts for why that
 * is safe). A stack that started the emulator stops it when it stops: the
 * other then starts a new one on the same port (ensureKinesis again).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { LOCAL_EMULATOR_REGION } from '../lib/platform/stream';
import { freePort } from './ports';

export interface LocalKinesis {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** The stream's ARN. */
  readonly streamArn: string;
  /** Whether this process started the emulator (and stops it in close()). */
  readonly owned: boolean;
  /** Resolves when an emulator this process started exits. */
  readonly exited: Promise<string>;
  close(): Promise<void>;
}

export function kinesisClient(url: string): KinesisClient {
  return new KinesisClient({
    region: LOCAL_EMULATOR_REGION,
    endpoint: url,
    // The emulator ignores signatures; no developer credentials are ever sent.
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    requestHandler: new NodeHttpHandler({ connectionTimeout: 1000, requestTimeout: 5000 }),
    maxAttempts: 1,
  });
}

const STARTUP_TIMEOUT_MS = 30_000;

/**
 * An emulator serving `stream` with `shards` shards on `port` (0: a free
 * one): the one already answering there, or one started here.
 */
export async function ensureKinesis(options: { port: number; stream: string; shards: number }): Promise<LocalKinesis> {
  for (let attempt = 0; ; attempt++) {
    const port = options.port || (await freePort());
    const url = `http://127.0.0.1:${port}`;
    if (options.port && (await answersKinesis(url))) {
      const streamArn = await ensureStream(url, options.stream, options.shards);
      return { url, port, streamArn, owned: false, exited: new Promise(() => {}), close: async () => {} };
    }
    try {
      return await startEmulator(port, options.stream, options.shards);
    } catch (error) {
      // Another stack may have taken the port a moment ago: use its emulator.
      if (attempt >= 3) throw error;
      await sleep(300);
    }
  }
}

async function answersKinesis(url: string): Promise<boolean> {
  const client = kinesisClient(url);
  try {
    await client.send(new ListShardsCommand({ StreamName: 'probe-of-a-stream-that-does-not-exist' }));
    return true;
  } catch (error) {
    return (error as Error).name === 'ResourceNotFoundException';
  } finally {
    client.destroy();
  }
}

async function ensureStream(url: string, stream: string, shards: number): Promise<string> {
  const client = kinesisClient(url);
  try {
    const started = performance.now();
    for (;;) {
      try {
        const { StreamDescriptionSummary: summary } = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
        if (summary?.StreamStatus === 'ACTIVE') return summary.StreamARN!;
      } catch (error) {
        if ((error as Error).name !== 'ResourceNotFoundException') throw error;
        await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: shards })).catch((createError: Error) => {
          if (createError.name !== 'ResourceInUseException') throw createError;
        });
      }
      if (performance.now() - started > STARTUP_TIMEOUT_MS) throw new Error(`stream ${stream} did not become ACTIVE`);
      await sleep(100);
    }
  } finally {
    client.destroy();
  }
}

async function startEmulator(port: number, stream: string, shards: number): Promise<LocalKinesis> {
  const packageDir = dirname(require.resolve('kinesis-local/package.json'));
  // kinesis-local also serves TLS; on a port of its own, so stacks never collide on it.
  const tlsPort = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['main.js'], {
    cwd: packageDir, // it reads server.json (its TLS certificate) from there
    env: {
      PATH: process.env.PATH,
      KINESIS_MOCK_PLAIN_PORT: String(port),
      KINESIS_MOCK_TLS_PORT: String(tlsPort),
      INITIALIZE_STREAMS: `${stream}:${shards}`,
      CREATE_STREAM_DURATION: '0ms',
      SHOULD_PERSIST_DATA: 'false',
      LOAD_DATA_IF_EXISTS: 'false',
      LOG_LEVEL: 'ERROR',
      ROOT_LOG_LEVEL: 'ERROR',
      AWS_REGION: LOCAL_EMULATOR_REGION,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const exited = new Promise<string>((done) => child.once('exit', (code, signal) => done(signal ?? `code ${code}`)));
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  const close = async () => {
    process.removeListener('exit', onExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      child.kill('SIGKILL');
    }
  };
  const url = `http://127.0.0.1:${port}`;
  let ended: string | undefined;
  void exited.then((how) => (ended = how));
  const started = performance.now();
  try {
    while (!(await answersKinesis(url))) {
      if (ended) throw new Error(`kinesis-local on port ${port} exited (${ended}): ${stderr.trim()}`);
      if (performance.now() - started > STARTUP_TIMEOUT_MS) throw new Error(`kinesis-local on port ${port} did not answer within 30 s`);
      await sleep(100);
    }
    // Answering, but maybe not ours: a port taken by another stack's emulator in the meantime.
    await sleep(50);
    if (ended) throw new Error(`kinesis-local on port ${port} exited (${ended}): ${stderr.trim()}`);
    const streamArn = await ensureStream(url, stream, shards);
    await warmUp(url, `${stream}-warm-up`);
    return { url, port, streamArn, owned: true, exited, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * A fresh emulator answers its first puts slowly (its JavaScript is still
 * being compiled: 20 puts at once took a second, then 200 ms): a few rounds
 * of puts on a stream of their own, so the first requests of the stack are
 * not the ones that pay for it.
 */
async function warmUp(url: string, stream: string): Promise<void> {
  await ensureStream(url, stream, 1);
  const client = kinesisClient(url);
  try {
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => client.send(new PutRecordCommand({ StreamName: stream, PartitionKey: String(i), Data: Buffer.from('{}') }))),
      );
    }
  } finally {
    client.destroy();
  }
}
