/**
 * The one list of errors that mean "a dependency cannot be reached right
 * now": a 503 with Retry-After, not a bug. lib/platform/http maps thrown
 * errors with it; lib/platform/db and lib/platform/redis classify with it.
 *
 * Everything is duck-typed on name, code and message: socket and SDK errors
 * may come from another realm (the SDK re-wraps Node's errors, test runners
 * load their own copies), which fails `instanceof`.
 */

export type Dependency = 'redis' | 'database' | 'stream';

/** Node's socket and DNS errors, whoever raised them. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/** ioredis' own errors (client side: the connection, not the command). */
const REDIS_ERROR_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError']);
const REDIS_CLIENT_MESSAGES = [
  'Connection is closed',
  "Stream isn't writeable",
  'Command timed out',
  'Reached the max retries per request limit',
  'Failed to refresh slots cache',
  'None of startup nodes is available',
  'Command aborted due to connection close',
  // A cluster client between losing every node and its next connect (its
  // offline queue is off: lib/platform/redis).
  "Cluster isn't ready",
  'Cluster is ended',
  // A cluster that kept answering CLUSTERDOWN, TRYAGAIN or MOVED through a
  // failover until ioredis stopped redirecting (16 tries).
  'Too many Cluster redirections',
];
/**
 * Redis error replies that mean "not now" rather than "wrong": a loading or
 * demoted node (ElastiCache failover answers READONLY on the old primary), a
 * cluster mid-resharding, and EXPIRED from a deadline script that reached
 * Redis after its client gave up (lib/platform/redis, LuaScript.deadline).
 */
export const REDIS_TRANSIENT_REPLIES = ['LOADING', 'READONLY', 'CLUSTERDOWN', 'TRYAGAIN', 'MASTERDOWN', 'EXPIRED'] as const;

/** The RDS Data API's (and the SDK's) names for "the database is away". */
const DATABASE_ERROR_NAMES = new Set([
  'DatabaseUnavailableException',
  'DatabaseResumingException',
  'DatabaseNotFoundException',
  'ServiceUnavailableError',
  'InternalServerErrorException',
  'ThrottlingException',
  'TimeoutError',
]);

interface Described {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** Error replies start with their code: `READONLY You can't write against a read only replica.` */
export function redisReplyCode(message: string): string | undefined {
  return REDIS_TRANSIENT_REPLIES.find((code) => message === code || message.startsWith(`${code} `));
}

function redisMatch(error: Described): boolean {
  if (typeof error.name === 'string' && REDIS_ERROR_NAMES.has(error.name)) return true;
  const message = typeof error.message === 'string' ? error.message : '';
  return REDIS_CLIENT_MESSAGES.some((text) => message.includes(text)) || redisReplyCode(message) !== undefined;
}

/**
 * The SDK's wrapping of an error from another realm (jest's): a plain Error
 * whose message is all that is left, e.g. "AWS SDK error wrapper for
 * TimeoutError: socket hang up".
 */
const SDK_WRAPPED_UNAVAILABLE = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN)\b|socket hang up|error wrapper for (TimeoutError|AbortError)/;

function databaseMatch(error: Described): boolean {
  if (typeof error.name === 'string' && DATABASE_ERROR_NAMES.has(error.name)) return true;
  const status = error.$metadata?.httpStatusCode;
  return typeof status === 'number' && status >= 500;
}

const networkMatch = (error: Described) => typeof error.code === 'string' && NETWORK_CODES.has(error.code);
/** Only where the error is known to come from the Data API client: the message alone names no dependency. */
const sdkWrappedMatch = (error: Described) => typeof error.message === 'string' && SDK_WRAPPED_UNAVAILABLE.test(error.message);

/**
 * Follows `cause` a few links, by loop rather than recursion: a chain is
 * short in practice, but nothing here may be made to overflow the stack.
 */
function anyInChain(error: unknown, test: (error: Described) => boolean): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    if (test(current as Described)) return true;
    const next = (current as Described).cause;
    if (next === current) return false;
    current = next;
  }
  return false;
}

/** Does this error mean "Redis cannot be reached right now"? */
export function isRedisUnavailable(error: unknown): boolean {
  return anyInChain(error, (e) => redisMatch(e) || networkMatch(e));
}

/** Does this error mean "the database cannot be reached right now"? (lib/platform/db may use this list.) */
export function isDatabaseUnavailable(error: unknown): boolean {
  return anyInChain(error, (e) => databaseMatch(e) || networkMatch(e) || sdkWrappedMatch(e));
}

/**
 * Which dependency an error says is away, or undefined for any other error.
 * A bare socket error names no dependency by itself; Redis is the one whose
 * client lets such errors through (the Data API client wraps its own).
 */
export function unavailableDependency(error: unknown): Dependency | undefined {
  if (anyInChain(error, databaseMatch)) return 'database';
  if (anyInChain(error, redisMatch)) return 'redis';
  if (anyInChain(error, networkMatch)) return 'redis';
  return undefined;
}
