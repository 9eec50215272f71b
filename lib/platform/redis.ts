import { createHash } from 'node:crypto';
import Redis, { Cluster, type ClusterOptions, type RedisOptions } from 'ioredis';
import { config } from './config';
import { currentDeadline } from './deadline';
import { logger } from './logger';

/**
 * The one Redis client of a Lambda instance, created on first use and reused
 * by every invocation the instance serves.
 *
 * Tuned to fail fast: a Lambda must answer 503 within a second or two when
 * Redis is away, not hang until API Gateway gives up at 30 s.
 * - connect and command timeouts of about a second (config);
 * - at most one retry of a command after a reconnect;
 * - the offline queue stays on so the cold start's first command waits for
 *   the connection, but it is bounded: every queued command still times out
 *   after commandTimeout and is dropped after one failed reconnect.
 */

export type RedisClient = Redis | Cluster;

let client: RedisClient | undefined;

export function redis(): RedisClient {
  client ??= createClient();
  return client;
}

/** Closes the instance's client (scripts and tests; a Lambda never needs to). */
export async function closeRedis(): Promise<void> {
  const current = client;
  client = undefined;
  if (current) await current.quit().catch(() => current.disconnect());
}

function createClient(): RedisClient {
  const { url, cluster, keyPrefix, connectTimeoutMs, commandTimeoutMs } = config().redis;
  const options: RedisOptions = {
    connectTimeout: connectTimeoutMs,
    commandTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    keyPrefix,
  };
  const created: RedisClient = cluster ? createCluster(url, options) : new Redis(url, options);
  let lastError = '';
  created.on('error', (error: Error) => {
    // ioredis emits the same error on every reconnect attempt; log changes only.
    if (error.message === lastError) return;
    lastError = error.message;
    logger.warn('redis connection error', { error: error.message });
  });
  created.on('ready', () => {
    lastError = '';
  });
  return created;
}

function createCluster(url: string, redisOptions: RedisOptions): Cluster {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'rediss:' ? {} : undefined;
  const options: ClusterOptions = {
    keyPrefix: redisOptions.keyPrefix,
    enableOfflineQueue: true,
    // ElastiCache's TLS certificates name the configuration endpoint, not the
    // node IPs that DNS resolution would put in their place.
    dnsLookup: (address, callback) => callback(null, address),
    redisOptions: {
      ...redisOptions,
      keyPrefix: undefined,
      tls,
      username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
      password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    },
  };
  return new Cluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], options);
}

/** A Lua script from lua/. Its KEYS count is fixed so ioredis can prefix them. */
export interface LuaScript {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly source: string;
  readonly sha1: string;
  /**
   * A script that writes takes the request's cutoff as ARGV[1] (runScript
   * puts it there) and must refuse, before any write, once Redis TIME is past
   * it, with an error reply starting `EXPIRED`: a command that reaches Redis
   * after its client gave up (Redis paused, a re-sent command after a
   * reconnect) then does nothing. Its first lines are always:
   *
   *   local now = redis.call('TIME')
   *   if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
   *     return redis.error_reply('EXPIRED the request gave up before this ran')
   *   end
   */
  readonly deadline: boolean;
}

export function luaScript(name: string, numberOfKeys: number, source: string, options: { deadline?: boolean } = {}): LuaScript {
  const deadline = options.deadline ?? false;
  if (deadline && !/redis\.call\('TIME'\)[\s\S]*EXPIRED/.test(source)) {
    throw new Error(`${name}: a deadline script must check Redis TIME against ARGV[1] and reply EXPIRED`);
  }
  return { name, numberOfKeys, source, sha1: createHash('sha1').update(source).digest('hex'), deadline };
}

type ScriptRunner = (...keysAndArgs: (string | number)[]) => Promise<unknown>;
const defined = new WeakMap<RedisClient, Set<string>>();

/**
 * Runs a script in one round trip: EVALSHA, falling back to EVAL (which also
 * caches it server-side) only when Redis answers NOSCRIPT, e.g. after a
 * failover or on the first call to a fresh node.
 */
export async function runScript<T>(
  script: LuaScript,
  keys: readonly string[],
  args: readonly (string | number)[],
  client: RedisClient = redis(),
): Promise<T> {
  if (keys.length !== script.numberOfKeys) {
    throw new Error(`${script.name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
  }
  let names = defined.get(client);
  if (!names) defined.set(client, (names = new Set()));
  if (!names.has(script.name)) {
    client.defineCommand(script.name, { numberOfKeys: script.numberOfKeys, lua: script.source });
    names.add(script.name);
  }
  const run = (client as unknown as Record<string, ScriptRunner>)[script.name]!;
  const allArgs = script.deadline ? [commandCutoffMs(), ...args] : args;
  return (await run.call(client, ...keys, ...allArgs)) as T;
}

/**
 * The cutoff a deadline script gets: the request's, or sooner when the
 * command's own timeout ends first (the client stops waiting then).
 */
function commandCutoffMs(): number {
  return currentDeadline().within(config().redis.commandTimeoutMs).serverCutoffMs();
}

const unavailableCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EHOSTUNREACH', 'EAI_AGAIN']);
const unavailableMessages = [
  'Connection is closed',
  "Stream isn't writeable",
  'Command timed out',
  'Reached the max retries per request limit',
  'Failed to refresh slots cache',
  'None of startup nodes is available',
  'LOADING',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'MASTERDOWN',
  'READONLY',
  // A deadline script that reached Redis after its client gave up (see LuaScript.deadline).
  'EXPIRED',
];

/** Does this error mean "Redis cannot be reached right now" (a 503, not a bug)? */
export function isRedisUnavailable(error: unknown): boolean {
  // Duck-typed: socket errors may come from another realm (test runners),
  // failing `instanceof Error`.
  if (typeof error !== 'object' || error === null) return false;
  const { name, code, message } = error as { name?: unknown; code?: unknown; message?: unknown };
  if (name === 'MaxRetriesPerRequestError' || name === 'ClusterAllFailedError') return true;
  if (typeof code === 'string' && unavailableCodes.has(code)) return true;
  return typeof message === 'string' && unavailableMessages.some((text) => message.includes(text));
}
