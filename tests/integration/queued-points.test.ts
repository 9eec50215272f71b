import fc from 'fast-check';
import { bodyOf } from '../support/events';
import { useTestDatabase } from '../support/database';
import {
  callPointRequest,
  invokeConsumer,
  queueCharge,
  queuePay,
  requestIdOf,
  settled,
  settledAll,
  useQueueStream,
  type Settled,
} from '../support/kinesis';
import { answer, callCharge, callPay, expectProblem, freshRows, idempotencyKey, pointsState } from '../support/points';

/**
 * Queued point requests (Prefer: respond-async) with the real emulator,
 * Redis and PostgreSQL: the accepting handlers put records on a kinesis-local
 * stream of the file's own; the local stack's poller hands them to the real
 * consumer handler, as the event source mapping would.
 */

const stream = useQueueStream();
const t = useTestDatabase();
const fresh = freshRows(() => t.pg);

const MAX_BALANCE = 100_000_000;

/** Balance, history count and each item's stock: for exact end-state checks. */
async function balanceOf(userId: number): Promise<number> {
  const { rows } = await t.pg.query('SELECT point_balance::int AS b FROM users WHERE id = $1', [userId]);
  return rows[0].b;
}

async function stockOf(itemId: number): Promise<number> {
  const { rows } = await t.pg.query('SELECT stock FROM items WHERE id = $1', [itemId]);
  return rows[0].stock;
}

describe('accepting a queued request', () => {
  stream.usePoller();

  it('answers 202 with the request id, Location and Preference-Applied, then DONE with the body a direct charge returns', async () => {
    const userId = await fresh.user(500);
    const accepted = await queueCharge(userId, { amount: 700 });
    expect(accepted.statusCode).toBe(202);
    const requestId = requestIdOf(accepted);
    expect(bodyOf(accepted)).toEqual({ requestId, status: 'PENDING' });
    expect(requestId).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(accepted.headers).toMatchObject({ location: `/points/requests/${requestId}`, 'preference-applied': 'respond-async' });

    const outcome = await settled(userId, requestId);
    expect(outcome).toEqual({
      requestId,
      status: 'DONE',
      statusCode: 200,
      result: { userId, charged: 700, balance: 1200, historyId: expect.any(Number) },
    });
    expect(await balanceOf(userId)).toBe(1200);
  });

  it('applies an order with the same outcome as a direct one: 201 body, stock taken, or REJECTED 409/404', async () => {
    const userId = await fresh.user(10_000);
    const item = await fresh.item(3000, 2);
    const paid = await settled(userId, requestIdOf(await queuePay(userId, { items: [{ itemId: item, quantity: 2 }] })));
    expect(paid).toMatchObject({
      status: 'DONE',
      statusCode: 201,
      result: { orderId: expect.any(Number), userId, status: 'PAID', totalAmount: 6000, balance: 4000, items: [{ itemId: item, quantity: 2, unitPrice: 3000 }] },
    });
    const short = await settled(userId, requestIdOf(await queuePay(userId, { items: [{ itemId: item, quantity: 1 }] })));
    expect(short).toMatchObject({ status: 'REJECTED', statusCode: 409, result: { status: 409, code: 'OUT_OF_STOCK', type: 'about:blank' } });
    const missing = await settled(userId, requestIdOf(await queuePay(userId, { items: [{ itemId: fresh.id(), quantity: 1 }] })));
    expect(missing).toMatchObject({ status: 'REJECTED', statusCode: 404, result: { code: 'NOT_FOUND' } });
    const poor = await fresh.item(5000, 10);
    const broke = await settled(userId, requestIdOf(await queuePay(userId, { items: [{ itemId: poor, quantity: 1 }] })));
    expect(broke).toMatchObject({ status: 'REJECTED', statusCode: 409, result: { code: 'INSUFFICIENT_BALANCE', detail: 'balance 4000 is less than 5000' } });
    const over = await settled(userId, requestIdOf(await queueCharge(userId, { amount: 1_000_000 })));
    expect(over).toMatchObject({ status: 'DONE', statusCode: 200 });
    await t.pg.query('UPDATE users SET point_balance = $2 WHERE id = $1', [userId, MAX_BALANCE - 10]);
    const capped = await settled(userId, requestIdOf(await queueCharge(userId, { amount: 11 })));
    expect(capped).toMatchObject({ status: 'REJECTED', statusCode: 409, result: { code: 'BALANCE_LIMIT_EXCEEDED' } });
    const nobody = fresh.id();
    const noAccount = await settled(nobody, requestIdOf(await queueCharge(nobody, { amount: 1 })));
    expect(noAccount).toMatchObject({ status: 'REJECTED', statusCode: 404, result: { code: 'NOT_FOUND' } });
    expect(await stockOf(item)).toBe(0);
    expect(await stockOf(poor)).toBe(10);
  });

  it('checks the request first: a bad body, key or token is answered at once and nothing is queued', async () => {
    const userId = await fresh.user(100);
    expectProblem(await queueCharge(userId, { amount: 0 }), 400, 'VALIDATION_ERROR');
    expectProblem(await queueCharge(userId, { amount: 5 }, { 'Idempotency-Key': 'has space' }), 400, 'VALIDATION_ERROR');
    expectProblem(await queuePay(userId, { items: [] }), 400, 'VALIDATION_ERROR');
    expect((await queueCharge(undefined as unknown as number, { amount: 5 })).statusCode).toBe(401);
    // A queued request after them is applied alone.
    await settled(userId, requestIdOf(await queueCharge(userId, { amount: 1 })));
    expect((await pointsState(t.pg, userId)).history).toHaveLength(1);
  });

  it('GET: only the owner sees a request; unknown ids are 404, malformed ones 400', async () => {
    const userId = await fresh.user(0);
    const other = await fresh.user(0);
    const requestId = requestIdOf(await queueCharge(userId, { amount: 3 }));
    await settled(userId, requestId);
    expectProblem(await callPointRequest(other, requestId), 404, 'NOT_FOUND');
    expectProblem(await callPointRequest(userId, 'nope-never-accepted'), 404, 'NOT_FOUND');
    expectProblem(await callPointRequest(userId, 'a'.repeat(65)), 400, 'VALIDATION_ERROR');
    expectProblem(await callPointRequest(userId, 'bad.id'), 400, 'VALIDATION_ERROR');
    expect((await callPointRequest(undefined, requestId)).statusCode).toBe(401);
  });

  it('Idempotency-Key: the same key and body get the same request id (replayed) and apply once; another body is a 422', async () => {
    const userId = await fresh.user(0);
    const key = idempotencyKey('queued-key-1');
    const first = await queueCharge(userId, { amount: 40 }, key);
    const again = await queueCharge(userId, { amount: 40 }, key);
    expect(answer(first)).toEqual({ status: 202, replayed: false });
    expect(answer(again)).toEqual({ status: 202, replayed: true });
    expect(requestIdOf(again)).toBe(requestIdOf(first));
    expectProblem(await queueCharge(userId, { amount: 41 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    await settled(userId, requestIdOf(first));
    // Both records were applied by now or are no-ops: a later request comes after them in the stream.
    await settled(userId, requestIdOf(await queueCharge(userId, { amount: 1 })));
    expect(await balanceOf(userId)).toBe(41);
    // The key is shared with the direct path: replayed there, never applied twice.
    const direct = await callCharge(userId, { amount: 40 }, key);
    expect(answer(direct)).toEqual({ status: 200, replayed: true });
    expect(bodyOf(direct)).toEqual((await settled(userId, requestIdOf(first))).result);
    expectProblem(await callCharge(userId, { amount: 39 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await balanceOf(userId)).toBe(41);
  });

  it('a key first used directly: the queued repeat replays the direct reply; another body is a 422, at once or when applied', async () => {
    const userId = await fresh.user(0);
    const direct = await callCharge(userId, { amount: 25 }, idempotencyKey('direct-first'));
    expect(direct.statusCode).toBe(200);
    const repeated = await queueCharge(userId, { amount: 25 }, idempotencyKey('direct-first'));
    expect(repeated.statusCode).toBe(202);
    const replay = await settled(userId, requestIdOf(repeated));
    expect(replay).toMatchObject({ status: 'DONE', statusCode: 200, result: bodyOf(direct) });
    const reused = await settled(userId, requestIdOf(await queuePay(userId, { items: [{ itemId: 1, quantity: 1 }] }, idempotencyKey('direct-first'))));
    // Another route is another scope: this one is simply an order of an unknown item.
    expect(reused).toMatchObject({ status: 'REJECTED', statusCode: 404 });
    // The queued repeat is known to Redis now: another body is refused at once.
    expectProblem(await queueCharge(userId, { amount: 26 }, idempotencyKey('direct-first')), 422, 'IDEMPOTENCY_KEY_REUSED');
    // A key only the direct path knew, queued with another body: refused when applied.
    expect((await callCharge(userId, { amount: 5 }, idempotencyKey('direct-only'))).statusCode).toBe(200);
    const differs = await settled(userId, requestIdOf(await queueCharge(userId, { amount: 6 }, idempotencyKey('direct-only'))));
    expect(differs).toMatchObject({ status: 'REJECTED', statusCode: 422, result: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    expect(await balanceOf(userId)).toBe(30);
  });
});

describe('order', () => {
  stream.usePoller();

  it('applies each user’s requests in the order they were accepted, for many users at once', async () => {
    const users = await Promise.all(Array.from({ length: 20 }, () => fresh.user(0)));
    const item = await fresh.item(1, 1_000_000);
    // Per user: charges and orders that only succeed in this order
    // (each order spends exactly what the charges before it brought).
    const plan = (i: number) => [
      { kind: 'charge', amount: 10 + i },
      { kind: 'pay', quantity: 10 + i },
      { kind: 'charge', amount: 5 },
      { kind: 'charge', amount: 7 },
      { kind: 'pay', quantity: 12 },
      { kind: 'pay', quantity: 1 },
    ] as const;
    const ids = await Promise.all(
      users.map(async (userId, i) => {
        const sent: string[] = [];
        for (const step of plan(i)) {
          const result = step.kind === 'charge'
            ? await queueCharge(userId, { amount: step.amount })
            : await queuePay(userId, { items: [{ itemId: item, quantity: step.quantity }] });
          expect(result.statusCode).toBe(202);
          sent.push(requestIdOf(result));
        }
        return sent;
      }),
    );
    for (const [i, userId] of users.entries()) {
      const outcomes = await settledAll(userId, ids[i]!);
      expect(outcomes.map((o) => [o.status, o.statusCode, o.result.balance])).toEqual([
        ['DONE', 200, 10 + i],
        ['DONE', 201, 0],
        ['DONE', 200, 5],
        ['DONE', 200, 12],
        ['DONE', 201, 0],
        ['REJECTED', 409, undefined],
      ]);
      expect(await balanceOf(userId)).toBe(0);
    }
    expect(await stockOf(item)).toBe(1_000_000 - users.reduce((sum, _, i) => sum + 10 + i + 12, 0));
  });
});

describe('outcomes identical to a direct replay (model)', () => {
  stream.usePoller();

  type Command = { user: number; queued: boolean } & ({ kind: 'charge'; amount: number } | { kind: 'pay'; item: number; quantity: number });

  it('mixed queued and direct requests of several users end as the same requests applied one by one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            user: fc.integer({ min: 0, max: 2 }),
            queued: fc.boolean(),
            op: fc.oneof(
              fc.record({ kind: fc.constant('charge' as const), amount: fc.integer({ min: 1, max: 60 }) }),
              fc.record({ kind: fc.constant('pay' as const), item: fc.integer({ min: 0, max: 1 }), quantity: fc.integer({ min: 1, max: 4 }) }),
            ),
          }),
          { minLength: 1, maxLength: 25 },
        ),
        async (raw) => {
          const commands = raw.map(({ user, queued, op }) => ({ user, queued, ...op }) as Command);
          const users = [await fresh.user(20), await fresh.user(0), await fresh.user(100)];
          const items = [await fresh.item(7, 6), await fresh.item(30, 3)];
          const model = { balances: [20, 0, 100], stock: [6, 3] };
          const expected: { status: number; balance?: number }[] = [];
          for (const c of commands) {
            if (c.kind === 'charge') {
              model.balances[c.user]! += c.amount;
              expected.push({ status: 200, balance: model.balances[c.user] });
            } else {
              const price = c.item === 0 ? 7 : 30;
              if (model.stock[c.item]! < c.quantity) expected.push({ status: 409 });
              else if (model.balances[c.user]! < price * c.quantity) expected.push({ status: 409 });
              else {
                model.stock[c.item]! -= c.quantity;
                model.balances[c.user]! -= price * c.quantity;
                expected.push({ status: 201, balance: model.balances[c.user] });
              }
            }
          }
          // A direct request waits for the queued ones sent before it: "after" means
          // applied after, which the contract promises only among one user's queued
          // requests. Every user's, not only its own: users share the items' stock,
          // so another user's queued pay applied late would change this one's outcome.
          const pending = new Map<number, { id: string; index: number }[]>();
          const got: { status: number; balance?: number }[] = new Array(commands.length);
          const drain = async (user: number) => {
            for (const { id, index } of pending.get(user) ?? []) {
              const outcome: Settled = await settled(users[user]!, id);
              got[index] = { status: outcome.statusCode, ...(outcome.statusCode < 300 ? { balance: outcome.result.balance as number } : {}) };
            }
            pending.set(user, []);
          };
          for (const [index, c] of commands.entries()) {
            const userId = users[c.user]!;
            const body = c.kind === 'charge' ? { amount: c.amount } : { items: [{ itemId: items[c.item]!, quantity: c.quantity }] };
            if (c.queued) {
              const result = c.kind === 'charge' ? await queueCharge(userId, body) : await queuePay(userId, body);
              expect(result.statusCode).toBe(202);
              pending.set(c.user, [...(pending.get(c.user) ?? []), { id: requestIdOf(result), index }]);
            } else {
              await Promise.all([0, 1, 2].map(drain));
              const result = c.kind === 'charge' ? await callCharge(userId, body) : await callPay(userId, body);
              const reply = bodyOf<{ balance?: number }>(result);
              got[index] = { status: result.statusCode, ...(result.statusCode < 300 ? { balance: reply.balance } : {}) };
            }
          }
          await Promise.all([0, 1, 2].map(drain));
          expect(got).toEqual(expected);
          for (const [i, userId] of users.entries()) expect(await balanceOf(userId)).toBe(model.balances[i]);
          for (const [i, itemId] of items.entries()) expect(await stockOf(itemId)).toBe(model.stock[i]);
        },
      ),
      { numRuns: 8 },
    );
  }, 300_000);
});

describe('exactly once', () => {
  it('the same record arriving twice is applied once', async () => {
    const poller = stream.poller();
    const userId = await fresh.user(0);
    const accepted = await queueCharge(userId, { amount: 9 });
    const requestId = requestIdOf(accepted);
    await settled(userId, requestId);
    await poller.stop();
    // The very record again, byte for byte, as a producer's retry would put it.
    const record = await firstRecordOf(requestId);
    await stream.putRaw(String(userId), record);
    await stream.putRaw(String(userId), record);
    const again = stream.poller();
    const marker = await settled(userId, requestIdOf(await queueCharge(userId, { amount: 1 })));
    expect(marker.result.balance).toBe(10);
    await again.stop();
    expect(await balanceOf(userId)).toBe(10);
    expect((await pointsState(t.pg, userId)).history).toHaveLength(2);
  });

  it('a batch delivered twice (redelivery) changes nothing the second time', async () => {
    const userId = await fresh.user(0);
    const item = await fresh.item(2, 5);
    const event = await eventOf([
      { id: 'redelivered-1', user: userId, route: 'POST /points/charge', body: { amount: 30 } },
      { id: 'redelivered-2', user: userId, route: 'POST /orders', body: { items: [{ itemId: item, quantity: 5 }] } },
    ]);
    expect(await invokeConsumer(event)).toEqual({ batchItemFailures: [] });
    const after = await pointsState(t.pg, userId, [item]);
    expect(await invokeConsumer(event)).toEqual({ batchItemFailures: [] });
    expect(await pointsState(t.pg, userId, [item])).toEqual(after);
    expect(after.user.balance).toBe(20);
    expect(after.items).toEqual([{ id: item, stock: 0 }]);
    expect((await settled(userId, 'redelivered-2')).statusCode).toBe(201);
  });

  it('a consumer that dies after its commit and before its checkpoint: the next one redelivers, nothing is applied twice', async () => {
    const userId = await fresh.user(0);
    const checkpoints = new Map(stream.checkpoints);
    let crashed!: () => void;
    const crash = new Promise<void>((done) => (crashed = done));
    // Commits this user's batch, then never answers: the poller dies holding it.
    const dying = stream.poller({
      checkpoints,
      invoke: async (event) => {
        const response = await invokeConsumer(event);
        if (!event.Records.some((record) => record.kinesis.partitionKey === String(userId))) return response;
        crashed();
        return new Promise(() => {});
      },
    });
    const ids = [];
    for (const amount of [1, 2, 3]) ids.push(requestIdOf(await queueCharge(userId, { amount })));
    await crash;
    const applied = await balanceOf(userId);
    expect(applied).toBeGreaterThan(0);
    await dying.stop();
    const next = stream.poller({ checkpoints: new Map(checkpoints) });
    const outcomes = await settledAll(userId, ids);
    expect(outcomes.map((o) => o.result.balance)).toEqual([1, 3, 6]);
    await next.stop();
    expect(await balanceOf(userId)).toBe(6);
    expect((await pointsState(t.pg, userId)).history).toHaveLength(3);
  });
});

describe('a poison record', () => {
  it('is bisected out, retried and ended REJECTED 503, while the user’s later requests and other users go on', async () => {
    const seen: number[] = [];
    // No poller runs yet: the records arrive in one batch.
    const userId = await fresh.user(0);
    const other = await fresh.user(0);
    const before = requestIdOf(await queueCharge(userId, { amount: 1 }));
    await stream.putRaw(String(userId), JSON.stringify({ v: 1, id: 'poison-1', user: userId, route: 'POST /points/charge', body: { amount: -5 }, at: Date.now(), until: Date.now() + 60_000 }));
    const after = requestIdOf(await queueCharge(userId, { amount: 2 }));
    const others = requestIdOf(await queueCharge(other, { amount: 3 }));
    const resumed = stream.poller({
      batchSize: 10,
      maxRetryAttempts: 2,
      invoke: async (event) => {
        seen.push(event.Records.length);
        return invokeConsumer(event);
      },
    });
    expect((await settled(userId, before)).result.balance).toBe(1);
    expect((await settled(userId, after)).result.balance).toBe(3);
    expect((await settled(other, others)).result.balance).toBe(3);
    expect(await settled(userId, 'poison-1')).toMatchObject({ status: 'REJECTED', statusCode: 503, result: { code: 'DEPENDENCY_UNAVAILABLE' } });
    // Bisected down to the single record, which was tried 1 + 2 times.
    expect(seen.filter((n) => n === 1).length).toBeGreaterThanOrEqual(3);
    await resumed.stop();
    expect(await balanceOf(userId)).toBe(3);
  });
});

describe('queued and direct requests of one user racing', () => {
  stream.usePoller();

  it('never interleave: every answer and outcome is one step of a single history', async () => {
    const userId = await fresh.user(1000);
    const item = await fresh.item(10, 1000);
    const sends = Array.from({ length: 40 }, (_, i) => {
      const queued = i % 2 === 0;
      const charge = i % 3 !== 0;
      if (charge) return queued ? queueCharge(userId, { amount: 5 }) : callCharge(userId, { amount: 5 });
      const body = { items: [{ itemId: item, quantity: 3 }] };
      return queued ? queuePay(userId, body) : callPay(userId, body);
    });
    const results = await Promise.all(sends);
    const outcomes: { status: number; body: Record<string, number> }[] = [];
    for (const result of results) {
      if (result.statusCode !== 202) outcomes.push({ status: result.statusCode, body: bodyOf<Record<string, number>>(result) });
      else {
        const outcome = await settled(userId, requestIdOf(result));
        outcomes.push({ status: outcome.statusCode, body: outcome.result as Record<string, number> });
      }
    }
    // Direct requests may be refused by the lock (409 LOCK_TIMEOUT) under this race; queued ones never are.
    const ok = outcomes.filter((o) => o.status === 200 || o.status === 201);
    const charged = ok.filter((o) => o.status === 200).length * 5;
    const paid = ok.filter((o) => o.status === 201).length * 30;
    expect(await balanceOf(userId)).toBe(1000 + charged - paid);
    expect(await stockOf(item)).toBe(1000 - (paid / 30) * 3);
    // The history is one chain: each row's balance follows from the previous one.
    const { history } = await pointsState(t.pg, userId);
    let balance = 1000;
    for (const row of history) {
      balance += row.amount;
      expect(row.balance_after).toBe(balance);
    }
    expect(history).toHaveLength(ok.length);
    // Each success's answered balance is a point of that chain.
    expect(new Set(ok.map((o) => o.body.balance))).toEqual(new Set(history.map((row) => row.balance_after)));
  });
});

describe('the daily purge', () => {
  it('deletes outcome rows older than the retention, keeps the others', async () => {
    const { purgePointRequests } = await import('../../lib/points/queue/purge');
    const userId = await fresh.user(0);
    const row = (id: string, age: string) =>
      t.pg.query(
        `INSERT INTO point_requests (request_id, user_id, route, status, status_code, result, accepted_at, applied_at)
         VALUES ($1, $2, 'POST /points/charge', 'REJECTED', 503, '{}', now() - $3::interval, now() - $3::interval)`,
        [id, userId, age],
      );
    await row('purge-old', '8 days');
    await row('purge-recent', '6 days');
    expect(await purgePointRequests(7)).toBe(1);
    const { rows } = await t.pg.query('SELECT request_id FROM point_requests WHERE user_id = $1', [userId]);
    expect(rows).toEqual([{ request_id: 'purge-recent' }]);
  });
});

/** The data of the record that carried requestId, read back from the stream. */
async function firstRecordOf(requestId: string): Promise<string> {
  const { GetShardIteratorCommand, GetRecordsCommand, ListShardsCommand } = await import('@aws-sdk/client-kinesis');
  const { Shards = [] } = await stream.client.send(new ListShardsCommand({ StreamName: 'point-requests-test' }));
  for (const shard of Shards) {
    const { ShardIterator } = await stream.client.send(
      new GetShardIteratorCommand({ StreamName: 'point-requests-test', ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
    );
    let iterator = ShardIterator;
    while (iterator) {
      const output = await stream.client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
      for (const record of output.Records ?? []) {
        const data = Buffer.from(record.Data!).toString('utf8');
        if ((JSON.parse(data) as { id: string }).id === requestId) return data;
      }
      if ((output.Records ?? []).length === 0) break;
      iterator = output.NextShardIterator;
    }
  }
  throw new Error(`no record of ${requestId}`);
}

/** A Kinesis event of queued requests, as the mapping would deliver it (no stream involved). */
async function eventOf(requests: { id: string; user: number; route: string; body: unknown }[]) {
  const now = Date.now();
  return {
    Records: requests.map((request, i) => ({
      awsRegion: 'us-east-1',
      eventID: `shardId-000000000000:${i}`,
      eventName: 'aws:kinesis:record',
      eventSource: 'aws:kinesis',
      eventSourceARN: stream.kinesis.streamArn,
      eventVersion: '1.0',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
      kinesis: {
        approximateArrivalTimestamp: now / 1000,
        data: Buffer.from(JSON.stringify({ v: 1, ...request, at: now, until: now + 60_000 })).toString('base64'),
        kinesisSchemaVersion: '1.0',
        partitionKey: String(request.user),
        sequenceNumber: String(1000 + i),
      },
    })),
  };
}
