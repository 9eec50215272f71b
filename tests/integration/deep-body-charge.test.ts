import { useTestDatabase } from '../support/database';
import { bodyOf } from '../support/events';
import { callCharge, callPay, freshRows, idempotencyKey } from '../support/points';

/** The report: a keyed charge with a 100,000-deep unknown field answered 500. */

const t = useTestDatabase();
const fresh = freshRows(() => t.pg);
const DEPTH = 100_000;
const pad = `${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}`;

it('charges a keyed request whose body has a 100,000-deep unknown field, and replays it', async () => {
  const userId = await fresh.user(100);
  const body = `{"amount":3,"pad":${pad}}`;
  const first = await callCharge(userId, body, idempotencyKey('deep-charge'));
  expect(first.statusCode).toBe(200);
  expect(bodyOf(first)).toMatchObject({ userId, charged: 3, balance: 103 });
  const again = await callCharge(userId, body, idempotencyKey('deep-charge'));
  expect(again.statusCode).toBe(200);
  expect(again.headers?.['idempotent-replayed']).toBe('true');
  const other = await callCharge(userId, `{"amount":3,"pad":[${pad}]}`, idempotencyKey('deep-charge'));
  expect(other.statusCode).toBe(422);
});

it('pays a keyed order whose body has a 100,000-deep unknown field', async () => {
  const userId = await fresh.user(1000);
  const itemId = await fresh.item(10, 5);
  const result = await callPay(userId, `{"items":[{"itemId":${itemId},"quantity":1,"pad":${pad}}]}`, idempotencyKey('deep-pay'));
  expect(result.statusCode).toBe(201);
});

it('is a 400, not a 5xx, when the deep value is where a known field goes', async () => {
  const userId = await fresh.user(100);
  const result = await callCharge(userId, `{"amount":${pad}}`, idempotencyKey('deep-bad'));
  expect(result.statusCode).toBe(400);
});
