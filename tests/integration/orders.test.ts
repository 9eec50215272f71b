import { problem, toAppError } from '../../lib/platform/http';
import { LockLostError } from '../../lib/platform/lock';
import { payOrder } from '../../lib/points/orders';
import { chargePoints } from '../../lib/points/points';
import { useTestDatabase } from '../support/database';
import { bodyOf } from '../support/events';
import { answer, callCharge, callPay, expectProblem, freshRows, idempotencyKey, pointsState, stalledHolder } from '../support/points';

/** POST /orders against real Redis and PostgreSQL (through the Data API). */

const t = useTestDatabase();
const fresh = freshRows(() => t.pg);

it('takes stock and points at database prices and writes the order, its lines and a history row', async () => {
  const userId = await fresh.user(10_000);
  const [latte, bagel] = [await fresh.item(4500, 10), await fresh.item(300, 5)];
  // Request order (bagel first) is kept in the reply; a client's price is ignored.
  const result = await callPay(userId, {
    items: [
      { itemId: bagel, quantity: 3, unitPrice: 1 },
      { itemId: latte, quantity: 1 },
    ],
  });
  expect(result.statusCode).toBe(201);
  const order = bodyOf<{ orderId: number }>(result);
  expect(order).toEqual({
    orderId: expect.any(Number),
    userId,
    status: 'PAID',
    totalAmount: 5400,
    balance: 4600,
    items: [
      { itemId: bagel, quantity: 3, unitPrice: 300 },
      { itemId: latte, quantity: 1, unitPrice: 4500 },
    ],
  });
  const state = await pointsState(t.pg, userId, [latte, bagel]);
  expect(state.user.balance).toBe(4600);
  expect(state.items).toEqual([
    { id: latte, stock: 9 },
    { id: bagel, stock: 2 },
  ]);
  expect(state.orders).toEqual([{ id: order.orderId, status: 'PAID', total_amount: 5400, lines: 2 }]);
  expect(state.history).toEqual([{ id: expect.any(Number), type: 'PAY', amount: -5400, balance_after: 4600, order_id: order.orderId }]);
  const { rows: lines } = await t.pg.query('SELECT item_id::int, quantity, unit_price::int FROM order_items WHERE order_id = $1 ORDER BY item_id', [
    order.orderId,
  ]);
  expect(lines).toEqual([
    { item_id: latte, quantity: 1, unit_price: 4500 },
    { item_id: bagel, quantity: 3, unit_price: 300 },
  ]);
});

it('takes the whole balance and the whole stock', async () => {
  const userId = await fresh.user(500);
  const item = await fresh.item(100, 5);
  expect(bodyOf(await callPay(userId, { items: [{ itemId: item, quantity: 5 }] }))).toMatchObject({ balance: 0, totalAmount: 500 });
  expect((await pointsState(t.pg, userId, [item])).items).toEqual([{ id: item, stock: 0 }]);
});

it('rejects bad bodies with 400, changing nothing', async () => {
  const userId = await fresh.user(1000);
  const item = await fresh.item(10, 100);
  const before = await pointsState(t.pg, userId, [item]);
  const line = (itemId: unknown, quantity: unknown) => ({ itemId, quantity });
  const badBodies: unknown[] = [
    {},
    { items: [] },
    { items: Array.from({ length: 21 }, (_, i) => line(item + 1000 + i, 1)) },
    { items: [line(item, 1), line(item, 2)] },
    { items: [line(item, 0)] },
    { items: [line(item, 101)] },
    { items: [line(item, 1.5)] },
    { items: [line(item, '1')] },
    { items: [line(0, 1)] },
    { items: [line(-1, 1)] },
    { items: [line(String(item), 1)] },
    { items: [line(9007199254740992, 1)] },
    { items: [{ itemId: item }] },
    { items: { itemId: item, quantity: 1 } },
    'not json',
  ];
  for (const body of badBodies) expectProblem(await callPay(userId, body), 400, 'VALIDATION_ERROR');
  expectProblem(await callPay(userId, { items: [line(item, 1)] }, idempotencyKey('bad key')), 400, 'VALIDATION_ERROR');
  expect(await pointsState(t.pg, userId, [item])).toEqual(before);
});

it('takes up to 20 lines of up to 100 each', async () => {
  const userId = await fresh.user(1_000_000);
  const items: number[] = [];
  for (let i = 0; i < 20; i++) items.push(await fresh.item(1, 100));
  const result = await callPay(userId, { items: items.map((itemId) => ({ itemId, quantity: 100 })) });
  expect(result.statusCode).toBe(201);
  expect(bodyOf(result)).toMatchObject({ totalAmount: 2000, balance: 998_000 });
});

it('is 404 for an unknown item or a caller without a users row, and 401 without a token, changing nothing', async () => {
  const userId = await fresh.user(1000);
  const item = await fresh.item(10, 100);
  const before = await pointsState(t.pg, userId, [item]);
  const unknown = await callPay(userId, { items: [{ itemId: item, quantity: 1 }, { itemId: 987_654_321, quantity: 1 }] }, idempotencyKey('k'));
  expectProblem(unknown, 404, 'NOT_FOUND');
  expect(bodyOf(unknown)).toMatchObject({ detail: expect.stringContaining('987654321') });
  expect(await pointsState(t.pg, userId, [item])).toEqual(before);

  const stranger = fresh.id();
  expectProblem(await callPay(stranger, { items: [{ itemId: item, quantity: 1 }] }), 404, 'NOT_FOUND');
  expectProblem(await callPay(undefined, { items: [{ itemId: item, quantity: 1 }] }), 401, 'UNAUTHORIZED');
  expect(await pointsState(t.pg, stranger, [item])).toMatchObject({ orders: [], history: [], items: before.items });
});

it('is 409 OUT_OF_STOCK when any line asks for more than the stock, changing nothing', async () => {
  const userId = await fresh.user(100_000);
  const [plenty, scarce] = [await fresh.item(10, 100), await fresh.item(10, 2)];
  const before = await pointsState(t.pg, userId, [plenty, scarce]);
  const result = await callPay(userId, { items: [{ itemId: plenty, quantity: 5 }, { itemId: scarce, quantity: 3 }] }, idempotencyKey('k'));
  expectProblem(result, 409, 'OUT_OF_STOCK');
  expect(bodyOf(result)).toMatchObject({ detail: `item ${scarce} has 2 in stock, 3 ordered` });
  expect(await pointsState(t.pg, userId, [plenty, scarce])).toEqual(before);
});

it('is 409 INSUFFICIENT_BALANCE for an order costing more than the balance, changing nothing', async () => {
  const userId = await fresh.user(300);
  const item = await fresh.item(400, 10);
  const before = await pointsState(t.pg, userId, [item]);
  const result = await callPay(userId, { items: [{ itemId: item, quantity: 3 }] }, idempotencyKey('k'));
  expectProblem(result, 409, 'INSUFFICIENT_BALANCE');
  expect(bodyOf(result)).toMatchObject({ detail: 'balance 300 is less than 1200' });
  expect(await pointsState(t.pg, userId, [item])).toEqual(before);
});

describe('Idempotency-Key', () => {
  it('replays the 201 with Idempotent-Replayed, and is 422 for another body', async () => {
    const userId = await fresh.user(1000);
    const item = await fresh.item(100, 10);
    const body = { items: [{ itemId: item, quantity: 2 }] };
    const first = await callPay(userId, body, idempotencyKey('order-1'));
    const again = await callPay(userId, body, idempotencyKey('order-1'));
    expect(answer(first)).toEqual({ status: 201, replayed: false });
    expect(answer(again)).toEqual({ status: 201, replayed: true });
    expect(again.body).toBe(first.body);
    expectProblem(await callPay(userId, { items: [{ itemId: item, quantity: 3 }] }, idempotencyKey('order-1')), 422, 'IDEMPOTENCY_KEY_REUSED');
    const state = await pointsState(t.pg, userId, [item]);
    expect(state.orders).toHaveLength(1);
    expect(state.items).toEqual([{ id: item, stock: 8 }]);
    expect(state.user.balance).toBe(800);
  });

  it('scopes keys to the route: the same key on a charge is another key', async () => {
    const userId = await fresh.user(1000);
    const item = await fresh.item(100, 10);
    expect((await callPay(userId, { items: [{ itemId: item, quantity: 1 }] }, idempotencyKey('both'))).statusCode).toBe(201);
    expect(answer(await callCharge(userId, { amount: 50 }, idempotencyKey('both')))).toEqual({ status: 200, replayed: false });
    expect((await pointsState(t.pg, userId)).user.balance).toBe(950);
  });

  it('stores only successes: after INSUFFICIENT_BALANCE and a charge, the same key pays', async () => {
    const userId = await fresh.user(100);
    const item = await fresh.item(150, 10);
    const body = { items: [{ itemId: item, quantity: 1 }] };
    expectProblem(await callPay(userId, body, idempotencyKey('later')), 409, 'INSUFFICIENT_BALANCE');
    await callCharge(userId, { amount: 100 });
    const paid = await callPay(userId, body, idempotencyKey('later'));
    expect(answer(paid)).toEqual({ status: 201, replayed: false });
    expect(bodyOf(paid)).toMatchObject({ balance: 50 });
  });
});

describe('under concurrency', () => {
  it('orders of many users for the same items, in opposite line orders, neither deadlock nor oversell', async () => {
    const [a, b, c] = [await fresh.item(10, 1000), await fresh.item(20, 1000), await fresh.item(30, 25)];
    const users: number[] = [];
    for (let i = 0; i < 10; i++) users.push(await fresh.user(100_000));
    const forward = { items: [a, b, c].map((itemId) => ({ itemId, quantity: 1 })) };
    const backward = { items: [c, b, a].map((itemId) => ({ itemId, quantity: 1 })) };
    // 40 orders for item c, which has 25: exactly 25 succeed.
    const results = await Promise.all(users.flatMap((userId) => [forward, backward, forward, backward].map((body) => callPay(userId, body))));
    const paid = results.filter((r) => r.statusCode === 201);
    const refused = results.filter((r) => r.statusCode !== 201);
    expect(paid).toHaveLength(25);
    for (const r of refused) expectProblem(r, 409, 'OUT_OF_STOCK');
    const { rows } = await t.pg.query('SELECT id::int, stock FROM items WHERE id = ANY($1::bigint[]) ORDER BY id', [[a, b, c]]);
    expect(rows).toEqual([
      { id: a, stock: 975 },
      { id: b, stock: 975 },
      { id: c, stock: 0 },
    ]);
    const { rows: sums } = await t.pg.query(
      'SELECT count(*)::int AS orders, sum(total_amount)::int AS total FROM orders WHERE user_id = ANY($1::bigint[])',
      [users],
    );
    expect(sums).toEqual([{ orders: 25, total: 25 * 60 }]);
  });
});

it('refuses the payment of a holder whose lease expired once the next holder has written, taking no stock', async () => {
  const userId = await fresh.user(1000);
  const item = await fresh.item(100, 10);
  const a = await stalledHolder(t.db, (deps) => payOrder({ userId, items: [{ itemId: item, quantity: 2 }] }, deps));

  await chargePoints({ userId, amount: 5 }); // B, after A's lease ran out

  a.resume();
  const error = await a.outcome.catch((thrown: unknown) => thrown);
  expect(error).toBeInstanceOf(LockLostError);
  expectProblem(problem(toAppError(error)), 409, 'LOCK_TIMEOUT');
  const state = await pointsState(t.pg, userId, [item]);
  expect(state.user.balance).toBe(1005);
  expect(state.items).toEqual([{ id: item, stock: 10 }]);
  expect(state.orders).toEqual([]);
});
