import { useOfflineStack } from '../support/offline';
import { insertItem, insertUser } from '../support/points';

/** The Points routes over HTTP, through serverless-offline and the same bundles as in AWS. */

const { database: t, request } = useOfflineStack();

/** With an Idempotency-Key when given; answers Idempotent-Replayed and Retry-After too. */
const send = (method: string, path: string, userId: number | undefined, body?: string | object, idempotencyKey?: string) =>
  request(method, path, userId, {
    body,
    headers: idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey },
    report: { replayed: 'idempotent-replayed', retryAfter: 'retry-after' },
  });

const problemOf = (status: number, code: string) => ({
  status,
  type: expect.stringContaining('application/problem+json'),
  body: expect.objectContaining({ type: 'about:blank', status, code }),
});

it('charges, reads the balance and pays for an order', async () => {
  await insertUser(t.pg, 1, 1000);
  await insertItem(t.pg, 1, 300, 10);

  const charged = await send('POST', '/points/charge', 1, { amount: 500 });
  expect(charged).toMatchObject({ status: 200, body: { userId: 1, charged: 500, balance: 1500, historyId: expect.any(Number) } });
  expect(await send('GET', '/points', 1)).toMatchObject({ status: 200, body: { userId: 1, balance: 1500 } });

  const order = await send('POST', '/orders', 1, { items: [{ itemId: 1, quantity: 2 }] });
  expect(order).toMatchObject({
    status: 201,
    type: expect.stringContaining('application/json'),
    body: {
      orderId: expect.any(Number),
      userId: 1,
      status: 'PAID',
      totalAmount: 600,
      balance: 900,
      items: [{ itemId: 1, quantity: 2, unitPrice: 300 }],
    },
  });
  const { rows } = await t.pg.query('SELECT stock FROM items WHERE id = 1');
  expect(rows).toEqual([{ stock: 8 }]);
});

it('replays a repeated Idempotency-Key with Idempotent-Replayed and charges once', async () => {
  await insertUser(t.pg, 2, 0);
  const first = await send('POST', '/points/charge', 2, { amount: 40 }, 'e2e-key-1');
  const again = await send('POST', '/points/charge', 2, { amount: 40 }, 'e2e-key-1');
  expect(first).toMatchObject({ status: 200, replayed: null });
  expect(again).toMatchObject({ status: 200, replayed: 'true', body: first.body });
  expect(await send('POST', '/points/charge', 2, { amount: 41 }, 'e2e-key-1')).toMatchObject(problemOf(422, 'IDEMPOTENCY_KEY_REUSED'));
  expect((await send('GET', '/points', 2)).body).toEqual({ userId: 2, balance: 40 });
});

it('answers 409, 400 and 401 as problem+json', async () => {
  await insertUser(t.pg, 3, 100);
  await insertItem(t.pg, 3, 500, 10);
  expect(await send('POST', '/orders', 3, { items: [{ itemId: 3, quantity: 1 }] })).toMatchObject(problemOf(409, 'INSUFFICIENT_BALANCE'));
  expect(await send('POST', '/points/charge', 3, { amount: 0 })).toMatchObject(problemOf(400, 'VALIDATION_ERROR'));
  expect(await send('POST', '/points/charge', 3, '{"amount":')).toMatchObject(problemOf(400, 'VALIDATION_ERROR'));
  expect(await send('POST', '/points/charge', 3, { amount: 5 }, 'no spaces allowed')).toMatchObject(problemOf(400, 'VALIDATION_ERROR'));
  expect(await send('POST', '/points/charge', undefined, { amount: 5 })).toMatchObject(problemOf(401, 'UNAUTHORIZED'));
  expect(await send('GET', '/points', undefined)).toMatchObject(problemOf(401, 'UNAUTHORIZED'));
  expect((await send('GET', '/points', 3)).body).toEqual({ userId: 3, balance: 100 });
});

it('keeps the balance exact under a concurrent burst of charges and payments', async () => {
  await insertUser(t.pg, 4, 10_000);
  await insertItem(t.pg, 4, 70, 1000);
  const answers = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      i % 2 === 0 ? send('POST', '/points/charge', 4, { amount: 100 }) : send('POST', '/orders', 4, { items: [{ itemId: 4, quantity: 1 }] }),
    ),
  );
  const charged = answers.filter((a) => a.status === 200).length;
  const paid = answers.filter((a) => a.status === 201).length;
  for (const a of answers.filter((a) => a.status >= 300)) {
    expect(a).toMatchObject({ ...problemOf(409, 'LOCK_TIMEOUT'), retryAfter: '1' });
  }
  expect(charged + paid).toBeGreaterThanOrEqual(36);
  expect((await send('GET', '/points', 4)).body).toEqual({ userId: 4, balance: 10_000 + 100 * charged - 70 * paid });
  const { rows } = await t.pg.query('SELECT stock FROM items WHERE id = 4');
  expect(rows).toEqual([{ stock: 1000 - paid }]);
});
