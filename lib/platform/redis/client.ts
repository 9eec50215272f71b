import Redis, { Cluster, type ClusterOptions, type Command, type RedisOptions } from 'ioredis';
import { config } from '../config';
import { redisReplyCode } from '../dependency-errors';
import { DependencyUnavailableError } from '../errors';
import { logger } from '../logger';
import { redisAuthToken } from '../secrets';
import { guardedSend, wakeReadyWaiters, type Guarded } from './guard';

/**
 * The one Redis client of a Lambda instance, created on first use and reused
 * by every invocation the instance serves. Every command obeys the request's
 * deadline (lib/platform/deadline) and none may run after its request gave
 * up: docs/decisions/001-deadline-scripts.md and
 * docs/decisions/002-redis-command-guard.md.
 *
 * The subclasses below patch ioredis internals (sendCommand, the socket
 * timer): tests/fault/redis-client.test.ts is the gate for any ioredis
 * upgrade, with the other Redis fault tests.
 */

export type RedisClient = Redis | Cluster;

/** A connection silent for this many command timeouts is given up. */
const SOCKET_TIMEOUT_FACTOR = 5;

/** Longest pause between reconnect attempts: one SYN per half second is nothing, a slow recovery is not. */
const RECONNECT_MAX_DELAY_MS = 500;

let client: RedisClient | undefined;

export function redis(): RedisClient {
  client ??= createClient();
  return client;
}

/**
 * The instance's client, or undefined while none can be built (its AUTH
 * token not read yet): for reads that have a source of their own to answer
 * from instead.
 */
export function redisIfReady(): RedisClient | undefined {
  try {
    return redis();
  } catch (error) {
    if (error instanceof DependencyUnavailableError) return undefined;
    throw error;
  }
}

/** Closes the instance's client (scripts and tests; a Lambda never needs to). */
export async function closeRedis(): Promise<void> {
  const current = client;
  client = undefined;
  if (current) await current.quit().catch(() => current.disconnect());
}

/**
 * A new client with this module's settings, for code that needs a connection
 * of its own (tests, tools); the instance's shared one is redis().
 */
export function createClient(): RedisClient {
  const { url, cluster, keyPrefix, connectTimeoutMs, commandTimeoutMs, authParameter } = config().redis;
  // Built without its AUTH token, a client would be refused (NOAUTH) for as
  // long as the instance keeps it. No client, then: redis() tries again on
  // the next call, once lib/platform/secrets has read the token.
  if (authParameter && redisAuthToken() === undefined) {
    throw new DependencyUnavailableError('redis', { cause: new Error(`the Redis AUTH token (SSM parameter ${authParameter}) has not been read`) });
  }
  const options: RedisOptions = {
    connectTimeout: connectTimeoutMs,
    // Each command gets its own timer from the request's deadline (guardedSend).
    commandTimeout: undefined,
    // A command that was in flight when the connection closed fails at once
    // (deadline scripts: at their timer), instead of waiting for reconnects.
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    // A connection that looks open but carries nothing is given up, well
    // after the commands' own timers (docs/decisions/002-redis-command-guard.md).
    socketTimeout: commandTimeoutMs * SOCKET_TIMEOUT_FACTOR,
    retryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_DELAY_MS),
    reconnectOnError: (error) => (redisReplyCode(error.message) === 'READONLY' || redisReplyCode(error.message) === 'LOADING' ? 1 : false),
    keyPrefix,
    // Deployed stages read the AUTH token from SSM at cold start (lib/platform/secrets):
    // it never sits in REDIS_URL or the environment.
    ...(redisAuthToken() !== undefined ? { password: redisAuthToken() } : {}),
  };
  const created: RedisClient = cluster ? createCluster(url, options, commandTimeoutMs) : new DeadlineRedis(url, options, commandTimeoutMs);
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

function createCluster(url: string, redisOptions: RedisOptions, commandTimeoutMs: number): Cluster {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'rediss:' ? {} : undefined;
  const options: ClusterOptions = {
    keyPrefix: redisOptions.keyPrefix,
    enableOfflineQueue: false,
    clusterRetryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_DELAY_MS),
    // ElastiCache's TLS certificates name the configuration endpoint, not the
    // node IPs that DNS resolution would put in their place.
    dnsLookup: (address, callback) => callback(null, address),
    redisOptions: {
      ...redisOptions,
      keyPrefix: undefined,
      tls,
      username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
      password: redisAuthToken() ?? (parsed.password ? decodeURIComponent(parsed.password) : undefined),
    },
  };
  return new DeadlineCluster([{ host: parsed.hostname, port: Number(parsed.port || 6379) }], options, commandTimeoutMs);
}

/** The socket timer belongs to the connection that closed (docs/decisions/007-cluster-client-fixes.md). */
function forgetSocketTimerOnClose(client: Redis): void {
  client.on('close', () => {
    const owner = client as unknown as { socketTimeoutTimer?: NodeJS.Timeout };
    clearTimeout(owner.socketTimeoutTimer);
    owner.socketTimeoutTimer = undefined;
  });
}

class DeadlineRedis extends Redis implements Guarded {
  readyWaiters = new Set<() => void>();

  constructor(url: string, options: RedisOptions, readonly commandTimeoutMs: number) {
    super(url, options);
    this.on('ready', () => wakeReadyWaiters(this));
    forgetSocketTimerOnClose(this);
  }

  connectNow(): void {
    if (this.status === 'wait') this.connect().catch(() => undefined);
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]): unknown {
    // quit keeps ioredis' own handling; a pipeline's commands go out with it.
    return guardedSend(this, command, () => super.sendCommand(command, stream), stream !== undefined || command.name === 'quit');
  }
}

/**
 * The cluster client gets the same timer and the same wait for `ready`; a
 * late re-send by one of its nodes refuses or is harmless
 * (docs/decisions/007-cluster-client-fixes.md).
 */
class DeadlineCluster extends Cluster implements Guarded {
  readyWaiters = new Set<() => void>();

  constructor(nodes: ConstructorParameters<typeof Cluster>[0], options: ClusterOptions, readonly commandTimeoutMs: number) {
    super(nodes, options);
    this.on('ready', () => wakeReadyWaiters(this));
    this.on('+node', (node: Redis) => forgetSocketTimerOnClose(node));
  }

  connectNow(): void {
    if (this.status === 'wait') this.connect().catch(() => undefined);
  }

  override sendCommand(command: Command, stream?: Parameters<Cluster['sendCommand']>[1], node?: unknown): unknown {
    return guardedSend(this, command, () => super.sendCommand(command, stream, node), stream !== undefined || node !== undefined || command.name === 'quit');
  }
}
