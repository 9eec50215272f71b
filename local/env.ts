/**
 * The local stack's settings and environment, in one place for `npm start`,
 * the CLIs (db:migrate, evict-popular-items) and the e2e harness.
 *
 * Variables (all optional):
 *   PORT (3000), LAMBDA_PORT (3002)   serverless-offline's HTTP and Lambda ports
 *   REDIS_URL (redis://127.0.0.1:6379), REDIS_KEY_PREFIX ('')
 *   REDIS_CLUSTER (false)  true: REDIS_URL names one node of a Redis Cluster,
 *                       and the whole API (and every CLI) runs on the cluster
 *   DATABASE_URL        a PostgreSQL server for the local Data API endpoint;
 *                       unset: an embedded PGlite database in DATA_API_DATA_DIR
 *   DATA_API_DATA_DIR   (.data/pglite)
 *   DATA_API_PORT       (4010) where npm start serves the Data API endpoint
 *   DATA_API_ENDPOINT   an endpoint that is already running: use it, start none
 *   DB_NAME             (DATABASE_URL's database, else app)
 *   BUSINESS_TIMEZONE   (Asia/Seoul)
 *   KINESIS_PORT        (4568) the local Kinesis emulator of queued point
 *                       requests; a second stack finds the first's there and
 *                       shares its stream (local/kinesis.ts)
 *   POINT_REQUEST_STREAM (point-requests) that stream's name
 *   SEED_DEMO_DATA      load db/seed.sql into an empty database: true, false
 *                       (default: true for the embedded database only; a
 *                       DATABASE_URL database is someone's own, and their
 *                       rows with explicit ids would collide with the demo's)
 *
 * Longer than most modules: the settings and the small steps that act on
 * them (checks, the Data API's start, migration), one list for every entry
 * point above to pick from.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import Redis from 'ioredis';
import { z } from 'zod';
import { migrate } from '../db/migrate';
import { parseConfig } from '../lib/platform/config';
import { db } from '../lib/platform/db';
import { LOCAL_AUDIENCE, LOCAL_ISSUER } from '../lib/platform/local-token';
import { startDataApi } from './data-api/server';

export const projectRoot = resolve(__dirname, '..');

/** A problem the user can fix; printed as a message, without a stack trace. */
export class LocalStackError extends Error {
  override name = 'LocalStackError';
}

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

const schema = z.object({
  PORT: port(3000),
  LAMBDA_PORT: port(3002),
  DATA_API_PORT: port(4010),
  KINESIS_PORT: port(4568),
  POINT_REQUEST_STREAM: z.string().regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'must be a Kinesis stream name').default('point-requests'),
  DATA_API_ENDPOINT: z.url().optional(),
  DATA_API_DATA_DIR: z.string().default(join(projectRoot, '.data', 'pglite')),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must start with postgres://').optional(),
  DB_NAME: z.string().optional(),
  REDIS_URL: z.string().default('redis://127.0.0.1:6379'),
  REDIS_KEY_PREFIX: z.string().default(''),
  REDIS_CLUSTER: z.enum(['true', 'false', '1', '0']).default('false'),
  BUSINESS_TIMEZONE: z.string().default('Asia/Seoul'),
  SEED_DEMO_DATA: z.enum(['true', 'false']).optional(),
});

export interface LocalSettings {
  port: number;
  lambdaPort: number;
  dataApiPort: number;
  /** The local Kinesis emulator's plain HTTP port, and the stream of queued point requests. */
  kinesisPort: number;
  pointRequestStream: string;
  /** An endpoint someone else runs (the e2e harness shares the test run's). */
  dataApiEndpoint: string | undefined;
  databaseUrl: string | undefined;
  dataDir: string;
  dbName: string;
  redisUrl: string;
  redisKeyPrefix: string;
  /** REDIS_URL names one node of a Redis Cluster. */
  redisCluster: boolean;
  businessTimeZone: string;
  seed: boolean;
}

export function localSettings(env: NodeJS.ProcessEnv = process.env): LocalSettings {
  // `PORT= npm start` means the default, as an unset variable would.
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== '')));
  if (!parsed.success) throw new LocalStackError(`Invalid environment:\n${z.prettifyError(parsed.error)}`);
  const e = parsed.data;
  return {
    port: e.PORT,
    lambdaPort: e.LAMBDA_PORT,
    dataApiPort: e.DATA_API_PORT,
    kinesisPort: e.KINESIS_PORT,
    pointRequestStream: e.POINT_REQUEST_STREAM,
    dataApiEndpoint: e.DATA_API_ENDPOINT,
    databaseUrl: e.DATABASE_URL,
    dataDir: resolve(e.DATA_API_DATA_DIR),
    // lib/platform/db names the database in every call; on PostgreSQL it must be the
    // one DATABASE_URL points at. PGlite has only one and ignores the name.
    dbName: e.DB_NAME ?? (e.DATABASE_URL ? urlDatabase(e.DATABASE_URL) : 'app'),
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    redisCluster: e.REDIS_CLUSTER === 'true' || e.REDIS_CLUSTER === '1',
    businessTimeZone: e.BUSINESS_TIMEZONE,
    seed: e.SEED_DEMO_DATA === undefined ? !e.DATABASE_URL : e.SEED_DEMO_DATA === 'true',
  };
}

/** The database libpq would pick: the path, else the user name. */
function urlDatabase(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  return decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username) || 'postgres';
}

/**
 * Puts this process in the environment of stage `local`: what serverless.yml
 * reads for it (ports, DB_NAME, REDIS_*, DATA_API_ENDPOINT, ...) and what its
 * functions then see, so lib code run here (db(), a handler) and the
 * serverless-offline child spawned from here agree. Throws, before anything
 * starts, when lib/platform/config would refuse it.
 */
export function useLocalStackEnv(settings: LocalSettings, dataApiUrl: string): void {
  const env = {
    STAGE: 'local',
    AWS_REGION: 'us-east-1',
    // The SDK signs every call, even to the local endpoint, which ignores the
    // signature: any key will do, and a developer's real one is never sent.
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    // Lambda runs Node 22; locally the same code runs on the developer's Node 20+.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    PORT: String(settings.port),
    LAMBDA_PORT: String(settings.lambdaPort),
    DB_RESOURCE_ARN: 'arn:aws:rds:us-east-1:000000000000:cluster:local',
    DB_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:local',
    DB_NAME: settings.dbName,
    DATA_API_ENDPOINT: dataApiUrl,
    KINESIS_ENDPOINT: `http://127.0.0.1:${settings.kinesisPort}`,
    POINT_REQUEST_STREAM: settings.pointRequestStream,
    REDIS_URL: settings.redisUrl,
    REDIS_KEY_PREFIX: settings.redisKeyPrefix,
    // serverless.yml's local params pass it on to the functions.
    REDIS_CLUSTER: String(settings.redisCluster),
    BUSINESS_TIMEZONE: settings.businessTimeZone,
    JWT_ISSUER: LOCAL_ISSUER,
    JWT_AUDIENCE: LOCAL_AUDIENCE,
  };
  try {
    parseConfig(env);
  } catch (error) {
    throw new LocalStackError((error as Error).message);
  }
  Object.assign(process.env, env);
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
}

/**
 * Lets code that imports Lua scripts (and SQL statements) run under tsx. The
 * Lambda bundles carry them as text (esbuild's text loader, serverless.yml),
 * jest transforms them the same way (tests/support/lua-transform.js), and
 * this hook does it for the local scripts. Register it before importing such code.
 */
export function loadLuaAsText(): void {
  for (const extension of ['.lua', '.sql']) {
    require.extensions[extension] ??= (module, filename) => {
      module.exports = { __esModule: true, default: readFileSync(filename, 'utf8') };
    };
  }
}

/**
 * Redis answers at redisUrl, and in the mode asked for (when `cluster` is
 * given): a cluster node when true, a standalone server when false. A
 * mismatch would otherwise only show as MOVED or CROSSSLOT errors, request
 * by request.
 */
export async function assertRedisReachable(redisUrl: string, cluster?: boolean): Promise<void> {
  const client = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause: string | undefined; // the socket's error; connect() only says the connection closed
  client.on('error', (error: Error) => (cause ??= error.message));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new LocalStackError(
      [
        `Redis is not reachable at ${hostOf(redisUrl)} (${cause ?? (error as Error).message}).`,
        'The local stack needs a running Redis (6.2 or newer). Start one, for example:',
        '  redis-server                                  (apt install redis-server, brew install redis)',
        '  docker run --rm -p 6379:6379 redis:7-alpine',
        'or set REDIS_URL to a Redis you already have.',
      ].join('\n'),
    );
  } finally {
    client.disconnect();
  }
  if (cluster !== undefined) await assertRedisMode(redisUrl, cluster);
}

async function assertRedisMode(redisUrl: string, cluster: boolean): Promise<void> {
  const client = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    const enabled = /cluster_enabled:1/.test(await client.info('cluster'));
    if (enabled && !cluster) {
      throw new LocalStackError(
        `Redis at ${hostOf(redisUrl)} is a Redis Cluster node. Set REDIS_CLUSTER=true to run the API on the cluster.`,
      );
    }
    if (!enabled && cluster) {
      throw new LocalStackError(
        `REDIS_CLUSTER=true, but Redis at ${hostOf(redisUrl)} is not a cluster node (cluster_enabled:0). ` +
          'Point REDIS_URL at a node of a Redis Cluster, or unset REDIS_CLUSTER.',
      );
    }
    if (cluster) {
      const info = (await client.cluster('INFO')) as string;
      if (!/cluster_state:ok/.test(info)) {
        throw new LocalStackError(`The Redis Cluster of ${hostOf(redisUrl)} is not ready (${info.split(/\r?\n/)[0]}).`);
      }
    }
  } finally {
    client.disconnect();
  }
}

export async function assertPortFree(portNumber: number, variable: string): Promise<void> {
  const server = net.createServer();
  try {
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(portNumber, '127.0.0.1', done);
    });
  } catch (error) {
    const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
    const why = inUse ? 'is in use (is the local stack already running?)' : `cannot be used (${(error as Error).message})`;
    throw new LocalStackError(`Port ${portNumber} ${why}. Set ${variable} to another port.`);
  }
  await new Promise((done) => server.close(done));
}

/** host:port of a URL, for messages (URLs may carry passwords). */
export function hostOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || (parsed.protocol.startsWith('redis') ? 6379 : 5432)}`;
}

export interface LocalDataApi {
  url: string;
  /** Says where the data lives, for the ready line. */
  description: string;
  close(): Promise<void>;
}

/**
 * The Data API endpoint the stack uses: DATA_API_ENDPOINT when one already
 * runs, else one started here in front of DATABASE_URL or the embedded
 * database. `port` 0 picks a free one.
 */
export async function startLocalDataApi(settings: LocalSettings, port: number): Promise<LocalDataApi> {
  if (settings.dataApiEndpoint) {
    return { url: settings.dataApiEndpoint, description: `Data API ${settings.dataApiEndpoint}`, close: async () => {} };
  }
  if (settings.databaseUrl) {
    const server = await startDataApi({ databaseUrl: settings.databaseUrl, port });
    return { ...server, description: `PostgreSQL ${hostOf(settings.databaseUrl)}/${settings.dbName}` };
  }
  const unlock = lockEmbeddedDatabase(settings.dataDir);
  try {
    const server = await startDataApi({ dataDir: settings.dataDir, port });
    return {
      url: server.url,
      description: `embedded PGlite in ${settings.dataDir}`,
      async close() {
        await server.close();
        unlock();
      },
    };
  } catch (error) {
    unlock();
    throw error;
  }
}

/** db/migrate through the endpoint, as the functions reach the database (after useLocalStackEnv). */
export async function migrateLocalDatabase(dataApi: LocalDataApi): Promise<string[]> {
  try {
    return await migrate(db());
  } catch (error) {
    throw new LocalStackError(`Could not migrate the database (${dataApi.description}): ${(error as Error).message}`);
  }
}

/**
 * PGlite is one process's database: a second process opening the same files
 * would corrupt them, and PGlite itself does not stop it. A pid file next to
 * the data directory does; one whose process is gone is stale and replaced.
 */
function lockEmbeddedDatabase(dataDir: string): () => void {
  const file = `${dataDir}.lock`;
  mkdirSync(dirname(file), { recursive: true });
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileSync(file, 'utf8'));
    if (isRunning(holder)) {
      throw new LocalStackError(
        `The embedded database in ${dataDir} is in use by process ${holder} (npm start?). ` +
          'PGlite lets one process at a time open it: stop that one first.',
      );
    }
    rmSync(file, { force: true });
  }
}

function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
