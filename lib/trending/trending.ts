import * as z from 'zod/mini';
import { redisFailed, redisUsable } from '../platform/cache';
import { sharedInstanceTier, type InstanceTier } from '../platform/cache/instance-tier';
import { config } from '../platform/config';
import type { Queryable } from '../platform/db';
import { DependencyUnavailableError } from '../platform/errors';
import { queryCount } from '../platform/http';
import { logger } from '../platform/logger';
import { redisIfReady, type RedisClient } from '../platform/redis/client';
import { isRedisUnavailable } from '../platform/dependency-errors';
import { readTop, type TopCounts } from './counts';
import { MAX_MINUTES, minuteOf } from './keys';
import { reconcile } from './reconcile';
import { itemDetails, rankFromTable, type TrendingRow } from './sql';

/**
 * GET /items/trending: the best-selling items by quantity in PAID orders of
 * the last `minutes` whole minutes and the current one (UTC minutes), ties
 * to the lower item id. An order counts from its commit (the pay path's one
 * script call) and for `minutes` to `minutes` + 1 minutes after.
 *
 * Served from the per-minute counts in Redis (./counts), each ranking kept
 * in the instance's memory for at most δ (CACHE_INSTANCE_FRESH_MS): a 201
 * is counted before it is sent, so it is in every instance's answer within
 * δ plus one read, under docs/api.md's 2 s. A counts' generation would change
 * with every order, so entries are not revalidated, only aged out.
 *
 * Exact: a read takes, at most once per CHECK_INTERVAL_MS across every
 * instance, the lease to compare the counts with the orders table and
 * repair what differs (./reconcile): a Redis that lost its data is rebuilt
 * before that read answers, and an order whose count failed after its commit
 * is counted within CHECK_INTERVAL_MS of the next read. While Redis is away
 * the ranking comes from the table (the same window, one query).
 * Why this design: docs/decisions/010-trending-minute-sets.md.
 */

export const MAX_LIMIT = 50;
export const DEFAULT_QUERY: Readonly<TrendingQuery> = { minutes: 10, limit: 10 };
/** How often the counts are compared with the orders table, at most. */
export const CHECK_INTERVAL_MS = 1000;

export interface TrendingQuery {
  minutes: number;
  limit: number;
}

/** The query of GET /items/trending (lib/openapi documents it from this schema). */
export const trendingQuery = z.object({
  minutes: queryCount(MAX_MINUTES, DEFAULT_QUERY.minutes),
  limit: queryCount(MAX_LIMIT, DEFAULT_QUERY.limit),
});

export interface TrendingItem extends TrendingRow {
  rank: number;
}

export interface TrendingItems extends TrendingQuery {
  /** The instant (ISO 8601, UTC) the ranking is as of. */
  asOf: string;
  items: TrendingItem[];
}

export interface TrendingDeps {
  database?: Queryable;
  redis?: RedisClient;
  /** This instance's memory; null: every read goes to Redis. */
  instance?: InstanceTier | null;
  /** The wall clock (epoch ms): tests move it across minutes. */
  now?: () => number;
  checkIntervalMs?: number;
}

/** Loaded on first use only: a ranking held in memory answers without the SDK. */
async function defaultDatabase(): Promise<Queryable> {
  const { db } = await import('../platform/db');
  return db();
}

/** The response body, as JSON text. */
export async function trendingItemsJson(query: TrendingQuery, deps: TrendingDeps = {}): Promise<string> {
  const now = (deps.now ?? Date.now)();
  const current = minuteOf(now);
  const tier = deps.instance === undefined ? sharedInstanceTier() : deps.instance;
  // One ranking of the top MAX_LIMIT per window and minute serves every limit.
  const load = () => topJson(query.minutes, current, now, deps);
  const top = tier ? await tier.remember(`trending\u0000${query.minutes}\u0000${current}`, config().cache.instance.freshMs, load) : await load();
  const { asOf, items } = JSON.parse(top) as { asOf: string; items: TrendingItem[] };
  return JSON.stringify({ minutes: query.minutes, limit: query.limit, asOf, items: items.slice(0, query.limit) });
}

export async function trendingItems(query: TrendingQuery, deps: TrendingDeps = {}): Promise<TrendingItems> {
  return JSON.parse(await trendingItemsJson(query, deps)) as TrendingItems;
}

async function topJson(minutes: number, current: number, now: number, deps: TrendingDeps): Promise<string> {
  const client = deps.redis ?? redisIfReady();
  const database = deps.database ?? (await defaultDatabase());
  const counts = client && redisUsable(client) ? await fromRedis(minutes, current, database, client, deps.checkIntervalMs ?? CHECK_INTERVAL_MS) : undefined;
  let rows: TrendingRow[];
  if (counts) {
    const details = await itemDetails(database, counts.items.map((item) => item.itemId));
    rows = counts.items.flatMap((item) => {
      const found = details.get(item.itemId);
      return found ? [{ itemId: item.itemId, ...found, soldQuantity: item.soldQuantity }] : [];
    });
  } else {
    rows = await rankFromTable(database, current - minutes, current + 1, MAX_LIMIT);
  }
  const items = rows.map((row, index) => ({ rank: index + 1, ...row }));
  return JSON.stringify({ asOf: new Date(now).toISOString(), items });
}

/** The counts, checked against the table when this read holds the lease; undefined when Redis failed. */
async function fromRedis(minutes: number, current: number, database: Queryable, client: RedisClient, leaseMs: number): Promise<TopCounts | undefined> {
  const where = { feature: 'trending' };
  try {
    let counts = await readTop(current, minutes, MAX_LIMIT, leaseMs, client);
    if (counts.check) {
      let repaired = 0;
      try {
        repaired = await reconcile(database, current, client);
      } catch (error) {
        // The database failing the check leaves the counts as they were,
        // until the lease lets the next read check again.
        if (!(error instanceof DependencyUnavailableError && error.dependency === 'database')) throw error;
        logger.warn('trending check skipped: the database is unavailable', { error: error.message });
      }
      if (repaired > 0) counts = await readTop(current, minutes, MAX_LIMIT, 0, client);
    }
    return counts;
  } catch (error) {
    if (!isRedisUnavailable(error)) throw error;
    redisFailed(client, error, where, 'trending counts unavailable, ranking from the orders table');
    return undefined;
  }
}
