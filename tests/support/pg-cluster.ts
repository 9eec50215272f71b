import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDataApi, type DataApiServer } from '../../local/data-api/server';
import { freePort } from '../../local/ports';

const run = promisify(execFile);

/**
 * A throwaway PostgreSQL cluster that one test file owns, for faults that
 * the machine's shared PostgreSQL must never see (stopping it, restarting
 * it). initdb in a temporary directory, trust auth, a free loopback port, a
 * socket directory of its own; stop() and start() as often as the test
 * likes; destroy() stops it and deletes everything.
 *
 * PostgreSQL refuses to run as root, so when the test runs as root the
 * server runs as the `postgres` OS user (runuser). Needs the server
 * binaries (/usr/lib/postgresql/<version>/bin, or PG_BIN).
 */
export interface PgCluster {
  readonly port: number;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url(database?: string): string;
  /** Stops the server (`pg_ctl stop -m fast`: sessions are cut, as in a crash or a failover). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it if running and deletes its files. Safe to call twice. */
  destroy(): Promise<void>;
}

export function postgresBinaries(): string | undefined {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

export async function startPgCluster(): Promise<PgCluster> {
  const bin = postgresBinaries();
  if (!bin) throw new Error('no PostgreSQL server binaries (initdb, pg_ctl) found: install postgresql or set PG_BIN');
  const asRoot = process.getuid?.() === 0;
  const dir = await mkdtemp(join(tmpdir(), 'pg-cluster-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const as = (command: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, command), ...args]) : run(join(bin, command), args);

  const port = await freePort();
  let running = false;
  let destroyed = false;
  await as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    // A test's cluster: durability buys nothing, and the machine is shared.
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c shared_buffers=16MB',
    '-c max_connections=40',
  ].join(' ');

  const cluster: PgCluster = {
    port,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      await as('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
      running = true;
    },
    async stop() {
      await as('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']);
      running = false;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      if (running) await cluster.stop().catch(() => as('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => {}));
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.start();
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
  return cluster;
}

/**
 * A local Data API endpoint (local/data-api) in front of the cluster, in
 * this process: the production client reaches the cluster's databases
 * through it, as the shared endpoint of global-setup serves the machine's.
 */
export function startClusterDataApi(cluster: PgCluster): Promise<DataApiServer> {
  return startDataApi({ databaseUrl: cluster.url(), port: 0 });
}
