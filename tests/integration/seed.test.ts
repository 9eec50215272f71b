import { seedIfEmpty } from '../../db/migrate';
import { handler as popularItemsHandler } from '../../functions/popular-items';
import { useTestDatabase } from '../support/database';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';

/**
 * The demo seed (db/seed.sql) on a first `npm start`: paid orders on the
 * whole days before today in the business time zone, so GET /items/popular
 * answers with items right away (issue 12).
 */

const t = useTestDatabase();

/** A date `days` before today in the zone, as YYYY-MM-DD. */
function dayBefore(days: number, timeZone: string): string {
  const today = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
  const date = new Date(`${today}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() - days);
  return date.toISOString().slice(0, 10);
}

it('loads once, into an empty database only', async () => {
  expect(await seedIfEmpty(t.db, 'Asia/Seoul')).toBe(true);
  expect(await seedIfEmpty(t.db, 'Asia/Seoul')).toBe(false);
});

it('puts every demo order on one of the seven business days before today, none today', async () => {
  const { rows } = await t.pg.query<{ day: string; orders: string }>(
    `SELECT to_char(created_at AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD') AS day, count(*) AS orders
     FROM orders WHERE status = 'PAID' GROUP BY 1 ORDER BY 1`,
  );
  expect(rows.map((row) => row.day)).toEqual([7, 6, 5, 4, 3, 2, 1].map((days) => dayBefore(days, 'Asia/Seoul')));
  const lines = await t.pg.query<{ bad: string }>(
    `SELECT count(*) AS bad FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.id
     WHERE oi.order_id IS NULL OR o.total_amount <> oi.quantity * oi.unit_price`,
  );
  expect(Number(lines.rows[0]!.bad)).toBe(0);
});

it('makes GET /items/popular show yesterday\'s and the last days\' best sellers', async () => {
  const call = async (rawQueryString: string) =>
    bodyOf<{ from: string; to: string; items: { itemId: number; soldQuantity: number }[] }>(
      await popularItemsHandler(httpEvent({ routeKey: 'GET /items/popular', rawQueryString, userId: 1 }), lambdaContext()),
    );
  const yesterday = await call('days=1');
  expect(yesterday).toMatchObject({ from: dayBefore(1, 'Asia/Seoul'), to: dayBefore(1, 'Asia/Seoul') });
  expect(yesterday.items.map((item) => [item.itemId, item.soldQuantity])).toEqual([
    [1, 3],
    [2, 2],
    [3, 1],
  ]);
  const threeDays = await call('');
  expect(threeDays.items.length).toBe(5);
  expect(threeDays.items[0]).toMatchObject({ itemId: 1, soldQuantity: 7 });
});
