import * as z from 'zod/mini';
import { asJson } from '../platform/db';
import { InsufficientBalanceError, NotFoundError, OutOfStockError } from '../platform/errors';
import { idNumber } from '../platform/http';
import { countPaidOrder, encodeLines } from '../trending/counts';
import { keyParams, rememberReply, type Reply } from './idempotency';
import {
  ACCOUNT,
  callParams,
  changeBalance,
  FIRST_COLUMNS,
  FIRST_OUTCOMES,
  recordOutcome,
  type BalanceRequest,
  type PointsDeps,
  type Verdict,
} from './balance';

/**
 * Paying for an order with points: a balance change like a charge (see
 * lib/points/balance for the lock, the fencing and the one-statement pattern), that
 * also takes stock and writes the order.
 *
 * Round trips: Data API 1 (the PAY statement; 1 more to resolve it only when
 * its reply was lost, see lib/points/resolve); Redis as for a charge, and one
 * script call after the commit that counts the order for trending
 * (lib/trending; once per order, so a replay's call adds nothing).
 */

export const PAY_ROUTE = 'POST /orders';
export const MAX_ORDER_LINES = 20;
export const MAX_LINE_QUANTITY = 100;

export const orderRequest = z.object({
  items: z
    .array(z.object({ itemId: idNumber, quantity: z.number().check(z.int(), z.minimum(1), z.maximum(MAX_LINE_QUANTITY)) }))
    .check(
      z.minLength(1),
      z.maxLength(MAX_ORDER_LINES),
      z.refine((lines) => new Set(lines.map((line) => line.itemId)).size === lines.length, 'each itemId may appear only once'),
    ),
});

export type OrderLine = z.output<typeof orderRequest>['items'][number];

export interface OrderReceipt {
  orderId: number;
  userId: number;
  status: 'PAID';
  totalAmount: number;
  balance: number;
  /** In the order of the request. */
  items: { itemId: number; quantity: number; unitPrice: number }[];
}

interface PayVerdict extends Verdict {
  /** numeric, as text: the sum is taken without overflow, whatever the prices. */
  total: string | null;
  missing_item: number | null;
  short_item: number | null;
  short_stock: number | null;
  short_quantity: number | null;
}

/**
 * The stored receipt also carries the order's minute (as the database counts
 * minutes from created_at), so every path to a committed order (the reply,
 * a lost reply resolved, a replay) can count it under the same minute a
 * rebuild from the table would. Not part of the answer.
 */
type StoredReceipt = OrderReceipt & { paidMinute?: number };

export async function payOrder(request: BalanceRequest & { items: OrderLine[] }, deps: PointsDeps = {}): Promise<Reply<OrderReceipt>> {
  const reply = await paid(request, deps);
  const { paidMinute, ...body } = reply.body;
  // A reply stored before receipts carried the minute is not counted again: its minute is unknown.
  if (paidMinute !== undefined) {
    await countPaidOrder({ orderId: body.orderId, minute: paidMinute, lines: encodeLines(body.items) }, deps.redis);
  }
  return { ...reply, body };
}

async function paid(request: BalanceRequest & { items: OrderLine[] }, deps: PointsDeps): Promise<Reply<StoredReceipt>> {
  return changeBalance<StoredReceipt>(request, 201, deps, async (database, call) => {
    const lines = request.items.map((line, index) => ({ item_id: line.itemId, quantity: line.quantity, line_no: index }));
    const { rows } = await database.query<PayVerdict>(
      PAY,
      { userId: request.userId, lines: asJson(lines), ...callParams(call), ...keyParams(PAY_ROUTE, request.idempotency) },
      { timeoutMs: call.timeoutMs },
    );
    const verdict = rows[0]!;
    switch (verdict.outcome) {
      case 'no_item':
        throw new NotFoundError(`item ${verdict.missing_item} does not exist`);
      case 'out_of_stock':
        throw new OutOfStockError(`item ${verdict.short_item} has ${verdict.short_stock} in stock, ${verdict.short_quantity} ordered`);
      case 'insufficient':
        throw new InsufficientBalanceError(`balance ${verdict.balance} is less than ${verdict.total}`);
      default:
        return verdict;
    }
  });
}

// Prices and stock come from the locked items rows, never from the client.
// Every write hangs off `paid`, the fenced balance update: without its row,
// no stock is taken and no order, history or reply is written; the CHECKs
// (stock >= 0, balance >= 0) stay the last line of defense.
const PAY = `
WITH ${ACCOUNT},
  lines AS (
    SELECT * FROM jsonb_to_recordset(CAST(:lines AS jsonb)) AS line(item_id bigint, quantity integer, line_no integer)
  ),
  -- Locked in item-id order, so orders sharing items queue instead of deadlocking.
  stocked AS (
    SELECT id, price, stock FROM items WHERE id IN (SELECT item_id FROM lines) ORDER BY id FOR UPDATE
  ),
  priced AS (
    SELECT lines.*, stocked.price, stocked.stock FROM lines LEFT JOIN stocked ON stocked.id = lines.item_id
  ),
  missing AS (
    SELECT min(item_id) AS item_id FROM priced WHERE price IS NULL
  ),
  shortfall AS (
    SELECT item_id, stock, quantity FROM priced WHERE stock < quantity ORDER BY item_id LIMIT 1
  ),
  verdict AS (
    SELECT CASE
      ${FIRST_OUTCOMES}
      WHEN missing.item_id IS NOT NULL THEN 'no_item'
      WHEN shortfall.item_id IS NOT NULL THEN 'out_of_stock'
      WHEN account.point_balance < cost.total THEN 'insufficient'
      ELSE 'ok'
    END AS outcome,
    ${FIRST_COLUMNS}, cost.total, missing.item_id AS missing_item,
    shortfall.item_id AS short_item, shortfall.stock AS short_stock, shortfall.quantity AS short_quantity
    FROM (SELECT sum(price::numeric * quantity) AS total FROM priced) AS cost
    CROSS JOIN missing
    LEFT JOIN shortfall ON true
    LEFT JOIN account ON true
    LEFT JOIN prior ON true
  ),
  paid AS (
    UPDATE users SET point_balance = point_balance - verdict.total, lock_fence = :fence
    FROM verdict
    WHERE users.id = :userId AND users.lock_fence <= :fence AND verdict.outcome = 'ok'
    RETURNING users.point_balance
  ),
  taken AS (
    UPDATE items SET stock = items.stock - lines.quantity
    FROM lines, paid
    WHERE items.id = lines.item_id
  ),
  placed AS (
    INSERT INTO orders (user_id, status, total_amount)
    SELECT :userId, 'PAID', verdict.total FROM verdict, paid
    RETURNING id, total_amount, created_at
  ),
  placed_lines AS (
    INSERT INTO order_items (order_id, item_id, quantity, unit_price)
    SELECT placed.id, priced.item_id, priced.quantity, priced.price FROM placed, priced
  ),
  history AS (
    INSERT INTO point_history (user_id, type, amount, balance_after, order_id)
    SELECT :userId, 'PAY', -placed.total_amount, paid.point_balance, placed.id FROM placed, paid
  ),
  receipt AS (
    SELECT json_build_object(
      'orderId', placed.id,
      'userId', :userId,
      'status', 'PAID',
      'totalAmount', placed.total_amount,
      'balance', paid.point_balance,
      'paidMinute', floor(extract(epoch FROM placed.created_at) / 60)::bigint,
      'items', (
        SELECT json_agg(json_build_object('itemId', item_id, 'quantity', quantity, 'unitPrice', price) ORDER BY line_no)
        FROM priced
      )
    ) AS body
    FROM placed, paid
  ),
  ${rememberReply(201)},
  ${recordOutcome(201)}
SELECT verdict.*, receipt.body FROM verdict LEFT JOIN receipt ON true`;
