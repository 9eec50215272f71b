import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../local/env';
import { envWith } from '../support/offline';

/**
 * The short form of `npm run load -- --chaos` (load/run.ts, load/chaos.ts):
 * the all-at-once mix for CHAOS_SECONDS against a stack of its own while
 * its Redis is paused, killed and restarted empty and its Data API replies
 * are dropped after the statement ran or delayed, at moments from a seed it
 * prints. It exits 0 only when no request was answered 500 or not at all
 * and every invariant held against the 2xx answers; a failure prints the
 * seed, so `LOAD_CHAOS_SEED=<seed> npm run load -- --chaos` replays its faults.
 */

const CHAOS_SECONDS = 20;
/** Bundling and booting the stack, the run, the drain and the checks, on a loaded 2-core machine. */
const RUN_LIMIT_MS = 240_000;

// It owns its Redis and its stack: the cluster round (TEST_REDIS=cluster) would only run it again.
const runs = process.env.TEST_REDIS === 'cluster' ? it.skip : it;

runs(`keeps every invariant through ${CHAOS_SECONDS} s of random Redis and Data API faults under load`, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', join('load', 'run.ts'), '--chaos'], {
    cwd: projectRoot,
    env: envWith({
      LOAD_DURATION_S: String(CHAOS_SECONDS),
      LOAD_CONNECTIONS: '16',
      LOAD_LABEL: `chaos-${process.env.DB_NAME}`,
      // Its own stack and Redis: nothing of the test run's is used but the PostgreSQL server.
      REDIS_URL: undefined,
      REDIS_CLUSTER: undefined,
      REDIS_KEY_PREFIX: undefined,
      DATA_API_ENDPOINT: undefined,
      DB_NAME: undefined,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((done) => child.once('exit', (exitCode) => done(exitCode)));
  const summary = output.split('\n').filter((line) => /^(chaos|fault at|ok |FAIL|all-at-once|report|\d+ requests)/.test(line));
  console.log(summary.join('\n'));
  expect({ code, tail: code === 0 ? '' : output.slice(-4000) }).toEqual({ code: 0, tail: '' });
}, RUN_LIMIT_MS);
