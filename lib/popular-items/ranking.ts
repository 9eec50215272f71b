import type { CallOptions, Queryable } from '../platform/db';
import { logger } from '../platform/logger';
import { storeDays } from './rollup';

/**
 * The ranking itself, over the daily rollup (./rollup): usually one pruned
 * statement that reads only the top of each day; when it cannot prove its
 * answer, a second one that sums the rollup in full and counts the window's
 * days that are not rolled up (not over yet by the database's clock, or
 * forgotten after a late write) from the orders. A ranking that had to count
 * a finished day from the orders then stores it, so the next one reads the
 * rollup.
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
 * sold on every day (100k items x 30 days = 3M rows at scale). Instead the
 * pruned ranking (a threshold algorithm) reads each day's top `depth` items
 * through daily_item_sales_rank_idx, sums their exact window totals through
 * the primary key, and proves the answer: an item outside every day's top
 * `depth` sold at most that day's depth-th quantity each day, so at most
 * `bound` in all; when the limit-th candidate sold more than `bound`
 * (strictly: ties go to the lower id, which an unseen item might have), no
 * unseen item can rank. It says whether that proof holds (`exact`), and how
 * many days of the window are not rolled up (then it cannot hold).
 *
 * Items are joined before the LIMIT so a line naming a deleted item cannot
 * take a place. Sums are cast back to bigint: the Data API would return
 * numeric as a string. Series of integers, not dates: the planner then knows
 * how many days there are (a date series is guessed at 1000 rows, and the
 * inflated cost turns on JIT, which costs more than the whole statement).
 */
const PRUNED_RANKING_SQL = `
  WITH window_days AS (
    SELECT :from::date + i AS business_date FROM generate_series(0, :today::date - :from::date - 1) AS i
  ), rolled AS MATERIALIZED (
    SELECT business_date FROM popular_rollup_days
    WHERE time_zone = :timeZone AND business_date >= :from::date AND business_date < :today::date
  ), daily_top AS MATERIALIZED (
    SELECT r.business_date, top.item_id, top.quantity
    FROM rolled r
    CROSS JOIN LATERAL (
      SELECT s.item_id, s.quantity FROM daily_item_sales s
      WHERE s.time_zone = :timeZone AND s.business_date = r.business_date
      ORDER BY s.quantity DESC, s.item_id
      LIMIT :depth
    ) AS top
  ), candidates AS MATERIALIZED (
    -- One index-only range scan of the primary key (time_zone, item_id,
    -- business_date) per candidate. Rows of days not rolled up (stale) may be
    -- summed here: the answer is then not 'exact', and the full ranking runs.
    SELECT c.item_id, window_sum.quantity
    FROM (SELECT DISTINCT item_id FROM daily_top) AS c
    CROSS JOIN LATERAL (
      SELECT sum(s.quantity)::bigint AS quantity FROM daily_item_sales s
      WHERE s.time_zone = :timeZone AND s.item_id = c.item_id AND s.business_date >= :from::date AND s.business_date < :today::date
    ) AS window_sum
  ), ranked AS MATERIALIZED (
    SELECT c.item_id, items.name, items.price, c.quantity
    FROM candidates c JOIN items ON items.id = c.item_id
    ORDER BY c.quantity DESC, c.item_id
    LIMIT :limit
  ), meta AS (
    SELECT
      (SELECT count(*) FROM window_days w WHERE NOT EXISTS (SELECT 1 FROM rolled r WHERE r.business_date = w.business_date))::int AS unrolled,
      (SELECT coalesce(sum(last_quantity), 0)
       FROM (SELECT min(quantity) AS last_quantity FROM daily_top GROUP BY business_date HAVING count(*) = :depth) AS full_days) AS bound
  )
  SELECT meta.unrolled AS "unrolledDays",
         meta.unrolled = 0 AND (meta.bound = 0 OR ((SELECT count(*) FROM ranked) = :limit AND (SELECT min(quantity) FROM ranked) > meta.bound)) AS exact,
         ranked.item_id AS "itemId", ranked.name, ranked.price, ranked.quantity AS "soldQuantity"
  FROM meta LEFT JOIN ranked ON true
  ORDER BY ranked.quantity DESC, ranked.item_id`;

/**
 * Every item of the window: the rollup's days in full, and the orders of the
 * days it lacks (not over yet by the database's clock, or forgotten after a
 * late write). The fallback when the pruned ranking cannot prove its answer.
 */
const FULL_RANKING_SQL = `
  WITH rolled AS MATERIALIZED (
    SELECT business_date FROM popular_rollup_days
    WHERE time_zone = :timeZone AND business_date >= :from::date AND business_date < :today::date
  ), raw_days AS MATERIALIZED (
    SELECT d.business_date,
           d.business_date::timestamp AT TIME ZONE :timeZone AS starts_at,
           (d.business_date + 1)::timestamp AT TIME ZONE :timeZone AS ends_at
    FROM (SELECT :from::date + i AS business_date FROM generate_series(0, :today::date - :from::date - 1) AS i) AS d
    WHERE NOT EXISTS (SELECT 1 FROM rolled r WHERE r.business_date = d.business_date)
  ), sold AS (
    SELECT item_id, sum(quantity)::bigint AS quantity FROM (
      SELECT s.item_id, s.quantity
      FROM rolled r JOIN daily_item_sales s ON s.time_zone = :timeZone AND s.business_date = r.business_date
      UNION ALL
      SELECT order_items.item_id, order_items.quantity
      FROM raw_days d
      JOIN orders ON orders.status = 'PAID' AND orders.created_at >= d.starts_at AND orders.created_at < d.ends_at
      JOIN order_items ON order_items.order_id = orders.id
    ) AS lines
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

/**
 * The best sellers of [from, today): the pruned ranking, or when it cannot
 * prove its answer the full one (two statements then); then stores the
 * finished days the rollup lacked. Storing is an optimisation for the next
 * ranking, so its failure (a call timeout on a day of many orders: the
 * midnight job has more time) costs this answer nothing.
 */
export async function rankFromRollup(database: Queryable, window: RankingWindow, callOptions?: CallOptions): Promise<RankedRow[]> {
  const { from, today, timeZone, limit } = window;
  const params = { from, today, timeZone, limit };
  const pruned = await database.query<Partial<RankedRow> & { unrolledDays: number; exact: boolean }>(
    PRUNED_RANKING_SQL,
    { ...params, depth: DEPTH_FACTOR * limit },
    callOptions,
  );
  const meta = pruned.rows[0]!;
  let rows: RankedRow[];
  let unrolledDays = meta.unrolledDays;
  if (meta.exact) {
    rows = pruned.rows.filter((row): row is typeof row & RankedRow => row.itemId != null);
  } else {
    const full = await database.query<RankedRow & { unrolledDays: number }>(FULL_RANKING_SQL, params, callOptions);
    rows = full.rows;
    // Days still running are not storable: count only finished ones (the full ranking knows).
    unrolledDays = full.rows[0]?.unrolledDays ?? unrolledDays;
  }
  if (unrolledDays > 0) {
    await storeDays(database, { timeZone, from, to: today, onlyMissing: true }, callOptions).catch((error: unknown) => {
      logger.warn('popular items: storing finished days in the rollup failed; the next ranking tries again', {
        from,
        today,
        error: error instanceof Error ? error.message : String(error),
      });
    });
  }
  return rows.map(({ itemId, name, price, soldQuantity }) => ({ itemId, name, price, soldQuantity }));
}

/** The plain query's answer (reference and benchmark peer). */
export async function rankFromOrders(database: Queryable, window: RankingWindow, callOptions?: CallOptions): Promise<RankedRow[]> {
  const { rows } = await database.query<RankedRow>(PLAIN_RANKING_SQL, { ...window }, callOptions);
  return rows;
}
