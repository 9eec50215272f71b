import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import evictSource from './cache/cache-evict.lua';
import fillSource from './cache/cache-fill.lua';
import getOrLockSource from './cache/cache-get-or-lock.lua';
import readSource from './cache/cache-read.lua';
import releaseSource from './cache/cache-unlock.lua';
import { config, type Config } from './config';
import { dropGroupInEveryTier, type InstanceTier } from './cache/instance-tier';
import { currentDeadline, type Deadline } from './deadline';
import { logger } from './logger';
import { metric } from './metrics';
import { redis, redisIfReady, type RedisClient } from './redis/client';
import { luaScript, runScript } from './redis/scripts';
import { isRedisUnavailable } from './dependency-errors';

/**
 * Cache-aside in Redis for values that are expensive to compute and the same
 * for everyone, with stampede protection across Lambda instances: on a miss
 * one caller fills the value under a short lock while the others poll for it,
 * and load it themselves only past a small wait budget.
 *
 * A value is a hash of encoded strings filled all at once, of which a caller
 * reads one field: a hit is one plain HGET, no script and no decoding here,
 * so a feature can store each answer it may give already encoded (popular
 * items keep one body per limit) and send it as it is.
 *
 * Values are grouped (one group per feature); a group's keys share one hash
 * tag, so a script can touch all of them on a cluster, and a registry set
 * lists them (and the fill locks in flight) so the whole group can be evicted
 * without scanning the keyspace.
 *
 * A group may also keep values in each instance's memory (InstanceTier in
 * ./cache/instance-tier.ts, an option): a warm hit then costs no network at
 * all. Lambda freezes idle instances, so a message telling them of an eviction (pub/sub) could not be
 * taken when sent and would be lost; instead every eviction sets the group's
 * generation in Redis, and an instance answers from memory only within δ
 * (CACHE_INSTANCE_FRESH_MS) of its last check of that generation, by the
 * wall clock (a monotonic clock may stand still while Lambda freezes the
 * instance). Past δ one GET revalidates the entry; a changed generation
 * refills it through the Redis path. So an eviction is seen everywhere
 * within δ of it, and Redis gets at most one GET per instance and entry per
 * δ. An entry that cannot be revalidated (Redis away) is not answered: the
 * caller loads from the source, as without the tier
 * (docs/decisions/013-instance-tier-generations.md).
 *
 * Redis failing never fails the caller: the value is loaded from its source
 * instead (logged as degraded), and within the request's deadline: Redis gets
 * at most half the time left, so the source keeps the rest. After Redis
 * failed to answer, this instance skips it for REDIS_BACKOFF_MS, so while it
 * is away (paused, black-holed) requests pay the source's time, not a
 * command timeout each. Errors of the source itself propagate.
 *
 * Longer than most modules: the read path, the fill and the eviction share
 * the deadline bound and the Redis backoff at the bottom, and read as one.
 */

const getOrLockScript = luaScript('cacheGetOrLock', 3, getOrLockSource, { deadline: true });
const fillScript = luaScript('cacheFillHash', 3, fillSource, { deadline: true });
/** lib/platform/lock's holder-only release: the fill lock's value is its holder's random token too. */
const releaseScript = luaScript('lockRelease', 1, releaseSource);
const evictScript = luaScript('cacheEvict', 2, evictSource);
const readScript = luaScript('cacheRead', 2, readSource);

/** Client states after a lost connection (ioredis, standalone and cluster alike). */
const DISCONNECTED = new Set(['reconnecting', 'close', 'end']);

/**
 * How long an instance leaves Redis alone after it failed to answer: short,
 * so a Redis that is back serves again within about a second.
 */
export const REDIS_BACKOFF_MS = 1000;
const skipUntil = new WeakMap<RedisClient, number>();

export type CacheSettings = Omit<Config['cache'], 'instance'>;

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
  /** Keep hits in this instance's memory too (see InstanceTier). */
  instance?: InstanceTier;
}

/** The Redis keys of a group (without the client's key prefix). */
export function cacheKeys(group: string) {
  const base = `cache:{${group}}`;
  return {
    registry: `${base}:registry`,
    generation: `${base}:generation`,
    value: (variant: string) => `${base}:value:${variant}`,
    lock: (variant: string) => `${base}:lock:${variant}`,
  };
}

/**
 * False while this instance leaves Redis alone: the client lost its
 * connection, or a command failed to answer within the last
 * REDIS_BACKOFF_MS (see redisFailed). For callers with their own fallback.
 */
export function redisUsable(client: RedisClient): boolean {
  return !DISCONNECTED.has(client.status) && (skipUntil.get(client) ?? 0) <= performance.now();
}

/** Records that Redis failed a caller with a fallback, so the next ones skip it for a moment (logged). */
export function redisFailed(client: RedisClient, error: unknown, where: Record<string, string>, message?: string): void {
  failed(client, error, where, message);
}

class RedisTooSlowError extends Error {
  override name = 'RedisTooSlowError';
}

/**
 * Field `field` of the cached hash of `entry`, or of `load()`'s (at least
 * one field), stored for the next caller; undefined when the value has no
 * such field. Round trips to Redis: one on a hit (HGET); three on a miss
 * (read, lock, store and unlock); a waiter adds one per poll. With an
 * instance tier: none for an entry inside δ; one GET past δ (and one HGET
 * more when the group was evicted); one script (generation and field)
 * instead of the HGET for a value not held.
 */
export async function cachedField(
  entry: CacheEntry,
  field: string,
  load: () => Promise<Record<string, string>>,
  options: CacheOptions = {},
): Promise<string | undefined> {
  // First, before anything else is computed: a hit from memory is the path that must cost nothing.
  const tier = options.instance;
  const memoryKey = tier ? `${entry.group}\u0000${entry.variant}\u0000${field}` : '';
  const held = tier?.lookup(memoryKey);
  if (held?.fresh) {
    metric('CacheInstanceHit');
    return held.entry.value;
  }

  const client = options.redis ?? redisIfReady();
  const deadline = currentDeadline();
  const valueKey = cacheKeys(entry.group).value(entry.variant);
  const where = { group: entry.group, variant: entry.variant }; // for the logs

  if (!client || !redisUsable(client)) {
    // Redis was lost (the client is reconnecting in the background), just
    // failed to answer, or has no client yet (its AUTH token unread): each
    // command would wait out its timeout only to fail.
    logger.debug('cache skipped, loading from the source', { ...where, status: client?.status ?? 'no client' });
    return (await load())[field];
  }
  if (!tier) {
    try {
      const hit = await bounded(client.hget(valueKey, field), deadline);
      if (hit !== null) {
        metric('CacheHit');
        return hit;
      }
    } catch (error) {
      failed(client, error, where);
      return (await load())[field];
    }
    metric('CacheMiss');
    return (await fill(client, deadline, entry, field, load, options.settings ?? config().cache)).value;
  }

  // The instance tier: the generation is sent for before anything is read,
  // and that moment counts as the check, so an entry is never answered more
  // than δ after a moment at which its generation was current.
  const checkedAt = tier.now();
  const generationKey = cacheKeys(entry.group).generation;
  let generation: string | null;
  let hit: string | null;
  try {
    if (held) {
      generation = await bounded(client.get(generationKey), deadline);
      if (generation === held.entry.generation) {
        held.entry.checkedAt = checkedAt;
        metric('CacheInstanceRevalidated');
        return held.entry.value;
      }
      tier.drop(memoryKey);
      // One more round trip, only after an eviction: the generation above is older than this read.
      hit = await bounded(client.hget(valueKey, field), deadline);
    } else {
      [generation, hit] = await bounded(runScript<[string | null, string | null]>(readScript, [generationKey, valueKey], [field], client), deadline);
    }
  } catch (error) {
    // Not even a memory entry past δ: it may have been evicted where this instance cannot see.
    if (held) tier.drop(memoryKey);
    failed(client, error, where);
    return (await load())[field];
  }
  if (hit !== null) {
    metric('CacheHit');
    tier.store(memoryKey, { group: entry.group, value: hit, generation, checkedAt });
    return hit;
  }
  metric('CacheMiss');
  const filled = await fill(client, deadline, entry, field, load, options.settings ?? config().cache);
  // Only a value Redis holds (or held) under that generation: one loaded
  // because Redis failed, or whose store an eviction refused, is not kept.
  if (filled.fromCache && filled.value !== undefined) {
    tier.store(memoryKey, { group: entry.group, value: filled.value, generation, checkedAt });
  }
  return filled.value;
}

async function fill(
  client: RedisClient,
  deadline: Deadline,
  entry: CacheEntry,
  field: string,
  load: () => Promise<Record<string, string>>,
  settings: CacheSettings,
): Promise<{ value: string | undefined; fromCache: boolean }> {
  const keys = cacheKeys(entry.group);
  const valueKey = keys.value(entry.variant);
  const lockKey = keys.lock(entry.variant);
  const token = randomUUID();
  const where = { group: entry.group, variant: entry.variant };
  // Waiting is bounded twice: by the budget, and by the request's deadline,
  // leaving the source half of what is left.
  const waitUntil = performance.now() + Math.min(settings.waitBudgetMs, deadline.remainingMs() / 2);
  const fromSource = async () => ({ value: (await load())[field], fromCache: false });

  for (;;) {
    let reply: number;
    try {
      reply = await bounded(runScript<number>(getOrLockScript, [valueKey, lockKey, keys.registry], [token, settings.lockTtlMs], client), deadline);
      if (reply === 2) {
        // Filled meanwhile; a missing field stays missing (the value is filled whole).
        const filled = await bounded(client.hget(valueKey, field), deadline);
        if (filled !== null) return { value: filled, fromCache: true };
        if (await bounded(client.exists(valueKey), deadline)) return { value: undefined, fromCache: true };
        // Evicted between the reads: elect a filler again.
      }
    } catch (error) {
      failed(client, error, where);
      return fromSource();
    }
    if (reply === 1) break;
    if (performance.now() + settings.pollIntervalMs > waitUntil) {
      // The filler is slow or gone: answering late would be worse than one more query.
      logger.warn('cache fill exceeded the wait budget, loading from the source', where);
      return fromSource();
    }
    if (reply === 0) await sleep(settings.pollIntervalMs);
  }

  let value: Record<string, string>;
  try {
    value = await load();
    if (Object.keys(value).length === 0) throw new Error(`cache ${entry.group}: load() returned no fields, which would read as a miss`);
  } catch (error) {
    // One extra round trip, on failure only: the next waiter takes over now
    // instead of waiting out the lock's lifetime.
    await runScript(releaseScript, [lockKey], [token], client).catch(() => undefined);
    throw error;
  }
  const ttlMs = entry.ttlMs() + Math.floor(Math.random() * settings.ttlJitterMs);
  let stored = 0;
  try {
    stored = await bounded(
      runScript<number>(fillScript, [valueKey, keys.registry, lockKey], [ttlMs, token, ...Object.entries(value).flat()], client),
      deadline,
    );
    if (stored === 0) logger.info('cache fill dropped: the lock expired or the group was evicted meanwhile', where);
  } catch (error) {
    failed(client, error, where, 'cache write failed, answering uncached');
  }
  return { value: value[field], fromCache: stored === 1 };
}

/**
 * Drops every cached value of `group` at once, in Redis and in this
 * process's instance tiers, and sets the group's new generation (other
 * instances drop theirs within δ); returns how many Redis keys there were.
 * Idempotent.
 */
export async function evictGroup(group: string, client: RedisClient = redis()): Promise<number> {
  const keys = cacheKeys(group);
  const deleted = await runScript<number>(evictScript, [keys.registry, keys.generation], [randomUUID()], client);
  dropGroupInEveryTier(group);
  return deleted;
}

/**
 * `command`, or a RedisTooSlowError once half the request's time left has
 * passed. ioredis' own command timeout ends most waits; a timer is only set
 * when the deadline comes sooner, so a hit on a healthy request costs none.
 */
function bounded<T>(command: Promise<T>, deadline: Deadline): Promise<T> {
  const budgetMs = deadline.remainingMs() / 2;
  if (budgetMs >= config().redis.commandTimeoutMs) return command;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RedisTooSlowError(`no answer within ${Math.round(budgetMs)} ms`)), budgetMs);
    command.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function failed(client: RedisClient, error: unknown, where: Record<string, string>, message = 'cache unavailable, loading from the source'): void {
  // EXPIRED, or too slow for a request with little time left, is this
  // request running out of time, not Redis being away.
  const expired = error instanceof Error && error.message.startsWith('EXPIRED');
  if (!expired && !(error instanceof RedisTooSlowError) && isRedisUnavailable(error)) {
    skipUntil.set(client, performance.now() + REDIS_BACKOFF_MS);
  }
  logger.warn(message, { ...where, error: error instanceof Error ? error.message : String(error) });
}
