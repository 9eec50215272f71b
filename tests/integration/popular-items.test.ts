import { handler } from '../../functions/popular-items';
import { addDays } from '../../lib/platform/business-time';
import { cacheKeys, evictGroup } from '../../lib/platform/cache';
import { rankPopularItems, refreshPopularItems } from '../../lib/popular-items/popular-items';
import { rankFromOrders, rankFromRollup } from '../../lib/popular-items/ranking';
import { redis } from '../../lib/platform/redis/client';
import { useTestDatabase } from '../support/database';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';

/**
 * The ranking (one SQL statement through the real Data API path) around
 * business-day boundaries, and the input rules of GET /items/popular. Caching
 * and the clock's today are in popular-items-cache.test.ts.
 * Asia/Seoul is UTC+9: 23:59 KST on day D is 14:59 UTC on D, and 00:00 KST on
 * D+1 is 15:00 UTC on D.
 */

const t = useTestDatabase();

beforeEach(async () => {
  await t.pg.query('TRUNCATE items, orders, order_items, daily_item_sales, popular_rollup_days');
  await evictGroup('popular-items');
});

async function addItems(...ids: number[]): Promise<void> {
  for (const id of ids) {
    await t.pg.query('INSERT INTO items (id, name, price, stock) VALUES ($1, $2, $3, 100)', [id, `Item ${id}`, id * 100]);
  }
}

/** One order at `createdAt` (an instant) with `lines` of itemId → quantity. */
async function addOrder(createdAt: string, lines: Record<number, number>, status = 'PAID'): Promise<void> {
  const { rows } = await t.pg.query<{ id: string }>(
    'INSERT INTO orders (user_id, status, total_amount, created_at) VALUES (1, $1, 0, $2) RETURNING id',
    [status, createdAt],
  );
  for (const [itemId, quantity] of Object.entries(lines)) {
    await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, $2, $3, 0)', [rows[0]!.id, itemId, quantity]);
  }
}

const item = (rank: number, itemId: number, soldQuantity: number) => ({ rank, itemId, name: `Item ${itemId}`, price: itemId * 100, soldQuantity });

describe('the ranking', () => {
  const seoul = (query: { days: number; limit: number }, today = '2024-03-10') => rankPopularItems(t.db, query, today, 'Asia/Seoul');

  it('counts 00:00 .. 23:59 KST of each day before today, whatever day UTC says', async () => {
    await addItems(1, 2, 3, 4);
    await addOrder('2024-03-09T14:59:59Z', { 1: 2 }); // 23:59:59 KST on the 9th: yesterday
    await addOrder('2024-03-09T15:00:00Z', { 2: 5 }); // 00:00 KST on the 10th: today, not counted
    await addOrder('2024-03-08T15:00:00Z', { 3: 1 }); // 00:00 KST on the 9th: yesterday
    await addOrder('2024-03-08T14:59:59Z', { 4: 9 }); // 23:59:59 KST on the 8th: two days ago

    expect(await seoul({ days: 1, limit: 5 })).toEqual({
      days: 1,
      limit: 5,
      from: '2024-03-09',
      to: '2024-03-09',
      items: [item(1, 1, 2), item(2, 3, 1)],
    });
    expect(await seoul({ days: 2, limit: 5 })).toEqual({
      days: 2,
      limit: 5,
      from: '2024-03-08',
      to: '2024-03-09',
      items: [item(1, 4, 9), item(2, 1, 2), item(3, 3, 1)],
    });
  });

  it('with days=30 reaches back to 00:00 KST 30 days before today, across a leap day', async () => {
    await addItems(1, 2);
    await addOrder('2024-02-08T15:00:00Z', { 1: 1 }); // 00:00 KST on Feb 9: the first day counted
    await addOrder('2024-02-08T14:59:59Z', { 2: 7 }); // 23:59:59 KST on Feb 8: one day too old

    expect(await seoul({ days: 30, limit: 5 })).toEqual({ days: 30, limit: 5, from: '2024-02-09', to: '2024-03-09', items: [item(1, 1, 1)] });
  });

  it('sums quantities over orders, ranks ties to the lower item id and stops at the limit', async () => {
    await addItems(1, 2, 5, 9, 10);
    await addOrder('2024-03-09T03:00:00Z', { 9: 5, 5: 3, 1: 4 });
    await addOrder('2024-03-09T04:00:00Z', { 5: 2, 2: 5, 10: 1 });

    expect((await seoul({ days: 1, limit: 50 })).items).toEqual([item(1, 2, 5), item(2, 5, 5), item(3, 9, 5), item(4, 1, 4), item(5, 10, 1)]);
    expect((await seoul({ days: 1, limit: 3 })).items).toEqual([item(1, 2, 5), item(2, 5, 5), item(3, 9, 5)]);
  });

  it('counts PAID orders only', async () => {
    await addItems(1, 2);
    await addOrder('2024-03-09T03:00:00Z', { 1: 1 });
    for (const status of ['PENDING', 'CANCELLED', 'REFUNDED', 'paid']) await addOrder('2024-03-09T03:00:00Z', { 2: 10 }, status);

    expect((await seoul({ days: 3, limit: 5 })).items).toEqual([item(1, 1, 1)]);
  });

  it('lists nothing when nothing sold in the window', async () => {
    await addItems(1, 2);
    await addOrder('2024-03-10T03:00:00Z', { 1: 3 }); // today
    await addOrder('2024-02-01T03:00:00Z', { 2: 3 }); // long ago

    expect(await seoul({ days: 3, limit: 5 })).toEqual({ days: 3, limit: 5, from: '2024-03-07', to: '2024-03-09', items: [] });
  });

  it('skips a line whose item no longer exists without losing a place', async () => {
    await addItems(1);
    await addOrder('2024-03-09T03:00:00Z', { 1: 1, 77: 50 });

    expect((await seoul({ days: 1, limit: 1 })).items).toEqual([item(1, 1, 1)]);
  });

  it('lets PostgreSQL place the day boundaries of a DST zone', async () => {
    // New York, 2024-03-10: EST (UTC-5) until 02:00, then EDT (UTC-4); the day has 23 hours.
    await addItems(1, 2, 3, 4);
    await addOrder('2024-03-10T04:59:59Z', { 1: 1 }); // 23:59:59 EST on the 9th
    await addOrder('2024-03-10T05:00:00Z', { 2: 1 }); // 00:00 EST on the 10th
    await addOrder('2024-03-11T03:59:59Z', { 3: 1 }); // 23:59:59 EDT on the 10th
    await addOrder('2024-03-11T04:00:00Z', { 4: 1 }); // 00:00 EDT on the 11th: today

    const ranking = await rankPopularItems(t.db, { days: 1, limit: 5 }, '2024-03-11', 'America/New_York');
    expect(ranking.items.map((row) => row.itemId)).toEqual([2, 3]);
  });
});

describe('the daily rollup', () => {
  const seoul = (query: { days: number; limit: number }, today = '2024-03-10') => rankPopularItems(t.db, query, today, 'Asia/Seoul');
  const storedDays = async () =>
    (await t.pg.query<{ day: string }>(`SELECT business_date::text AS day FROM popular_rollup_days WHERE time_zone = 'Asia/Seoul' ORDER BY 1`)).rows.map((row) => row.day);

  it('stores the finished days of a window on first use, then ranks from them', async () => {
    await addItems(1, 2);
    await addOrder('2024-03-09T03:00:00Z', { 1: 2, 2: 1 });
    await addOrder('2024-03-07T03:00:00Z', { 2: 4 });

    const first = await seoul({ days: 3, limit: 5 });

    expect(await storedDays()).toEqual(['2024-03-07', '2024-03-08', '2024-03-09']);
    const { rows } = await t.pg.query(`SELECT business_date::text AS day, item_id::int AS item, quantity::int FROM daily_item_sales WHERE time_zone = 'Asia/Seoul' ORDER BY 1, 2`);
    expect(rows).toEqual([
      { day: '2024-03-07', item: 2, quantity: 4 },
      { day: '2024-03-09', item: 1, quantity: 2 },
      { day: '2024-03-09', item: 2, quantity: 1 },
    ]);
    expect(first.items).toEqual([item(1, 2, 5), item(2, 1, 2)]);
    expect(await seoul({ days: 3, limit: 5 })).toEqual(first);
  });

  it('counts an order inserted late for a stored day at once: the write forgets the day', async () => {
    await addItems(1, 2);
    await addOrder('2024-03-09T03:00:00Z', { 1: 2 });
    await seoul({ days: 1, limit: 5 });
    expect(await storedDays()).toEqual(['2024-03-09']);

    await addOrder('2024-03-09T05:00:00Z', { 2: 3 });

    expect(await storedDays()).toEqual([]);
    expect((await seoul({ days: 1, limit: 5 })).items).toEqual([item(1, 2, 3), item(2, 1, 2)]);
    expect(await storedDays()).toEqual(['2024-03-09']);
  });

  it('forgets a stored day when an order of it changes status or moves, or a line changes or goes', async () => {
    await addItems(1, 2);
    await addOrder('2024-03-09T03:00:00Z', { 1: 2 });
    await addOrder('2024-03-09T04:00:00Z', { 2: 5 });
    expect((await seoul({ days: 1, limit: 5 })).items).toEqual([item(1, 2, 5), item(2, 1, 2)]);

    await t.pg.query(`UPDATE orders SET status = 'REFUNDED' WHERE created_at = '2024-03-09T04:00:00Z'`);
    expect((await seoul({ days: 1, limit: 5 })).items).toEqual([item(1, 1, 2)]);

    await t.pg.query(`UPDATE orders SET created_at = '2024-03-01T03:00:00Z' WHERE created_at = '2024-03-09T03:00:00Z'`);
    expect((await seoul({ days: 1, limit: 5 })).items).toEqual([]);
    expect((await seoul({ days: 10, limit: 5 })).items).toEqual([item(1, 1, 2)]);

    await t.pg.query('UPDATE order_items SET quantity = 6 WHERE item_id = 1');
    expect((await seoul({ days: 10, limit: 5 })).items).toEqual([item(1, 1, 6)]);

    await t.pg.query('DELETE FROM order_items WHERE item_id = 1');
    expect((await seoul({ days: 10, limit: 5 })).items).toEqual([]);
  });

  it('never stores a day that is not over yet, and counts it from the orders', async () => {
    await addItems(1);
    // "today" one day ahead of the real one: its yesterday is the real today, still running.
    const realToday = (await t.pg.query<{ d: string }>(`SELECT (now() AT TIME ZONE 'Asia/Seoul')::date::text AS d`)).rows[0]!.d;
    const { rows } = await t.pg.query<{ tomorrow: string }>(`SELECT ($1::date + 1)::text AS tomorrow`, [realToday]);
    await t.pg.query(`INSERT INTO orders (user_id, total_amount) VALUES (1, 0)`);
    await t.pg.query(`INSERT INTO order_items (order_id, item_id, quantity, unit_price) SELECT max(id), 1, 4, 0 FROM orders`);

    expect((await seoul({ days: 2, limit: 5 }, rows[0]!.tomorrow)).items).toEqual([item(1, 1, 4)]);

    expect(await storedDays()).not.toContain(realToday);
    expect(await storedDays()).toHaveLength(1); // the day before it, finished
  });

  it('ranks exactly as the plain query does, over many items, days and ties', async () => {
    const ids = Array.from({ length: 120 }, (_, i) => i + 1);
    await t.pg.query(`INSERT INTO items (id, name, price, stock) SELECT n, 'Item ' || n, n * 100, 100 FROM unnest($1::int[]) AS n`, [ids]);
    // Skewed, with many ties: item n sells about 600/n lines a day, a few days quiet.
    await t.pg.query(`
      WITH o AS (
        INSERT INTO orders (user_id, status, total_amount, created_at)
        SELECT 1, CASE WHEN g % 9 = 0 THEN 'CANCELLED' ELSE 'PAID' END, 0,
               timestamptz '2024-02-05T15:00:00Z' + (g % 34) * interval '1 day' + (g % 83) * interval '17 minutes'
        FROM generate_series(1, 6000) AS g WHERE g % 34 NOT IN (5, 6)
        RETURNING id)
      INSERT INTO order_items (order_id, item_id, quantity, unit_price)
      SELECT id, 1 + floor(120 * power((id * 7919 % 1000) / 1000.0, 2))::int, 1 + id % 3, 0 FROM o`);
    const window = (days: number, limit: number) => ({ from: addDays('2024-03-10', -days), today: '2024-03-10', timeZone: 'Asia/Seoul', limit });

    const statements: string[] = [];
    const recording = { query: (sql: string, params?: any) => (statements.push(sql), t.db.query(sql, params)) } as typeof t.db;
    let proved = 0;
    for (const [days, limit] of [[30, 50], [30, 5], [7, 1], [3, 50], [1, 10], [12, 3], [30, 2]] as const) {
      const plain = await rankFromOrders(t.db, window(days, limit));
      expect(plain.length).toBeGreaterThan(0);
      expect({ days, limit, rows: await rankFromRollup(t.db, window(days, limit)) }).toEqual({ days, limit, rows: plain }); // first use: counted and stored
      statements.length = 0;
      expect({ days, limit, rows: await rankFromRollup(recording, window(days, limit)) }).toEqual({ days, limit, rows: plain }); // from the rollup
      if (statements.length === 1) proved++; // the pruned ranking proved its answer alone
    }
    // Both paths ran: some windows were proved from each day's top, others needed the full sum.
    expect(proved).toBeGreaterThan(0);
  });

  it('is corrected by the midnight job when a write bypassed the triggers, which also drops days out of every window', async () => {
    await addItems(1, 2);
    await addOrder('2024-03-09T03:00:00Z', { 1: 2 });
    const now = () => new Date('2024-03-10T03:00:00Z');
    await refreshPopularItems({ now, database: t.db });
    expect(await storedDays()).toHaveLength(30);
    await t.pg.query(`INSERT INTO popular_rollup_days (time_zone, business_date, starts_at, ends_at) VALUES ('Asia/Seoul', '2023-12-01', '2023-11-30T15:00:00Z', '2023-12-01T15:00:00Z')`);

    // A bulk load with triggers off (session_replication_role = replica) leaves the stored day as it was.
    await t.pg.query('BEGIN');
    await t.pg.query('SET LOCAL session_replication_role = replica');
    await addOrder('2024-03-09T04:00:00Z', { 2: 5 });
    await t.pg.query('COMMIT');
    expect((await seoul({ days: 1, limit: 5 })).items).toEqual([item(1, 1, 2)]);

    const summary = await refreshPopularItems({ now, database: t.db });

    expect(summary).toMatchObject({ rolledUp: 30, warmed: { from: '2024-03-07', to: '2024-03-09', items: 2 } });
    expect((await seoul({ days: 1, limit: 5 })).items).toEqual([item(1, 2, 5), item(2, 1, 2)]);
    expect(await storedDays()).not.toContain('2023-12-01');
  });
});

describe('GET /items/popular', () => {
  const routeKey = 'GET /items/popular';
  const get = (rawQueryString: string) => handler(httpEvent({ routeKey, rawQueryString, userId: 7 }), lambdaContext());

  it('takes days 1 .. 30 and limit 1 .. 50, and ignores unknown parameters', async () => {
    for (const [query, days, limit] of [['days=1&limit=1', 1, 1], ['days=30&limit=50&sort=asc', 30, 50], ['limit=7', 3, 7]] as const) {
      const result = await get(query);
      expect(result.statusCode).toBe(200);
      expect(bodyOf(result)).toMatchObject({ days, limit, items: [] });
    }
  });

  it.each([
    'days=0',
    'days=31',
    'limit=0',
    'limit=51',
    'days=',
    'days=abc',
    'days=-1',
    'days=%2B3',
    'days=03',
    'days=1.5',
    'days=1e1',
    'days=%203',
    'limit=99999999999999999999999',
    'days=3&days=3',
    'limit=5&limit=6',
  ])('rejects %s with a 400 problem and caches nothing', async (query) => {
    const result = await get(query);

    expect(result.statusCode).toBe(400);
    expect(result.headers?.['content-type']).toBe('application/problem+json');
    expect(bodyOf(result)).toMatchObject({ type: 'about:blank', status: 400, code: 'VALIDATION_ERROR' });
    expect(await redis().exists(cacheKeys('popular-items').registry)).toBe(0);
  });

  it('needs a token even though the answer is the same for everyone', async () => {
    const result = await handler(httpEvent({ routeKey, userId: undefined }), lambdaContext());

    expect(result.statusCode).toBe(401);
    expect(result.headers?.['content-type']).toBe('application/problem+json');
    expect(bodyOf(result)).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  });
});
