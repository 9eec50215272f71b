import { setTimeout as sleep } from 'node:timers/promises';
import { handler as evictPopularItems } from '../../functions/evict-popular-items';
import { config } from '../../lib/platform/config';
import { addDays, businessDate } from '../../lib/platform/business-time';
import { useOfflineStack } from '../support/offline';
import { sellYesterday } from '../support/sales';

/**
 * GET /items/popular over HTTP through serverless-offline (Asia/Seoul, the
 * default zone). The eviction runs in this process, on the same database and
 * Redis key prefix as the stack, as the scheduler would run it at midnight.
 */

const { database: t, request } = useOfflineStack();

beforeAll(async () => {
  await t.pg.query(`INSERT INTO items (id, name, price, stock) VALUES (1, 'Americano', 4500, 100), (2, 'Latte', 5000, 100)`);
});

const get = (path: string, userId?: number) => request('GET', path, userId);


it('serves the default ranking from the cache until the eviction, then the new one', async () => {
  await sellYesterday(t.pg, 2, 4);
  const today = businessDate(new Date(), 'Asia/Seoul');

  const first = await get('/items/popular', 1);
  expect(first).toEqual({
    status: 200,
    type: expect.stringContaining('application/json'),
    body: { days: 3, limit: 5, from: addDays(today, -3), to: addDays(today, -1), items: [{ rank: 1, itemId: 2, name: 'Latte', price: 5000, soldQuantity: 4 }] },
  });

  await sellYesterday(t.pg, 1, 9);
  expect((await get('/items/popular?days=3&limit=5', 2)).body).toEqual(first.body);

  await evictPopularItems();
  // The stack holds the old ranking in its memory for at most δ after it last checked (the contract's bound).
  await sleep(config().cache.instance.freshMs);
  expect(await get('/items/popular', 1)).toMatchObject({
    status: 200,
    body: {
      items: [
        { rank: 1, itemId: 1, name: 'Americano', price: 4500, soldQuantity: 9 },
        { rank: 2, itemId: 2, name: 'Latte', price: 5000, soldQuantity: 4 },
      ],
    },
  });
});

it('answers problem+json: 400 for a bad days or limit, 401 without a token', async () => {
  const cases: Array<[string, number | undefined, number, string]> = [
    ['/items/popular?days=31', 1, 400, 'VALIDATION_ERROR'],
    ['/items/popular?limit=05', 1, 400, 'VALIDATION_ERROR'],
    ['/items/popular?days=1&days=2', 1, 400, 'VALIDATION_ERROR'],
    ['/items/popular', undefined, 401, 'UNAUTHORIZED'],
  ];
  for (const [path, userId, status, code] of cases) {
    expect(await get(path, userId)).toEqual({ status, type: expect.stringContaining('application/problem+json'), body: expect.objectContaining({ status, code }) });
  }
});
