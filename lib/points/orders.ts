import * as z from 'zod/mini';
import { asJson } from '../platform/db';
import { InsufficientBalanceError, NotFoundError, OutOfStockError } from '../platform/errors';
import { idNumber } from '../platform/http';
import { countPaidOrder, encodeLines } from '../trending/counts';
import { callParams, changeBalance, type BalanceRequest, type PointsDeps, type Verdict } from './balance';
import { keyParams, type Reply } from './idempotency';
import PAY from './pay.sql';

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
