import { setTimeout as sleep } from 'node:timers/promises';
import { handler as evictPopularItems } from '../../functions/evict-popular-items';
import { config } from '../../lib/platform/config';
import { startOfflineStack, STACK_TIMEOUT_MS, useOfflineStack, type OfflineStack } from '../support/offline';

/**
 * Two stacks side by side on one database and one Redis key prefix, as two
 * Lambda instances: each keeps its own memory (the instance tier), and they
 * share only Redis and the database. An order answered 201 by one is in
 * every ranking the other computes after that answer; an eviction run
 * beside them reaches both within δ.
 */

const stack = useOfflineStack();
const { database: t, request } = stack;
let second: OfflineStack;

beforeAll(async () => {
  second = await startOfflineStack();
  await t.pg.query(`INSERT INTO users (id, name, point_balance) VALUES (1, 'buyer', 1000000)`);
  await t.pg.query(`INSERT INTO items (id, name, price, stock) VALUES (1, 'Americano', 4500, 1000), (2, 'Latte', 5000, 1000)`);
}, STACK_TIMEOUT_MS);

afterAll(async () => {
  await second?.stop();
});

interface Trending {
  minutes: number;
  limit: number;
  asOf: string;
  items: { rank: number; itemId: number; name: string; price: number; soldQuantity: number }[];
}

async function trendingAt(base: string, query = ''): Promise<Trending> {
  const response = await fetch(`${base}/items/trending${query}`, { headers: { authorization: `Bearer ${await token()}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as Trending;
}

const token = async () => (await import('../../lib/platform/local-token')).createLocalToken(9);

it('counts an order answered 201 by one stack in every ranking the other computes after that answer', async () => {
  // Both stacks hold a ranking without it in memory.
  expect((await trendingAt(stack.baseUrl)).items).toEqual([]);
  expect((await trendingAt(second.baseUrl)).items).toEqual([]);

  const paid = await request('POST', '/orders', 1, { body: { items: [{ itemId: 2, quantity: 3 }, { itemId: 1, quantity: 1 }] } });
  expect(paid.status).toBe(201);
  const answeredAt = Date.now();

  const expected = [
    { rank: 1, itemId: 2, name: 'Latte', price: 5000, soldQuantity: 3 },
    { rank: 2, itemId: 1, name: 'Americano', price: 4500, soldQuantity: 1 },
  ];
  for (const base of [stack.baseUrl, second.baseUrl]) {
    let answer = await trendingAt(base);
    // A ranking computed before the answer may still be served, within δ.
    for (let tries = 0; Date.parse(answer.asOf) <= answeredAt && tries < 100; tries++) {
      await sleep(50);
      answer = await trendingAt(base);
    }
    expect(Date.parse(answer.asOf)).toBeGreaterThan(answeredAt);
    expect(answer).toEqual({ minutes: 10, limit: 10, asOf: expect.any(String), items: expected });
  }
  expect((await trendingAt(second.baseUrl, '?minutes=1&limit=1')).items).toEqual(expected.slice(0, 1));
});

it('answers 400 for a bad minutes or limit, a repeated parameter, and 401 without a token', async () => {
  for (const query of ['minutes=61', 'minutes=0', 'limit=05', 'limit=51', 'minutes=1&minutes=1']) {
    expect(await request('GET', `/items/trending?${query}`, 1)).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR' } });
  }
  expect(await request('GET', '/items/trending')).toMatchObject({ status: 401, body: { code: 'UNAUTHORIZED' } });
});

it('shows an eviction on both stacks once δ has passed, and never a dropped variant after that', async () => {
  const popular = async (base: string) => {
    const response = await fetch(`${base}/items/popular?days=1&limit=5`, { headers: { authorization: `Bearer ${await token()}` } });
    return ((await response.json()) as { items: { itemId: number; soldQuantity: number }[] }).items;
  };
  const { rows } = await t.pg.query<{ id: string }>(`INSERT INTO orders (user_id, total_amount, created_at) VALUES (1, 0, now() - interval '1 day') RETURNING id`);
  await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, 1, 7, 0)', [rows[0]!.id]);
  // Both stacks now hold this ranking in memory.
  const before = [await popular(stack.baseUrl), await popular(second.baseUrl)];
  expect(before[0]).toEqual(before[1]);

  const { rows: more } = await t.pg.query<{ id: string }>(`INSERT INTO orders (user_id, total_amount, created_at) VALUES (1, 0, now() - interval '1 day') RETURNING id`);
  await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, 2, 9, 0)', [more[0]!.id]);
  await evictPopularItems();
  const evictedAt = Date.now();

  // Every answer to a request sent δ after the job's end is the new ranking, on both stacks.
  const freshMs = config().cache.instance.freshMs;
  await sleep(freshMs);
  for (const base of [stack.baseUrl, second.baseUrl, stack.baseUrl, second.baseUrl]) {
    expect(Date.now()).toBeGreaterThanOrEqual(evictedAt + freshMs);
    expect(await popular(base)).toEqual([
      { rank: 1, itemId: 2, name: 'Latte', price: 5000, soldQuantity: 9 },
      { rank: 2, itemId: 1, name: 'Americano', price: 4500, soldQuantity: 7 },
    ]);
  }
});
