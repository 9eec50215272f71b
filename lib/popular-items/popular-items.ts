import { addDays, businessDate, msUntilNextMidnight } from '../platform/business-time';
import { cached, evictGroup, type CacheSettings } from '../platform/cache';
import { config } from '../platform/config';
import { db, type Queryable } from '../platform/db';
import type { RedisClient } from '../platform/redis';

/**
 * The best-selling items by quantity in PAID orders over the `days` whole
 * calendar days before today in the business time zone. Today's sales do not
 * count, so one answer holds for the whole business day: it is cached until
 * the next business midnight, when evict-popular-items drops it.
 */

export const MAX_DAYS = 30;
export const MAX_LIMIT = 50;
export const DEFAULT_QUERY: Readonly<PopularItemsQuery> = { days: 3, limit: 5 };

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
  now?: () => Date;
  timeZone?: string;
}

const CACHE_GROUP = 'popular-items';

/**
 * One statement. PostgreSQL turns the business dates into instants (`AT TIME
 * ZONE` knows the zone's DST rules); the 'PAID' literal lets the planner use
 * the partial index orders_paid_created_at_idx, and order_items is reached
 * through its index on (order_id, item_id) (004). Items are joined after the
 * aggregate so only sold ones are looked up, and before the LIMIT so a line
 * naming a deleted item cannot take a place.
 */
const RANKING_SQL = `
  SELECT sold.item_id AS "itemId", items.name, items.price, sold.quantity AS "soldQuantity"
  FROM (
    SELECT order_items.item_id, sum(order_items.quantity) AS quantity
    FROM orders
    JOIN order_items ON order_items.order_id = orders.id
    WHERE orders.status = 'PAID'
      AND orders.created_at >= (:from::date::timestamp AT TIME ZONE :timeZone)
      AND orders.created_at < (:today::date::timestamp AT TIME ZONE :timeZone)
    GROUP BY order_items.item_id
  ) AS sold
  JOIN items ON items.id = sold.item_id
  ORDER BY sold.quantity DESC, sold.item_id
  LIMIT :limit`;

/** The ranking straight from the database, for the business day `today`. */
export async function rankPopularItems(
  database: Queryable,
  { days, limit }: PopularItemsQuery,
  today: string,
  timeZone: string,
): Promise<PopularItems> {
  const from = addDays(today, -days);
  const { rows } = await database.query<Omit<PopularItem, 'rank'>>(RANKING_SQL, { from, today, timeZone, limit });
  const items = rows.map((row, index) => ({
    rank: index + 1,
    itemId: row.itemId,
    name: row.name,
    price: row.price,
    soldQuantity: row.soldQuantity,
  }));
  return { days, limit, from, to: addDays(today, -1), items };
}

/** The ranking served cache-aside; the key carries the business date, days and limit. */
export async function popularItems(query: PopularItemsQuery, deps: PopularItemsDeps = {}): Promise<PopularItems> {
  const now = (deps.now ?? (() => new Date()))();
  const timeZone = deps.timeZone ?? config().businessTimeZone;
  const database = deps.database ?? db();
  const today = businessDate(now, timeZone);
  return cached(
    {
      group: CACHE_GROUP,
      variant: `${today}:${query.days}:${query.limit}`,
      ttlMs: () => msUntilNextMidnight(now, timeZone),
    },
    () => rankPopularItems(database, query, today, timeZone),
    { redis: deps.redis, settings: deps.cacheSettings },
  );
}

export interface PopularItemsRefresh {
  /** Cached values dropped (a second run drops just the one the first warmed). */
  evicted: number;
  /** The default variant, cached again for the new business day. */
  warmed: PopularItemsQuery & { from: string; to: string; items: number };
}

/**
 * The midnight job: drop every cached variant (of every date), then fill the
 * default one so the first caller of the new day does not pay the miss. Safe
 * to run twice: the second run drops the warmed value and warms it again.
 */
export async function refreshPopularItems(deps: PopularItemsDeps = {}): Promise<PopularItemsRefresh> {
  const evicted = await evictGroup(CACHE_GROUP, deps.redis);
  const { days, limit, from, to, items } = await popularItems(DEFAULT_QUERY, deps);
  return { evicted, warmed: { days, limit, from, to, items: items.length } };
}
