import Redis, { Cluster, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * Test helpers that work on standalone Redis and on Redis Cluster alike.
 *
 * On a cluster a plain `new Redis(url)` talks to one node only: a key of
 * another node's slots answers MOVED, and a command over keys of several slots
 * answers CROSSSLOT. Tests build their own connections with testRedis()
 * instead, and do per-node work (flush, count, INFO, SCAN) through masters().
 *
 * REDIS_CLUSTER=true (set by global-setup when TEST_REDIS=cluster) means
 * REDIS_URL names one node of a cluster, as in lib/platform/config.
 */

export type TestRedisClient = Redis | Cluster;

export const onCluster = (): boolean => process.env.REDIS_CLUSTER === 'true' || process.env.REDIS_CLUSTER === '1';

/**
 * A connection of the test's own to REDIS_URL (or `url`): a Cluster client
 * when the run is on a cluster, else a plain one. `options` are the usual
 * RedisOptions (keyPrefix included); on a cluster they apply to every node.
 */
export function testRedis(options: RedisOptions = {}, url: string = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'): TestRedisClient {
  if (!onCluster()) return new Redis(url, options);
  const parsed = new URL(url);
  const { keyPrefix, enableOfflineQueue, ...redisOptions } = options;
  const clusterOptions: ClusterOptions = {
    keyPrefix,
    enableOfflineQueue: enableOfflineQueue ?? true,
    redisOptions,
    // A test connection follows a failover promptly instead of after the default 1 s.
    slotsRefreshTimeout: 2000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
  };
  return new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], clusterOptions);
}

/** One connection per master (the client itself on standalone Redis). Keys there carry no keyPrefix. */
export async function masters(client: TestRedisClient): Promise<Redis[]> {
  if (!(client instanceof Cluster)) return [client];
  if (client.status !== 'ready') {
    await new Promise<void>((done, fail) => {
      client.once('ready', done);
      client.once('error', fail);
      if (client.status === 'wait') client.connect().catch(fail);
    });
  }
  return client.nodes('master');
}

/** FLUSHALL on every master. */
export async function flushAll(client: TestRedisClient): Promise<void> {
  await Promise.all((await masters(client)).map((node) => node.flushall()));
}

/** Every key matching `pattern` (a SCAN MATCH glob over full key names, prefix included), from every master. */
export async function scanAll(client: TestRedisClient, pattern = '*'): Promise<string[]> {
  const found: string[] = [];
  for (const node of await masters(client)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
  return found;
}

/** How many keys match `pattern` over all masters (DBSIZE summed for '*'). */
export async function countKeys(client: TestRedisClient, pattern = '*'): Promise<number> {
  if (pattern === '*') {
    const sizes = await Promise.all((await masters(client)).map((node) => node.dbsize()));
    return sizes.reduce((sum, size) => sum + size, 0);
  }
  return (await scanAll(client, pattern)).length;
}

/** Deletes every key matching `pattern` on every master, node by node (no CROSSSLOT). Returns how many. */
export async function unlinkMatching(client: TestRedisClient, pattern: string): Promise<number> {
  let removed = 0;
  for (const node of await masters(client)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      // One UNLINK per key: keys of one node may still be of different slots.
      if (keys.length > 0) removed += (await Promise.all(keys.map((key) => node.unlink(key)))).reduce((a, b) => a + b, 0);
      cursor = next;
    } while (cursor !== '0');
  }
  return removed;
}

/** INFO `section` of every master, parsed to numbers where a field is one, and summed. */
export async function infoSummed(client: TestRedisClient, section: string): Promise<Record<string, number>> {
  const summed: Record<string, number> = {};
  for (const node of await masters(client)) {
    for (const [field, value] of Object.entries(parseInfo(await node.info(section)))) {
      const number = Number(value);
      if (Number.isFinite(number)) summed[field] = (summed[field] ?? 0) + number;
    }
  }
  return summed;
}

export interface CommandStat {
  calls: number;
  usec: number;
  rejectedCalls: number;
  failedCalls: number;
}

/** INFO commandstats, per command (lower case, e.g. `evalsha`, `get`), summed over masters. */
export async function commandStats(client: TestRedisClient): Promise<Record<string, CommandStat>> {
  const perNode = await commandStatsPerMaster(client);
  const summed: Record<string, CommandStat> = {};
  for (const stats of perNode.values()) {
    for (const [command, stat] of Object.entries(stats)) {
      const into = (summed[command] ??= { calls: 0, usec: 0, rejectedCalls: 0, failedCalls: 0 });
      into.calls += stat.calls;
      into.usec += stat.usec;
      into.rejectedCalls += stat.rejectedCalls;
      into.failedCalls += stat.failedCalls;
    }
  }
  return summed;
}

/** INFO commandstats of each master, by "host:port": where the load goes. */
export async function commandStatsPerMaster(client: TestRedisClient): Promise<Map<string, Record<string, CommandStat>>> {
  const result = new Map<string, Record<string, CommandStat>>();
  for (const node of await masters(client)) {
    const stats: Record<string, CommandStat> = {};
    for (const [field, value] of Object.entries(parseInfo(await node.info('commandstats')))) {
      // cmdstat_get:calls=1,usec=2,usec_per_call=2.00,rejected_calls=0,failed_calls=0
      if (!field.startsWith('cmdstat_')) continue;
      const parts = Object.fromEntries(value.split(',').map((pair) => pair.split('=') as [string, string]));
      stats[field.slice('cmdstat_'.length)] = {
        calls: Number(parts.calls ?? 0),
        usec: Number(parts.usec ?? 0),
        rejectedCalls: Number(parts.rejected_calls ?? 0),
        failedCalls: Number(parts.failed_calls ?? 0),
      };
    }
    result.set(`${node.options.host}:${node.options.port}`, stats);
  }
  return result;
}

/** CONFIG RESETSTAT on every master, so commandstats count from now. */
export async function resetStats(client: TestRedisClient): Promise<void> {
  await Promise.all((await masters(client)).map((node) => node.config('RESETSTAT')));
}

/** Total calls of `command` over the masters (commandstats). */
export async function callsOf(client: TestRedisClient, command: string): Promise<number> {
  return (await commandStats(client))[command.toLowerCase()]?.calls ?? 0;
}

export function parseInfo(info: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of info.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at > 0) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}
