import { setTimeout as sleep } from 'node:timers/promises';
import { startOfflineStack, STACK_TIMEOUT_MS, useOfflineStack, type OfflineStack } from '../support/offline';
import { createLocalToken } from '../../lib/platform/local-token';
import { insertItem, insertUser } from '../support/points';

/**
 * Queued point requests over HTTP: the stack npm start runs (serverless-offline,
 * the Kinesis emulator, and the poller that invokes apply-point-requests
 * through the Lambda port), as a client sees it.
 */

const file = useOfflineStack();
const { database: t, request } = file;

type Answer = { status: number; body: Record<string, unknown>; location: string | null; applied: string | null; replayed: string | null };

const queue = (path: string, userId: number, body: object, headers: Record<string, string> = {}) =>
  request(
    'POST',
    path,
    userId,
    { body, headers: { prefer: 'respond-async', ...headers }, report: { location: 'location', applied: 'preference-applied', replayed: 'idempotent-replayed' } },
  ) as Promise<Answer>;

/** Polls GET /points/requests/{id} on `baseUrl` until the request is no longer PENDING. */
async function outcome(baseUrl: string, userId: number, requestId: string) {
  const token = await createLocalToken(userId);
  for (;;) {
    const response = await fetch(`${baseUrl}/points/requests/${requestId}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await response.json()) as { status: string; statusCode?: number; result?: Record<string, unknown> };
    if (response.status === 200 && body.status !== 'PENDING') return body;
    if (response.status !== 200) throw new Error(`GET ${requestId}: ${response.status} ${JSON.stringify(body)}`);
    await sleep(50);
  }
}

it('answers 202 PENDING with Location and Preference-Applied, then DONE with the direct body', async () => {
  await insertUser(t.pg, 1, 100);
  await insertItem(t.pg, 1, 40, 5);
  const charge = await queue('/points/charge', 1, { amount: 60 });
  expect(charge).toMatchObject({ status: 202, body: { requestId: expect.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), status: 'PENDING' }, applied: 'respond-async' });
  expect(charge.location).toBe(`/points/requests/${charge.body.requestId}`);
  const order = await queue('/orders', 1, { items: [{ itemId: 1, quantity: 4 }] });
  expect(order.status).toBe(202);

  expect(await outcome(file.baseUrl, 1, charge.body.requestId as string)).toEqual({
    requestId: charge.body.requestId,
    status: 'DONE',
    statusCode: 200,
    result: { userId: 1, charged: 60, balance: 160, historyId: expect.any(Number) },
  });
  expect(await outcome(file.baseUrl, 1, order.body.requestId as string)).toMatchObject({
    status: 'DONE',
    statusCode: 201,
    result: { userId: 1, status: 'PAID', totalAmount: 160, balance: 0, items: [{ itemId: 1, quantity: 4, unitPrice: 40 }] },
  });
  const broke = await queue('/orders', 1, { items: [{ itemId: 1, quantity: 1 }] });
  expect(await outcome(file.baseUrl, 1, broke.body.requestId as string)).toMatchObject({
    status: 'REJECTED',
    statusCode: 409,
    result: { status: 409, code: 'INSUFFICIENT_BALANCE' },
  });
  expect(await request('GET', '/points', 1)).toMatchObject({ status: 200, body: { balance: 0 } });
});

it('GET is 404 for another user and an unknown id, 400 for a malformed one; a bad body is 400 and queues nothing', async () => {
  await insertUser(t.pg, 2, 0);
  await insertUser(t.pg, 3, 0);
  const accepted = await queue('/points/charge', 2, { amount: 5 });
  await outcome(file.baseUrl, 2, accepted.body.requestId as string);
  expect(await request('GET', `/points/requests/${accepted.body.requestId}`, 3)).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
  expect(await request('GET', '/points/requests/never-was', 2)).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
  expect(await request('GET', `/points/requests/${'x'.repeat(65)}`, 2)).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR' } });
  expect(await queue('/points/charge', 2, { amount: 'five' })).toMatchObject({ status: 400 });
  expect((await request('GET', `/points/requests/${accepted.body.requestId}`)).status).toBe(401);
});

it('an Idempotency-Key gives the same requestId (replayed) and applies once; another body is a 422', async () => {
  await insertUser(t.pg, 4, 0);
  const first = await queue('/points/charge', 4, { amount: 7 }, { 'idempotency-key': 'e2e-q' });
  const again = await queue('/points/charge', 4, { amount: 7 }, { 'idempotency-key': 'e2e-q' });
  expect(again).toMatchObject({ status: 202, replayed: 'true', body: { requestId: first.body.requestId } });
  expect(await queue('/points/charge', 4, { amount: 8 }, { 'idempotency-key': 'e2e-q' })).toMatchObject({ status: 422, body: { code: 'IDEMPOTENCY_KEY_REUSED' } });
  await outcome(file.baseUrl, 4, first.body.requestId as string);
  const last = await queue('/points/charge', 4, { amount: 1 });
  expect(await outcome(file.baseUrl, 4, last.body.requestId as string)).toMatchObject({ result: { balance: 8 } });
});

describe('two stacks side by side (one database, one Redis, one stream)', () => {
  let second: OfflineStack | undefined;
  beforeAll(async () => {
    // The second finds the first's emulator on its KINESIS_PORT, as a second npm start would on 4568.
    second = await startOfflineStack({ KINESIS_PORT: file.kinesisPort });
  }, STACK_TIMEOUT_MS);
  afterAll(async () => {
    await second?.stop();
  });

  it('applies one user’s requests in the order they were accepted, whichever stack accepted them', async () => {
    await insertUser(t.pg, 5, 0);
    const ids: { baseUrl: string; id: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const stack = i % 2 === 0 ? file.baseUrl : second!.baseUrl;
      const token = await createLocalToken(5);
      const response = await fetch(`${stack}/points/charge`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, prefer: 'respond-async', 'content-type': 'application/json' },
        body: JSON.stringify({ amount: 10 ** i }),
      });
      expect(response.status).toBe(202);
      ids.push({ baseUrl: stack, id: ((await response.json()) as { requestId: string }).requestId });
    }
    const balances = [];
    for (const { baseUrl, id } of ids) balances.push((await outcome(baseUrl, 5, id)).result!.balance);
    expect(balances).toEqual([1, 11, 111, 1111, 11111, 111111]);
  });
});
