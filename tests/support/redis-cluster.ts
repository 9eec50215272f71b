import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';

/**
 * A throwaway Redis Cluster on loopback: 3 masters (optionally one replica
 * each), on free ports, with their files in a temp directory. For the test
 * run (TEST_REDIS=cluster), the failover test and the load test. Never
 * touches 6379 or any port it did not pick itself.
 *
 * Needs redis-server and redis-cli (7.x) on the PATH.
 */

export interface ClusterNode {
  port: number;
  url: string;
  pid: number;
}

export interface RedisClusterOptions {
  /** Replicas per master: 0 (default) or 1. */
  replicas?: 0 | 1;
  /** cluster-node-timeout: how long before a silent master is failed over. */
  nodeTimeoutMs?: number;
  /** Told where the cluster runs, once it is up. */
  log?: (line: string) => void;
  /**
   * Every write fsynced to an append-only file before it is acknowledged, so
   * a node killed and restarted comes back with everything it acknowledged
   * (a whole-cluster restart whose counts the test checks exactly).
   */
  appendonly?: boolean;
}

export interface RedisCluster {
  /** A node's URL (the first master's), as REDIS_URL names one node. */
  url: string;
  nodes: ClusterNode[];
  dir: string;
  /** The node currently master of `slot`, by asking the cluster. */
  masterOf(slot: number): Promise<ClusterNode>;
  /** SIGKILLs a node (a master, for a failover). */
  kill(node: ClusterNode): void;
  /**
   * Starts a killed node again on its port with its nodes.conf (and its
   * append-only file, with `appendonly`): it rejoins the cluster as it was.
   */
  restart(node: ClusterNode): Promise<void>;
  /** Resolves once every slot is served by a master that is up (after a failover). */
  waitUntilHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every node and deletes the directory; safe to call twice. */
  stop(): Promise<void>;
}

export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const replicas = options.replicas ?? 0;
  const count = 3 * (1 + replicas);
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 5000;
  const dir = mkdtempSync(join(tmpdir(), 'redis-cluster-'));
  const ports = await freePorts(count);
  const children = new Map<number, ChildProcess>();
  const nodes: ClusterNode[] = [];
  const stop = async () => {
    await Promise.all(
      [...children.values()].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((done) => child.once('exit', done));
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(2000, undefined, { ref: false })]);
      }),
    );
    children.clear();
    process.off('exit', killAll);
    rmSync(dir, { recursive: true, force: true });
  };
  // A run that dies without stopping the cluster leaves no redis-server behind.
  const killAll = () => {
    for (const child of children.values()) if (isAlive(child)) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', killAll);
  try {
    const spawnNode = (port: number) => {
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(nodeTimeoutMs),
          // A replica takes over as soon as it notices, however stale it is.
          '--cluster-replica-validity-factor', '0',
          '--dir', dir,
          '--dbfilename', `dump-${port}.rdb`,
          '--save', '',
          ...(options.appendonly
            ? ['--appendonly', 'yes', '--appendfsync', 'always', '--appenddirname', `aof-${port}`]
            : ['--appendonly', 'no']),
          '--logfile', join(dir, `redis-${port}.log`),
          '--daemonize', 'no',
        ],
        { stdio: 'ignore' },
      );
      children.set(port, child);
      return child;
    };
    for (const port of ports) nodes.push({ port, url: `redis://127.0.0.1:${port}`, pid: spawnNode(port).pid! });
    await Promise.all(ports.map((port) => untilPing(port)));
    const create = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}\n${create.stderr}`);
    const cluster: RedisCluster = {
      url: nodes[0]!.url,
      nodes,
      dir,
      async masterOf(slot) {
        for (const node of nodes) {
          if (!isAlive(children.get(node.port))) continue;
          const slots = await withNode(node.port, (client) => client.cluster('SLOTS') as unknown as Promise<[number, number, [string, number]][]>).catch(() => undefined);
          if (!slots) continue;
          const range = slots.find(([from, to]) => slot >= from && slot <= to);
          if (range) return nodes.find((candidate) => candidate.port === range[2][1])!;
        }
        throw new Error(`no live node knows who serves slot ${slot}`);
      },
      kill(node) {
        children.get(node.port)?.kill('SIGKILL');
      },
      async restart(node) {
        const old = children.get(node.port);
        if (old && old.exitCode === null && old.signalCode === null) {
          if (!old.killed) throw new Error(`node ${node.port} is still running`);
          await new Promise((exited) => old.once('exit', exited));
        }
        node.pid = spawnNode(node.port).pid!;
        await untilPing(node.port);
      },
      async waitUntilHealthy(timeoutMs = 30_000) {
        await untilClusterOk(nodes.filter((node) => isAlive(children.get(node.port))).map((node) => node.port), timeoutMs);
      },
      stop,
    };
    // redis-cli returns when the configuration is sent; every node must agree before use.
    await cluster.waitUntilHealthy();
    if (replicas > 0) await untilReplicasSynced(ports);
    options.log?.(`redis cluster: ${replicas ? '3 masters + 3 replicas' : '3 masters'} on ${ports.join(', ')} (${dir})`);
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

function isAlive(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

async function withNode<T>(port: number, fn: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

async function untilPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await withNode(port, (client) => client.ping());
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start: ${(error as Error).message}`);
      await sleep(50);
    }
  }
}

/** Every live node says cluster_state:ok and sees all 16384 slots assigned. */
async function untilClusterOk(ports: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const states = await Promise.all(
      ports.map((port) => withNode(port, (client) => client.cluster('INFO') as Promise<string>).catch((error: Error) => error.message)),
    );
    if (states.every((info) => /cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info))) return;
    last = states.find((info) => !/cluster_state:ok/.test(info)) ?? '';
    if (Date.now() > deadline) throw new Error(`the cluster is not ok after ${timeoutMs} ms: ${last.split('\r\n').slice(0, 3).join(' ')}`);
    await sleep(100);
  }
}

/** Every replica reports its link to its master up (the first full sync done). */
async function untilReplicasSynced(ports: number[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const infos = await Promise.all(ports.map((port) => withNode(port, (client) => client.info('replication')).catch(() => '')));
    const replicaInfos = infos.filter((info) => /role:slave/.test(info));
    if (replicaInfos.length > 0 && replicaInfos.every((info) => /master_link_status:up/.test(info))) return;
    if (Date.now() > deadline) throw new Error('the replicas did not sync with their masters');
    await sleep(100);
  }
}

/** Ports free right now, held together so they are distinct; never 6379. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  while (ports.length < count) {
    const server = net.createServer();
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    servers.push(server);
    const { port } = server.address() as net.AddressInfo;
    // The cluster bus listens on port + 10000: it must fit and be free too.
    if (port !== 6379 && port + 10000 <= 65535 && (await portFree(port + 10000))) ports.push(port);
  }
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  return ports;
}

async function portFree(port: number): Promise<boolean> {
  const server = net.createServer();
  try {
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(port, '127.0.0.1', done);
    });
    await new Promise((done) => server.close(done));
    return true;
  } catch {
    return false;
  }
}
