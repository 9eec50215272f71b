import { addDays } from '../platform/business-time';
import type { CallOptions, Queryable } from '../platform/db';
import { logger } from '../platform/logger';

/**
 * The daily sales rollup (db/migrations/007): per business day and item, the
 * quantity sold in PAID orders. The ranking reads it instead of the orders.
 *
 * When a day is (re)computed:
 * - never before it is over: a day is stored only once its end (midnight in
 *   the business zone) is past by the database's clock, the same clock that
 *   stamps orders.created_at. Until then the ranking counts it from the orders;
 * - on first use: a ranking that had to count a finished day from the orders
 *   stores it (backfill), so the next ranking reads the rollup;
 * - at midnight: evict-popular-items recomputes every day of the longest
 *   window, which stores the day that just ended and corrects any day that a
 *   write bypassing the triggers changed;
 * - after a late write: the triggers of 007 forget a stored day as soon as an
 *   order or line of that day changes (tests insert orders days in the past),
 *   so the day is counted from the orders, and stored again on next use.
 *
 * One race is left to the midnight recompute: a write that commits while a
 * backfill of its day is running, after the backfill's snapshot, finds no
 * stored day to forget yet; that day then misses the write until midnight.
 */

/**
 * Computes and stores the finished days in [from, to) (dates in `timeZone`),
 * each day's rows replaced as a whole (deleted, then inserted, in one
 * statement), so a reader sees the old day or the new one. `onlyMissing` skips days already stored (the backfill);
 * otherwise every day is recomputed (the midnight job). Returns the days stored.
 *
 * Two backfills of one day do not both compute it: the second waits on the
 * first's marker row and then skips the day; a backfill and a recompute
 * likewise. Two recomputes of one day at once (two midnight jobs: the
 * scheduled one has reserved concurrency 1, so only a manual run beside it)
 * serialize on the marker too, and the second then fails on the primary key
 * (its snapshot predates the first's rows), to be retried: an ON CONFLICT
 * here would make every recompute twice as slow for that rare case.
 */
const STORE_DAYS_SQL = `
  WITH target AS (
    SELECT d.business_date,
           d.business_date::timestamp AT TIME ZONE :timeZone AS starts_at,
           (d.business_date + 1)::timestamp AT TIME ZONE :timeZone AS ends_at
    -- An integer series: the planner knows its length (a date series would
    -- be guessed at 1000 rows, enough to make a tiny statement look worth JIT).
    FROM (SELECT :from::date + i AS business_date FROM generate_series(0, :to::date - :from::date - 1) AS i) AS d
  ), finished AS (
    SELECT t.* FROM target t
    WHERE t.ends_at <= now()
      AND NOT (:onlyMissing AND EXISTS (
        SELECT 1 FROM popular_rollup_days r WHERE r.time_zone = :timeZone AND r.business_date = t.business_date))
  ), marked AS (
    INSERT INTO popular_rollup_days AS r (time_zone, business_date, starts_at, ends_at)
    SELECT :timeZone, business_date, starts_at, ends_at FROM finished
    ON CONFLICT (time_zone, business_date) DO UPDATE SET computed_at = now() WHERE NOT :onlyMissing
    RETURNING r.business_date, r.starts_at, r.ends_at
  ), fresh AS (
    SELECT m.business_date, order_items.item_id, sum(order_items.quantity)::bigint AS quantity
    FROM marked m
    JOIN orders ON orders.status = 'PAID' AND orders.created_at >= m.starts_at AND orders.created_at < m.ends_at
    JOIN order_items ON order_items.order_id = orders.id
    -- The same window again, from the parameters: the planner can estimate
    -- this one (it cannot see into 'marked'), and so reaches order_items by
    -- its index instead of hashing the whole table.
    WHERE orders.created_at >= (:from::date::timestamp AT TIME ZONE :timeZone)
      AND orders.created_at < (:to::date::timestamp AT TIME ZONE :timeZone)
    GROUP BY m.business_date, order_items.item_id
  ), cleared AS (
    -- A day is replaced whole: its old rows go first (forced by the
    -- reference below), so the insert meets no conflict of its own making.
    DELETE FROM daily_item_sales s USING marked m
    WHERE s.time_zone = :timeZone AND s.business_date = m.business_date
    RETURNING 1
  ), stored AS (
    INSERT INTO daily_item_sales (time_zone, business_date, item_id, quantity)
    SELECT :timeZone, business_date, item_id, quantity FROM fresh
    WHERE (SELECT count(*) FROM cleared) >= 0
    RETURNING 1
  )
  SELECT count(*)::int AS days FROM marked WHERE (SELECT count(*) FROM stored) >= 0`;

/** Days stored before this are of no window any more (MAX_DAYS back from today, with a week to spare). */
const FORGET_BEFORE_SQL = `
  WITH days AS (
    DELETE FROM popular_rollup_days WHERE time_zone = :timeZone AND business_date < :before::date RETURNING business_date
  )
  DELETE FROM daily_item_sales WHERE time_zone = :timeZone AND business_date < :before::date`;

export interface StoreDaysOptions {
  timeZone: string;
  /** First date, inclusive. */
  from: string;
  /** Last date, exclusive. */
  to: string;
  onlyMissing: boolean;
}

export async function storeDays(
  database: Queryable,
  { timeZone, from, to, onlyMissing }: StoreDaysOptions,
  callOptions?: CallOptions,
): Promise<number> {
  if (from >= to) return 0;
  const { rows } = await database.query<{ days: number }>(STORE_DAYS_SQL, { timeZone, from, to, onlyMissing }, callOptions);
  return rows[0]?.days ?? 0;
}

/**
 * The midnight job's part: recompute every day of [from, to), one statement
 * per day so no single statement scans more than one day of orders, then drop
 * days older than `keepFrom`. Safe to repeat: a day is replaced, never added to.
 * `callOptions` gives each statement more than a request's call timeout: a
 * day of a busy shop is hundreds of thousands of lines.
 */
export async function recomputeDays(
  database: Queryable,
  { timeZone, from, to, keepFrom }: { timeZone: string; from: string; to: string; keepFrom: string },
  callOptions?: CallOptions,
): Promise<number> {
  let stored = 0;
  for (let day = from; day < to; day = addDays(day, 1)) {
    stored += await storeDays(database, { timeZone, from: day, to: addDays(day, 1), onlyMissing: false }, callOptions);
  }
  await database.query(FORGET_BEFORE_SQL, { timeZone, before: keepFrom }, callOptions);
  // A day of new rows a night: fresh statistics keep the ranking's plan on
  // its indexes (with none, the planner sees a tiny table and scans whole
  // days), and an up-to-date visibility map keeps its scans index-only.
  // Outside any transaction, as VACUUM must be. Upkeep, not correctness: a
  // refusal (a role that may not vacuum) is logged, not thrown.
  await database.query('VACUUM (ANALYZE) daily_item_sales', undefined, callOptions).catch((error: unknown) => {
    logger.warn('popular items: VACUUM of the rollup failed; autovacuum will get to it', {
      error: error instanceof Error ? error.message : String(error),
    });
  });
  return stored;
}
