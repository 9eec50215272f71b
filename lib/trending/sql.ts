import { asJson, type Queryable } from '../platform/db';
import type { CountedOrder, Fingerprint } from './counts';

/**
 * The orders table's side of trending. Minutes are computed by the database
 * from created_at (the order's transaction start), the same number the pay
 * path counts the order under. Every statement reads a created_at range
 * through orders_paid_created_at_idx (created_at) INCLUDE (id) WHERE status =
 * 'PAID': the fingerprints are an index-only scan.
 */

const MINUTE = `floor(extract(epoch FROM o.created_at) / 60)::bigint`;
const RANGE = `o.status = 'PAID' AND o.created_at >= to_timestamp(CAST(:fromMinute AS bigint) * 60) AND o.created_at < to_timestamp(CAST(:untilMinute AS bigint) * 60)`;

const FINGERPRINTS_SQL = `
  SELECT ${MINUTE} AS minute, count(*)::int AS orders, (sum(o.id % 1000000007) % 1000000007)::bigint AS sum
  FROM orders o WHERE ${RANGE}
  GROUP BY 1`;

/** Per minute from `fromMinute` up to (not including) `untilMinute`: what the table holds. */
export async function tableFingerprints(database: Queryable, fromMinute: number, untilMinute: number): Promise<Map<number, Fingerprint>> {
  const { rows } = await database.query<{ minute: number; orders: number; sum: number }>(FINGERPRINTS_SQL, { fromMinute, untilMinute });
  return new Map(rows.map((row) => [Number(row.minute), { orders: Number(row.orders), sum: Number(row.sum) }]));
}

const ORDERS_SQL = `
  SELECT o.id::text AS order_id, ${MINUTE} AS minute,
    coalesce(string_agg(oi.item_id || ':' || oi.quantity, ',' ORDER BY oi.item_id) FILTER (WHERE oi.quantity > 0), '') AS lines
  FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.id
  WHERE ${RANGE} AND ${MINUTE} IN (SELECT jsonb_array_elements_text(CAST(:minutes AS jsonb))::bigint)
  GROUP BY o.id, o.created_at`;

/** Every PAID order of these minutes, with its lines, grouped by minute. */
export async function tableOrders(database: Queryable, minutes: readonly number[]): Promise<Map<number, CountedOrder[]>> {
  const byMinute = new Map<number, CountedOrder[]>(minutes.map((minute) => [minute, []]));
  if (minutes.length === 0) return byMinute;
  const { rows } = await database.query<{ order_id: string; minute: number; lines: string }>(ORDERS_SQL, {
    fromMinute: Math.min(...minutes),
    untilMinute: Math.max(...minutes) + 1,
    minutes: asJson(minutes),
  });
  for (const row of rows) byMinute.get(Number(row.minute))?.push({ orderId: row.order_id, minute: Number(row.minute), lines: row.lines });
  return byMinute;
}

/** Which of these order ids the table holds as PAID (whatever their minute). */
export async function existingOrderIds(database: Queryable, orderIds: readonly string[]): Promise<Set<string>> {
  if (orderIds.length === 0) return new Set();
  const { rows } = await database.query<{ id: string }>(
    `SELECT id::text AS id FROM orders WHERE status = 'PAID' AND id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))::bigint)`,
    { ids: asJson(orderIds) },
  );
  return new Set(rows.map((row) => row.id));
}

export interface TrendingRow {
  itemId: number;
  name: string;
  price: number;
  soldQuantity: number;
}

/**
 * The ranking straight from the table, while Redis is away: the same window
 * and order as the Redis path. Items are joined before the LIMIT, so a line
 * naming a deleted item takes no place (as in popular items).
 */
const RANKING_SQL = `
  SELECT oi.item_id AS "itemId", i.name, i.price, sum(oi.quantity)::bigint AS "soldQuantity"
  FROM orders o JOIN order_items oi ON oi.order_id = o.id JOIN items i ON i.id = oi.item_id
  WHERE ${RANGE}
  GROUP BY oi.item_id, i.name, i.price
  HAVING sum(oi.quantity) > 0
  ORDER BY "soldQuantity" DESC, oi.item_id
  LIMIT :limit`;

export async function rankFromTable(database: Queryable, fromMinute: number, untilMinute: number, limit: number): Promise<TrendingRow[]> {
  const { rows } = await database.query<TrendingRow>(RANKING_SQL, { fromMinute, untilMinute, limit });
  return rows.map((row) => ({ itemId: Number(row.itemId), name: row.name, price: Number(row.price), soldQuantity: Number(row.soldQuantity) }));
}

/** Names and prices of the ranked items, in one query; an item no longer in the table is left out. */
export async function itemDetails(database: Queryable, itemIds: readonly number[]): Promise<Map<number, { name: string; price: number }>> {
  if (itemIds.length === 0) return new Map();
  const { rows } = await database.query<{ id: number; name: string; price: number }>(
    `SELECT id, name, price FROM items WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))::bigint)`,
    { ids: asJson(itemIds) },
  );
  return new Map(rows.map((row) => [Number(row.id), { name: row.name, price: Number(row.price) }]));
}
