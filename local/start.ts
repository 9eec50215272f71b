/**
 * npm start: the API on http://127.0.0.1:3000 through serverless-offline
 * (stage local), with the same handlers and Data API client code as in AWS.
 *
 * 1. checks Redis (a cluster node when REDIS_CLUSTER=true);
 * 2. starts the local Data API endpoint (DATABASE_URL, else the embedded
 *    database under .data/), unless DATA_API_ENDPOINT names a running one;
 * 3. migrates, and loads the demo data into an empty database;
 * 4. starts the Kinesis emulator of queued point requests, or uses the one
 *    another stack runs on KINESIS_PORT (local/kinesis.ts);
 * 5. runs `serverless offline start --stage local` until Ctrl-C or SIGTERM,
 *    and once it answers, the poller that applies queued point requests
 *    through its Lambda port (local/kinesis-consumer.ts); then stops them
 *    and the endpoint. If offline dies, so does this, non-zero.
 *
 * Variables: see local/env.ts.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { seedIfEmpty } from '../db/migrate';
import { db } from '../lib/platform/db';
import {
  LocalStackError,
  assertPortFree,
  loadLuaAsText,
  assertRedisReachable,
  hostOf,
  localSettings,
  migrateLocalDatabase,
  projectRoot,
  startLocalDataApi,
  useLocalStackEnv,
} from './env';

const serverlessBin = join(projectRoot, 'node_modules', 'serverless', 'bin', 'serverless.js');

async function main(stop: AbortSignal): Promise<number> {
  const settings = localSettings();
  await assertRedisReachable(settings.redisUrl, settings.redisCluster);
  await assertPortFree(settings.port, 'PORT');
  await assertPortFree(settings.lambdaPort, 'LAMBDA_PORT');
  if (!settings.dataApiEndpoint) await assertPortFree(settings.dataApiPort, 'DATA_API_PORT');
  useLocalStackEnv(settings, settings.dataApiEndpoint ?? `http://127.0.0.1:${settings.dataApiPort}`);
  // The poller's on-failure side runs lib code that imports Lua scripts.
  loadLuaAsText();
  const { startLocalStream } = await import('./kinesis-consumer');
  const stream = await startLocalStream({ port: settings.kinesisPort, stream: settings.pointRequestStream }).catch((error: Error) => {
    throw new LocalStackError(`Could not start the Kinesis emulator on KINESIS_PORT ${settings.kinesisPort}: ${error.message}`);
  });
  // Offline takes seconds to bundle and boot, and needs the database only
  // when a request comes: the database is prepared meanwhile.
  const offline = startOffline(stop);
  try {
    const dataApi = await startLocalDataApi(settings, settings.dataApiPort);
    try {
      const applied = await migrateLocalDatabase(dataApi);
      if (applied.length > 0) console.log(`Applied migrations: ${applied.join(', ')}`);
      if (settings.seed && (await seedIfEmpty(db(), settings.businessTimeZone))) console.log('Loaded the demo data (db/seed.sql) into the empty database.');
      const baseUrl = `http://127.0.0.1:${settings.port}`;
      if (!stop.aborted && (await untilAnswering(`${baseUrl}/health`, offline.exited))) {
        stream.startConsumer(settings.lambdaPort);
        console.log(
          `API on ${baseUrl} (database: ${dataApi.description}; ` +
            `Redis${settings.redisCluster ? ' Cluster' : ''}: ${hostOf(settings.redisUrl)}; ` +
            `Kinesis: ${stream.kinesis.url}${stream.kinesis.owned ? '' : ', shared with another stack'}). ` +
            'Token: npm run token -- 1. Ctrl-C stops.',
        );
      }
      const how = await offline.exited;
      if (stop.aborted) return 0;
      console.error(`serverless offline ended (${how}); stopping the local stack.`);
      return 1;
    } finally {
      await dataApi.close();
    }
  } finally {
    offline.kill();
    await offline.exited;
    await stream.close();
  }
}

/** `serverless offline start --stage local` in this environment, until stop aborts or it ends. */
function startOffline(stop: AbortSignal): { exited: Promise<string>; kill(): void } {
  const child = spawn(process.execPath, ['--enable-source-maps', serverlessBin, 'offline', 'start', '--stage', 'local'], {
    cwd: projectRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<string>((done) => {
    child.once('error', (error) => done(`could not run: ${error.message}`));
    child.once('exit', (code, signal) => done(signal ? `killed by ${signal}` : `code ${code}`));
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  stop.addEventListener('abort', kill, { once: true });
  return { exited, kill };
}

/** Polls url until anything answers (true) or the process ends first (false). */
async function untilAnswering(url: string, exited: Promise<unknown>): Promise<boolean> {
  let ended = false;
  void exited.then(() => (ended = true));
  while (!ended) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(10_000) });
      return true;
    } catch {
      await sleep(100);
    }
  }
  return false;
}

const stop = new AbortController();
// A second Ctrl-C finds no handler and ends the process at once.
process.once('SIGINT', () => stop.abort());
process.once('SIGTERM', () => stop.abort());

main(stop.signal).then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(error instanceof LocalStackError ? error.message : error);
    process.exit(1);
  },
);
