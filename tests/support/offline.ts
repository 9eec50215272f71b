import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalToken } from '../../lib/platform/local-token';
import { projectRoot } from '../../local/env';
import { useTestDatabase, type TestDatabaseHandle } from './database';
import { freePorts } from '../../local/ports';

export interface OfflineStack {
  baseUrl: string;
  /** Its Kinesis emulator's port: a second stack given it (KINESIS_PORT) shares the stream. */
  kinesisPort: string;
  /** Everything the stack printed so far (its last 20,000 characters): its log and metric lines. */
  output(): string;
  /** Stops the stack and everything it started; safe to call twice. */
  stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 60_000;
const SHUTDOWN_TIMEOUT_MS = 15_000;
/** For a hook or test that starts a stack: bundling and booting it, not a speed expectation. */
export const STACK_TIMEOUT_MS = 120_000;

/**
 * The API through serverless-offline, started the way `npm start` starts it
 * (local/start.ts), for e2e test files. By default it serves the calling
 * file's database (DB_NAME, created and migrated by createTestDatabase())
 * through the test run's Data API endpoint, with the file's Redis key prefix,
 * on free ports and without the demo data. `env` overrides any of that; an
 * undefined value unsets the variable.
 */
export async function startOfflineStack(env: Record<string, string | undefined> = {}): Promise<OfflineStack> {
  // The Kinesis emulator too: stacks of parallel files serve different
  // databases, so each gets a stream of its own (two stacks of one file
  // share one by passing the first's KINESIS_PORT in `env`).
  const [port, lambdaPort, dataApiPort, kinesisPort] = await freePorts(4);
  // Each stack bundles into its own folder: stacks of parallel test files
  // would otherwise overwrite each other's bundles. Inside .esbuild, which
  // every stack's file watcher ignores.
  const workFolder = join('.esbuild', `e2e-${randomBytes(4).toString('hex')}`);
  const childEnv = envWith({
    PORT: String(port),
    LAMBDA_PORT: String(lambdaPort),
    DATA_API_PORT: String(dataApiPort),
    KINESIS_PORT: String(kinesisPort),
    SEED_DEMO_DATA: 'false',
    ESBUILD_WORK_FOLDER: workFolder,
    ...env,
  });

  // Its own process group, so stop() reaches serverless-offline too.
  const child = spawn(process.execPath, ['--import', 'tsx', join('local', 'start.ts')], {
    cwd: projectRoot,
    env: childEnv,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
    if (process.env.TEST_DEBUG) process.stderr.write(chunk);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<string>((done) => child.once('exit', (code, signal) => done(signal ?? `code ${code}`)));

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      signalGroup(child.pid!, 'SIGTERM');
      await Promise.race([exited, sleep(SHUTDOWN_TIMEOUT_MS, undefined, { ref: false })]);
      signalGroup(child.pid!, 'SIGKILL'); // whatever did not stop in time
      await rm(join(projectRoot, workFolder), { recursive: true, force: true });
    })();
    return stopped;
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await untilHealthy(baseUrl, exited);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n--- local/start.ts output ---\n${output}`);
  }
  return { baseUrl, kinesisPort: childEnv.KINESIS_PORT!, output: () => output, stop };
}

/** `database` and `request` may be taken out at the top level; `baseUrl` exists only from beforeAll on. */
export interface E2eFile {
  /** The file's database (see useTestDatabase). */
  readonly database: TestDatabaseHandle;
  readonly baseUrl: string;
  /** The stack's Kinesis emulator port: a second stack started with it as KINESIS_PORT shares its stream. */
  readonly kinesisPort: string;
  /**
   * One request to the file's stack, as user `userId` (with a local token,
   * lib/platform/local-token) or without a token: see StackRequest and StackAnswer.
   */
  request<H extends string = never>(method: string, path: string, userId?: number, options?: StackRequest<H>): Promise<StackAnswer<H>>;
}

/**
 * The usual e2e file: its database (useTestDatabase), and a stack serving it,
 * from before its first test until after its last.
 */
export function useOfflineStack(): E2eFile {
  let stack: OfflineStack | undefined;
  // Registered before the database's hooks, as jest runs afterAll hooks in the
  // order they were registered: the stack stops before the database closes.
  afterAll(async () => {
    await stack?.stop();
  });
  const database = useTestDatabase();
  beforeAll(async () => {
    void database.pg; // throws if the database could not be made: then no stack to wait for
    stack = await startOfflineStack();
  }, STACK_TIMEOUT_MS);
  const baseUrl = () => stack!.baseUrl;
  return {
    database,
    get baseUrl() {
      return baseUrl();
    },
    get kinesisPort() {
      return stack!.kinesisPort;
    },
    request: (method, path, userId, options) => requestStack(baseUrl(), method, path, userId, options),
  };
}

export interface StackRequest<H extends string = never> {
  /** Sent as JSON, with content-type application/json; a string is sent as it is. */
  body?: string | object;
  headers?: Record<string, string>;
  /** Response headers to answer with, by the name to give each, e.g. { replayed: 'idempotent-replayed' }. */
  report?: Record<H, string>;
}

/** What the stack answered: status, content type and parsed JSON body, plus each header asked for in `report` (null when absent). */
export type StackAnswer<H extends string = never> = { status: number; type: string | null; body: unknown } & Record<H, string | null>;

async function requestStack<H extends string = never>(
  baseUrl: string,
  method: string,
  path: string,
  userId?: number,
  { body, headers = {}, report }: StackRequest<H> = {},
): Promise<StackAnswer<H>> {
  const sent: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
  if (userId !== undefined) sent.authorization = `Bearer ${await createLocalToken(userId)}`;
  const response = await fetch(baseUrl + path, {
    method,
    headers: { ...sent, ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const reported = Object.fromEntries(Object.entries<string>(report ?? {}).map(([name, header]) => [name, response.headers.get(header)]));
  return { status: response.status, type: response.headers.get('content-type'), ...reported, body: await response.json() } as StackAnswer<H>;
}

async function untilHealthy(baseUrl: string, exited: Promise<string>): Promise<void> {
  let exit: string | undefined;
  void exited.then((how) => (exit = how));
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (exit) throw new Error(`the local stack exited during startup (${exit})`);
    try {
      const response = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(5000) });
      if (response.status === 200) return;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`GET ${baseUrl}/health did not answer 200 within ${STARTUP_TIMEOUT_MS / 1000} s (last: ${last})`);
}

/** This process's environment with these changes; undefined unsets. */
export function envWith(changes: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...changes };
  for (const [name, value] of Object.entries(changes)) if (value === undefined) delete env[name];
  return env;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}
