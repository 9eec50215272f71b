import { trendingItems } from '../../lib/trending/trending';
import { redis } from '../../lib/platform/redis/client';
import { trendingKeys } from '../../lib/trending/keys';
import { useTestDatabase } from '../support/database';
import { bodyOf } from '../support/events';
import { callPay, freshRows } from '../support/points';
import { useDataApiProxy } from './db-harness';

/**
 * A payment whose Data API reply is lost after its statement committed is
 * answered 201 by the lost-reply resolution (lib/points/points): that order
 * is counted for trending by the pay path itself, in the minute the database
 * gave it, exactly once, with no check against the table needed.
 */

// Before anything reads the configuration (useTestDatabase's hook, the handlers).
const dataApiProxy = useDataApiProxy();
const t = useTestDatabase();
const fresh = freshRows(() => t.pg);

it('counts an order whose reply was lost and resolved as committed, once', async () => {
  const userId = await fresh.user(1000);
  const itemId = await fresh.item(10, 100);
  dataApiProxy().set({ mode: 'dropAfterRequest', once: true });
  const result = await callPay(userId, { items: [{ itemId, quantity: 7 }] });
  dataApiProxy().set({ mode: 'pass' });
  expect(result.statusCode).toBe(201);
  const { orderId } = bodyOf<{ orderId: number }>(result);
  expect(bodyOf(result)).not.toHaveProperty('paidMinute');

  // The lease held: this read answers from the counts as the pay path left them.
  await redis().set(trendingKeys.checkLease, '1', 'PX', 60_000);
  const answer = await trendingItems({ minutes: 5, limit: 5 }, { instance: null, database: t.db });
  expect(answer.items.map((item) => [item.itemId, item.soldQuantity])).toEqual([[itemId, 7]]);
  const { rows } = await t.pg.query<{ minute: string }>('SELECT floor(extract(epoch FROM created_at) / 60)::bigint AS minute FROM orders WHERE id = $1', [orderId]);
  expect(await redis().hexists(trendingKeys.orders(Number(rows[0]!.minute)), String(orderId))).toBe(1);
});
