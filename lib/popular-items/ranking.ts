import type { Queryable } from '../platform/db';
import { storeDays } from './rollup';

/**
 * The ranking itself: one statement over the daily rollup (./rollup), with the
 * window's days that are not rolled up (not over yet by the database's clock,
 * or forgotten after a late write) counted from the orders in the same
 * statement. A ranking that had to count a finished day from the orders then
 * stores it, so the next one reads the rollup.
 */

export interface RankedRow {
  itemId: number;
  name: string;
  price: number;
  soldQuantity: number;
}

/**
 * How deep into each day's own ranking the pruned path reads: its candidates
 * are the items in any day's top DEPTH_FACTOR × limit.
 */
const DEPTH_FACTOR = 4;

/**
 * Reading a 30-day window of the rollup in full means summing every item
 * sold on every day (100k items × 30 days = 3M rows at scale). Instead the
 * pruned path (a threshold algorithm) reads each day's top `depth` items
 * through daily_item_sales_rank_idx, sums their exact window totals, and
 * proves the answer: an item outside every day's top `depth` sold at most
 * that day's depth-th quantity each day, so at most `bound` in all; when the
 * limit-th candidate sold more than `bound` (strictly: ties go to the lower
 * id, which an unseen item might have), no unseen item can rank. Otherwise,
 * or when some day is not rolled up, the full path sums everything; the
 * planner runs only the branch whose one-time filter holds.
 *
 * Items are joined before the LIMIT so a line naming a deleted item cannot
 * take a place. sums are cast back to bigint: the Data API would return
 * numeric as a string.
 */
const RANKING_SQL = `
  WITH window_days AS (
    SELECT d::date AS business_date FROM generate_series(:from::date, :today::date - 1, interval '1 day') AS d
  ), rolled AS MATERIALIZED (
    SELECT business_date FROM popular_rollup_days
    WHERE time_zone = :timeZone AND business_date >= :from::date AND business_date < :today::date
  ), raw_days AS MATERIALIZED (
    SELECT w.business_date,
           w.business_date::timestamp AT TIME ZONE :timeZone AS starts_at,
           (w.business_date + 1)::timestamp AT TIME ZONE :timeZone AS ends_at
    FROM window_days w
    WHERE NOT EXISTS (SELECT 1 FROM rolled r WHERE r.business_date = w.business_date)
  ), daily_top AS MATERIALIZED (
    SELECT r.business_date, top.item_id, top.quantity
    FROM rolled r
    CROSS JOIN LATERAL (
      SELECT s.item_id, s.quantity FROM daily_item_sales s
      WHERE s.time_zone = :timeZone AND s.business_date = r.business_date
      ORDER BY s.quantity DESC, s.item_id
      LIMIT :depth
    ) AS top
  ), bound AS MATERIALIZED (
    SELECT coalesce(sum(last_quantity), 0) AS quantity
    FROM (SELECT min(quantity) AS last_quantity FROM daily_top GROUP BY business_date HAVING count(*) = :depth) AS full_days
  ), candidates AS MATERIALIZED (
    SELECT s.item_id, sum(s.quantity)::bigint AS quantity
    FROM (SELECT DISTINCT item_id FROM daily_top) AS c
    JOIN rolled r ON true
    JOIN daily_item_sales s ON s.time_zone = :timeZone AND s.business_date = r.business_date AND s.item_id = c.item_id
    GROUP BY s.item_id
  ), ranked_candidates AS MATERIALIZED (
    SELECT c.item_id, c.quantity
    FROM candidates c JOIN items ON items.id = c.item_id
    ORDER BY c.quantity DESC, c.item_id
    LIMIT :limit
  ), pruned AS MATERIALIZED (
    SELECT NOT EXISTS (SELECT 1 FROM raw_days)
       AND ((SELECT quantity FROM bound) = 0
            OR ((SELECT count(*) FROM ranked_candidates) = :limit
                AND (SELECT min(quantity) FROM ranked_candidates) > (SELECT quantity FROM bound))) AS exact
  ), sold AS (
    SELECT item_id, quantity FROM ranked_candidates WHERE (SELECT exact FROM pruned)
    UNION ALL
    SELECT item_id, sum(quantity)::bigint FROM (
      SELECT s.item_id, s.quantity
      FROM rolled r JOIN daily_item_sales s ON s.time_zone = :timeZone AND s.business_date = r.business_date
      UNION ALL
      SELECT order_items.item_id, order_items.quantity
      FROM raw_days d
      JOIN orders ON orders.status = 'PAID' AND orders.created_at >= d.starts_at AND orders.created_at < d.ends_at
      JOIN order_items ON order_items.order_id = orders.id
    ) AS lines
    WHERE NOT (SELECT exact FROM pruned)
    GROUP BY item_id
  )
  SELECT sold.item_id AS "itemId", items.name, items.price, sold.quantity AS "soldQuantity",
         (SELECT count(*) FROM raw_days WHERE ends_at <= now())::int AS "unrolledDays"
  FROM sold JOIN items ON items.id = sold.item_id
  ORDER BY sold.quantity DESC, sold.item_id
  LIMIT :limit`;

/**
 * The plain ranking straight from the orders, as it was before the rollup:
 * kept as the reference the rollup is tested and benchmarked against.
 */
export const PLAIN_RANKING_SQL = `
  SELECT sold.item_id AS "itemId", items.name, items.price, sold.quantity AS "soldQuantity"
  FROM (
    SELECT order_items.item_id, sum(order_items.quantity)::bigint AS quantity
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

export interface RankingWindow {
  /** First business date counted. */
  from: string;
  /** The business day asking: the window ends before it. */
  today: string;
  timeZone: string;
  limit: number;
}

/** The best sellers of [from, today), from the rollup where it has the day; stores finished days it lacked. */
export async function rankFromRollup(database: Queryable, window: RankingWindow): Promise<RankedRow[]> {
  const { from, today, timeZone, limit } = window;
  const { rows } = await database.query<RankedRow & { unrolledDays: number }>(RANKING_SQL, {
    from,
    today,
    timeZone,
    limit,
    depth: DEPTH_FACTOR * limit,
  });
  // No rows: nothing sold, or nothing to tell whether a day was missing; storing is cheap then.
  if (rows.length === 0 || rows[0]!.unrolledDays > 0) {
    await storeDays(database, { timeZone, from, to: today, onlyMissing: true });
  }
  return rows.map(({ itemId, name, price, soldQuantity }) => ({ itemId, name, price, soldQuantity }));
}

/** The plain query's answer (reference and benchmark peer). */
export async function rankFromOrders(database: Queryable, window: RankingWindow): Promise<RankedRow[]> {
  const { rows } = await database.query<RankedRow>(PLAIN_RANKING_SQL, { ...window });
  return rows;
}
