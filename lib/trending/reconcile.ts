import type { Queryable } from '../platform/db';
import { logger } from '../platform/logger';
import { metric } from '../platform/metrics';
import type { RedisClient } from '../platform/redis/client';
import { addOrders, countedOrderIds, redisFingerprints, removeOrders, type CountedOrder } from './counts';
import { spanOf, trendingKeys } from './keys';
import { existingOrderIds, tableFingerprints, tableOrders } from './sql';

/**
 * Brings the trending counts of the last SPAN minutes in line with the
 * orders table, exactly: the one repair for every way they can differ.
 * Redis lost its data (a flush, an empty restart: every minute differs and
 * is rebuilt), an order's count failed after its commit, a row written
 * straight to the table. Run by a trending read holding the check lease, so
 * at most once per CHECK_INTERVAL_MS across every instance.
 *
 * Cost when nothing differs: one index-only range scan of the orders of the
 * last hour, and one Redis script, side by side. A minute that differs costs
 * one more query for its orders and one idempotent script call that counts
 * those it lacks: counting is once-only per order (lib/trending/lua/trending-add.lua), so
 * a pay path counting the same order at the same time cannot double it. A
 * minute that counted an order the table no longer holds (deleted by hand)
 * then has its extra orders checked against the table and removed.
 *
 * Returns how many minutes were repaired.
 */
export async function reconcile(database: Queryable, current: number, client: RedisClient): Promise<number> {
  const minutes = spanOf(current);
  const [table, counted] = await Promise.all([tableFingerprints(database, minutes[0]!, current + 1), redisFingerprints(current, client)]);
  const differing = minutes.filter((minute, i) => {
    const want = table.get(minute) ?? { orders: 0, sum: 0 };
    const have = counted[i]!;
    return want.orders !== have.orders || want.sum !== have.sum;
  });
  if (differing.length === 0) return 0;

  // In batches: a Data API reply holds at most 1 MB, and a busy minute's orders with their lines come near 100 KB.
  const orders = new Map<number, CountedOrder[]>();
  for (const batch of batchesOf(differing, (minute) => table.get(minute)?.orders ?? 0)) {
    for (const [minute, rows] of await tableOrders(database, batch)) orders.set(minute, rows);
  }
  // Side by side: each call is one minute's, in the same slot.
  const surplus = await Promise.all(
    differing.map(async (minute) => {
      const rows = orders.get(minute) ?? [];
      await addOrders(minute, rows, client);
      // The hash holds the orders and the field `sum`.
      if ((await client.hlen(trendingKeys.orders(minute))) - 1 <= rows.length) return [];
      const inTable = new Set(rows.map((row) => String(row.orderId)));
      return (await countedOrderIds(minute, client)).filter((id) => !inTable.has(id)).map((id) => ({ minute, id }));
    }),
  );
  const extra = surplus.flat();
  if (extra.length > 0) {
    // Counted after the table was read (a pay that committed meanwhile) is
    // not extra: only ids the table does not hold at all now are removed.
    const stillPaid = await existingOrderIds(database, extra.map((entry) => entry.id));
    const gone = new Map<number, string[]>();
    for (const { minute, id } of extra) if (!stillPaid.has(id)) gone.set(minute, [...(gone.get(minute) ?? []), id]);
    await Promise.all([...gone].map(([minute, ids]) => removeOrders(minute, ids, client)));
  }
  metric('TrendingMinutesRepaired', differing.length);
  logger.info('trending counts repaired from the orders table', { minutes: differing.length });
  return differing.length;
}

/** Orders per query of a repair: about 500 KB of reply. */
const ORDERS_PER_QUERY = 5000;

/** Consecutive groups of minutes holding at most ORDERS_PER_QUERY orders each (a busier minute alone). */
function batchesOf(minutes: number[], ordersOf: (minute: number) => number): number[][] {
  const batches: number[][] = [];
  let batch: number[] = [];
  let size = 0;
  for (const minute of minutes) {
    const orders = ordersOf(minute);
    if (batch.length > 0 && size + orders > ORDERS_PER_QUERY) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(minute);
    size += orders;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
