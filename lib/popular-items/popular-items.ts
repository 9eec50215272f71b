import * as z from 'zod/mini';
import { addDays, businessDate, msUntilNextMidnight } from '../platform/business-time';
import { cachedField, evictGroup, type CacheSettings } from '../platform/cache';
import { sharedInstanceTier, type InstanceTier } from '../platform/cache/instance-tier';
import { config } from '../platform/config';
import type { Queryable } from '../platform/db';
import { queryCount } from '../platform/http';
import type { RedisClient } from '../platform/redis/client';
import { rankFromRollup } from './ranking';
import { recomputeDays } from './rollup';

/**
 * The best-selling items by quantity in PAID orders over the `days` whole
 * calendar days before today in the business time zone. Today's sales do not
 * count, so one answer holds for the whole business day: it is cached until
 * the next business midnight, when evict-popular-items drops it.
 *
 * One cached value per (business date, days), computed by one ranking of
 * the top MAX_LIMIT: a Redis hash holding, for every limit 1 .. MAX_LIMIT,
 * the response body already encoded. A hit is one HGET whose reply is the
 * body as it is sent: nothing is parsed, joined or encoded on the way, and
 * every limit shares one ranking and one fill. (A list of encoded items
 * read with LRANGE was measured too: ioredis' parsing of a 51-element reply
 * alone cost x1.25 of a GET of the same body.) A warm instance answers
 * from its own memory (lib/platform/cache's instance tier) without even
 * that HGET, and sees an eviction within δ.
 */

export const MAX_DAYS = 30;
export const MAX_LIMIT = 50;
export const DEFAULT_QUERY: Readonly<PopularItemsQuery> = { days: 3, limit: 5 };

/** The query of GET /items/popular; lib/openapi documents it from this very schema. */
export const popularItemsQuery = z.object({
  days: queryCount(MAX_DAYS, DEFAULT_QUERY.days),
  limit: queryCount(MAX_LIMIT, DEFAULT_QUERY.limit),
});

export interface PopularItemsQuery {
  days: number;
  limit: number;
}

export interface PopularItem {
  rank: number;
  itemId: number;
  name: string;
  price: number;
  soldQuantity: number;
}

export interface PopularItems extends PopularItemsQuery {
  /** First and last business dates counted, both inclusive ('YYYY-MM-DD'). */
  from: string;
  to: string;
  items: PopularItem[];
}

export interface PopularItemsDeps {
  database?: Queryable;
  redis?: RedisClient;
  cacheSettings?: CacheSettings;
  /** This instance's memory in front of Redis; null: Redis only. */
  instance?: InstanceTier | null;
  now?: () => Date;
  timeZone?: string;
}

const CACHE_GROUP = 'popular-items';
/**
 * Each statement of the midnight job's recompute (one day of orders) may
 * take this long, within the job's deadline: more than a request's call.
 * No more than the database's statement_timeout (30 s, migration 005), which
 * cancels any statement past it whatever the client waits for, and which
 * stays under the Data API's own 45 s per call. A day of 10 million orders
 * over 30 days takes about 4 s (bench/popular-items-scale.ts).
 */
export const ROLLUP_STATEMENT_TIMEOUT_MS = 30_000;
/** In every key, so a deploy that changes the encoding never reads the old one. */
const FORMAT = 'v3';

/** The cache variant of a business date and window; the key carries the date, so midnight needs no message. */
export const cacheVariant = (today: string, days: number): string => `${FORMAT}:${today}:${days}`;

/**
 * The Data API client is loaded on first use only: a warm cache answers
 * without it, so a cold start that hits the cache never pays for the SDK.
 */
async function defaultDatabase(): Promise<Queryable> {
  const { db } = await import('../platform/db');
  return db();
}

/**
 * Today's business date, computed once per instance per business day: the
 * zone's calendar (Intl) is asked again only past the next midnight, or when
 * the clock reads earlier than when it was last asked.
 */
let knownDay: { timeZone: string; date: string; fromMs: number; untilMs: number } | undefined;

function businessToday(now: Date, timeZone: string): string {
  const at = now.getTime();
  if (knownDay && knownDay.timeZone === timeZone && at >= knownDay.fromMs && at < knownDay.untilMs) return knownDay.date;
  const date = businessDate(now, timeZone);
  knownDay = { timeZone, date, fromMs: at, untilMs: at + msUntilNextMidnight(now, timeZone) };
  return date;
}

/** The ranking straight from the database (the rollup, and the orders of days it lacks), for the business day `today`. */
export async function rankPopularItems(
  database: Queryable,
  { days, limit }: PopularItemsQuery,
  today: string,
  timeZone: string,
): Promise<PopularItems> {
  const from = addDays(today, -days);
  const rows = await rankFromRollup(database, { from, today, timeZone, limit });
  const items = rows.map((row, index) => ({ rank: index + 1, ...row }));
  return { days, limit, from, to: addDays(today, -1), items };
}

/** The cached hash: every limit's response body, from one ranking of the top MAX_LIMIT. */
async function encodedBodies(database: Queryable, days: number, today: string, timeZone: string): Promise<Record<string, string>> {
  const { from, to, items } = await rankPopularItems(database, { days, limit: MAX_LIMIT }, today, timeZone);
  const head = `"from":${JSON.stringify(from)},"to":${JSON.stringify(to)},"items":[`;
  const bodies: Record<string, string> = {};
  let encodedItems = '';
  for (let limit = 1; limit <= MAX_LIMIT; limit++) {
    const item = items[limit - 1];
    if (item) {
      const { rank, itemId, name, price, soldQuantity } = item;
      encodedItems += `${limit > 1 ? ',' : ''}${JSON.stringify({ rank, itemId, name, price, soldQuantity })}`;
    }
    bodies[limit] = `{"days":${days},"limit":${limit},${head}${encodedItems}]}`;
  }
  return bodies;
}

/**
 * The response body of GET /items/popular, as JSON text, served cache-aside:
 * `{ days, limit, from, to, items }`.
 */
export async function popularItemsJson(query: PopularItemsQuery, deps: PopularItemsDeps = {}): Promise<string> {
  const now = deps.now ? deps.now() : new Date();
  const timeZone = deps.timeZone ?? config().businessTimeZone;
  const today = businessToday(now, timeZone);
  const body = await cachedField(
    {
      group: CACHE_GROUP,
      variant: cacheVariant(today, query.days),
      ttlMs: () => msUntilNextMidnight(now, timeZone),
    },
    String(query.limit),
    async () => encodedBodies(deps.database ?? (await defaultDatabase()), query.days, today, timeZone),
    { redis: deps.redis, settings: deps.cacheSettings, instance: deps.instance === undefined ? sharedInstanceTier() : (deps.instance ?? undefined) },
  );
  if (body === undefined) throw new Error(`popular items: no body cached for limit ${query.limit}`);
  return body;
}

/** The same answer as an object (the midnight job's summary, tests). */
export async function popularItems(query: PopularItemsQuery, deps: PopularItemsDeps = {}): Promise<PopularItems> {
  return JSON.parse(await popularItemsJson(query, deps)) as PopularItems;
}

export interface PopularItemsRefresh {
  /** Rollup days recomputed (the longest window, ending with the day that just ended). */
  rolledUp: number;
  /** Cached keys dropped (a second run drops just the one the first warmed). */
  evicted: number;
  /** The default variant, cached again for the new business day. */
  warmed: PopularItemsQuery & { from: string; to: string; items: number };
}

/**
 * The midnight job: recompute the rollup for every day of the longest window
 * (storing the day that just ended, correcting any other), then drop every
 * cached variant (of every date), then fill the default one so the first
 * caller of the new day does not pay the miss. In that order, so no cache
 * fill can store an answer read from the rollup before it was corrected
 * (a fill in flight loses its lock to the eviction). Safe to run twice: the
 * second run recomputes the same days and re-warms.
 */
export async function refreshPopularItems(deps: PopularItemsDeps = {}): Promise<PopularItemsRefresh> {
  const now = deps.now ? deps.now() : new Date();
  const timeZone = deps.timeZone ?? config().businessTimeZone;
  const database = deps.database ?? (await defaultDatabase());
  const today = businessDate(now, timeZone);
  const rolledUp = await recomputeDays(database, {
    timeZone,
    from: addDays(today, -MAX_DAYS),
    to: today,
    keepFrom: addDays(today, -MAX_DAYS - 7),
  }, { timeoutMs: ROLLUP_STATEMENT_TIMEOUT_MS });
  const evicted = await evictGroup(CACHE_GROUP, deps.redis);
  const { days, limit, from, to, items } = await popularItems(DEFAULT_QUERY, { ...deps, database, now: () => now });
  return { rolledUp, evicted, warmed: { days, limit, from, to, items: items.length } };
}
