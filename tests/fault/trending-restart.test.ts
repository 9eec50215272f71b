import Redis from 'ioredis';
import { payOrder } from '../../lib/points/orders';
import { trendingItems, type TrendingDeps } from '../../lib/trending/trending';
import { useTestDatabase } from '../support/database';
import { startRedisServer, type RedisServer } from '../support/redis-server';

/**
 * Trending on a Redis of the test's own, which it kills and restarts empty:
 * the counts are rebuilt exactly from the orders on the first read after
 * the restart, and while Redis is down the ranking comes from the table.
 */

const t = useTestDatabase();
let server: RedisServer;
let client: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  // Fails at once while the server is away, instead of queueing: the caller falls back.
  client = new Redis(server.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 });
  client.on('error', () => {});
  await ready();
  await t.pg.query(`INSERT INTO users (id, name, point_balance) VALUES (1, 'buyer', 1000000)`);
  await t.pg.query(`INSERT INTO items (id, name, price, stock) SELECT n, 'item ' || n, 100 * n, 1000 FROM generate_series(1, 4) AS n`);
});

afterAll(async () => {
  client.disconnect();
  await server.stop();
});

const deps = (): TrendingDeps => ({ redis: client, database: t.db, instance: null });
const ranking = async () => (await trendingItems({ minutes: 10, limit: 10 }, deps())).items.map((item) => [item.itemId, item.soldQuantity]);

async function ready(): Promise<void> {
  while (client.status !== 'ready') await new Promise((resolve) => setTimeout(resolve, 20));
}

it('rebuilds exactly after an empty restart, and answers from the table while Redis is down', async () => {
  for (const items of [[{ itemId: 3, quantity: 2 }], [{ itemId: 1, quantity: 1 }, { itemId: 3, quantity: 1 }], [{ itemId: 2, quantity: 3 }]]) {
    const reply = await payOrder({ userId: 1, items }, { redis: client, database: t.db });
    expect(reply.status).toBe(201);
  }
  const expected = [
    [2, 3],
    [3, 3],
    [1, 1],
  ];
  expect(await ranking()).toEqual(expected);

  await server.restart(); // empty: no counts, no markers, no lease
  await ready();
  expect(await client.dbsize()).toBe(0);
  expect(await ranking()).toEqual(expected);
  expect(await ranking()).toEqual(expected); // the rebuild counted nothing twice

  await server.kill();
  expect(await ranking()).toEqual(expected);
  // An order paid while Redis is away (by another path; its count is lost with it).
  const { rows } = await t.pg.query<{ id: string }>(`INSERT INTO orders (user_id, status, total_amount) VALUES (1, 'PAID', 0) RETURNING id`);
  await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, 4, 5, 0)', [rows[0]!.id]);
  expect(await ranking()).toEqual([[4, 5], ...expected]);

  await server.restart();
  await ready();
  expect(await ranking()).toEqual([[4, 5], ...expected]);
});
