import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import evictSource from '../../lua/cache-evict.lua';
import fillSource from '../../lua/cache-fill.lua';
import getOrLockSource from '../../lua/cache-get-or-lock.lua';
import releaseSource from '../../lua/lock-release.lua';
import { config, type Config } from './config';
import { logger } from './logger';
import { luaScript, redis, runScript, type RedisClient } from './redis';

/**
 * Cache-aside in Redis for values that are expensive to compute and the same
 * for everyone, with stampede protection across Lambda instances: on a miss
 * one caller fills the value under a short lock while the others poll for it,
 * and load it themselves only past a small wait budget.
 *
 * Values are grouped (one group per feature); a group's keys share one hash
 * tag, so a script can touch all of them on a cluster, and a registry set
 * lists them so the whole group can be evicted without scanning the keyspace.
 *
 * Redis failing never fails the caller: the value is loaded from its source
 * instead (logged as degraded). Errors of the source itself propagate.
 */

const getOrLockScript = luaScript('cacheGetOrLock', 2, getOrLockSource);
const fillScript = luaScript('cacheFill', 3, fillSource);
/** lib/platform/lock's holder-only release: the fill lock's value is its holder's random token too. */
const releaseScript = luaScript('lockRelease', 1, releaseSource);
const evictScript = luaScript('cacheEvict', 1, evictSource);

/** Client states after a lost connection (ioredis, standalone and cluster alike). */
const DISCONNECTED = new Set(['reconnecting', 'close', 'end']);

export type CacheSettings = Config['cache'];

export interface CacheEntry {
  /** The feature the value belongs to; evicted together. */
  group: string;
  /** Tells this value apart from the group's others (its inputs). */
  variant: string;
  /**
   * Lifetime before jitter, the safety net should an eviction be missed.
   * Asked only when a value is stored, so a hit never pays for it.
   */
  ttlMs: () => number;
}

export interface CacheOptions {
  redis?: RedisClient;
  settings?: CacheSettings;
}

/** The Redis keys of a group (without the client's key prefix). */
export function cacheKeys(group: string) {
  const base = `cache:{${group}}`;
  return {
    registry: `${base}:registry`,
    value: (variant: string) => `${base}:value:${variant}`,
    lock: (variant: string) => `${base}:lock:${variant}`,
  };
}

/**
 * The cached value of `entry`, or `load()`'s (JSON-serializable) result, stored
 * for the next caller. Round trips to Redis: one on a hit; two on a miss (read
 * and lock, then store and unlock); a waiter adds one per poll.
 */
export async function cached<T>(entry: CacheEntry, load: () => Promise<T>, options: CacheOptions = {}): Promise<T> {
  const client = options.redis ?? redis();
  const settings = options.settings ?? config().cache;
  const keys = cacheKeys(entry.group);
  const valueKey = keys.value(entry.variant);
  const lockKey = keys.lock(entry.variant);
  const token = randomUUID();
  const where = { group: entry.group, variant: entry.variant }; // for the logs
  const deadline = Date.now() + settings.waitBudgetMs;

  if (DISCONNECTED.has(client.status)) {
    // Redis was lost and the client is retrying in the background: each
    // command would wait out its timeout only to fail, so skip the cache.
    logger.warn('cache unavailable, loading from the source', { ...where, status: client.status });
    return load();
  }
  for (;;) {
    let reply: string | number;
    try {
      reply = await runScript<string | number>(getOrLockScript, [valueKey, lockKey], [token, settings.lockTtlMs], client);
    } catch (error) {
      logger.warn('cache unavailable, loading from the source', { ...where, error: errorMessage(error) });
      return load();
    }
    if (typeof reply === 'string') return JSON.parse(reply) as T;
    if (reply === 1) break;
    if (Date.now() + settings.pollIntervalMs > deadline) {
      // The filler is slow or gone: answering late would be worse than one more query.
      logger.warn('cache fill exceeded the wait budget, loading from the source', where);
      return load();
    }
    await sleep(settings.pollIntervalMs);
  }

  let value: T;
  try {
    value = await load();
  } catch (error) {
    // One extra round trip, on failure only: the next waiter takes over now
    // instead of waiting out the lock's lifetime.
    await runScript(releaseScript, [lockKey], [token], client).catch(() => undefined);
    throw error;
  }
  const ttlMs = entry.ttlMs() + Math.floor(Math.random() * settings.ttlJitterMs);
  try {
    await runScript(fillScript, [valueKey, keys.registry, lockKey], [JSON.stringify(value), ttlMs, token], client);
  } catch (error) {
    logger.warn('cache write failed, answering uncached', { ...where, error: errorMessage(error) });
  }
  return value;
}

/** Drops every cached value of `group` at once; returns how many there were. Idempotent. */
export async function evictGroup(group: string, client: RedisClient = redis()): Promise<number> {
  return runScript<number>(evictScript, [cacheKeys(group).registry], [], client);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
