import { Client } from 'pg';
import { DependencyUnavailableError, LockTimeoutError } from '../../lib/platform/errors';
import { problem, toAppError } from '../../lib/platform/http';
import { requestHash } from '../../lib/points/idempotency';
import { acquireLock, LockLostError, releaseLock } from '../../lib/platform/lock';
import { parsePointsSettings } from '../../lib/points/settings';
import { pointLockKey } from '../../lib/points/keys';
import { chargePoints } from '../../lib/points/points';
import { purgeBalanceRequests } from '../../lib/points/purge';
import { redis } from '../../lib/platform/redis/client';
import { useTestDatabase } from '../support/database';
import { bodyOf } from '../support/events';
import {
  answer,
  callBalance,
  callCharge,
  expectProblem,
  freshRows,
  gatedDatabase,
  idempotencyKey,
  insertUser,
  lostCallDatabase,
  pointsState,
  stalledHolder,
  unavailableDatabase,
  unreachableRedis,
} from '../support/points';

/** GET /points and POST /points/charge against real Redis and PostgreSQL (through the Data API). */

const t = useTestDatabase();
const fresh = freshRows(() => t.pg);

describe('GET /points', () => {
  it('answers the caller’s balance', async () => {
    const userId = await fresh.user(1234);
    const result = await callBalance(userId);
    expect(result.statusCode).toBe(200);
    expect(bodyOf(result)).toEqual({ userId, balance: 1234 });
  });

  it('is 404 without a users row and 401 without a token', async () => {
    expectProblem(await callBalance(999_999), 404, 'NOT_FOUND');
    expectProblem(await callBalance(undefined), 401, 'UNAUTHORIZED');
  });
});

describe('POST /points/charge', () => {
  it('adds to the balance and writes a history row in the same step', async () => {
    const userId = await fresh.user(100);
    const result = await callCharge(userId, { amount: 250 });
    expect(result.statusCode).toBe(200);
    const body = bodyOf<{ historyId: number }>(result);
    expect(body).toEqual({ userId, charged: 250, balance: 350, historyId: expect.any(Number) });
    const state = await pointsState(t.pg, userId);
    expect(state.user.balance).toBe(350);
    expect(state.history).toEqual([{ id: body.historyId, type: 'CHARGE', amount: 250, balance_after: 350, order_id: null }]);
    expect(bodyOf(await callBalance(userId))).toEqual({ userId, balance: 350 });
  });

  it('takes amounts from 1 to 1,000,000, and the balance up to exactly 100,000,000', async () => {
    const userId = await fresh.user(98_999_999);
    expect(bodyOf(await callCharge(userId, { amount: 1 }))).toMatchObject({ balance: 99_000_000 });
    expect(bodyOf(await callCharge(userId, { amount: 1_000_000 }))).toMatchObject({ balance: 100_000_000 });
  });

  it('is 409 BALANCE_LIMIT_EXCEEDED past 100,000,000, changing nothing', async () => {
    const userId = await fresh.user(99_999_999);
    const before = await pointsState(t.pg, userId);
    expectProblem(await callCharge(userId, { amount: 2 }, idempotencyKey('over')), 409, 'BALANCE_LIMIT_EXCEEDED');
    expect(await pointsState(t.pg, userId)).toEqual(before);
  });

  it('is 404 without a users row, writing nothing', async () => {
    const userId = fresh.id();
    expectProblem(await callCharge(userId, { amount: 5 }, idempotencyKey('no-row')), 404, 'NOT_FOUND');
    const state = await pointsState(t.pg, userId);
    expect(state).toMatchObject({ user: undefined, history: [], keys: [] });
  });

  it('is 401 without a token', async () => {
    expectProblem(await callCharge(undefined, { amount: 5 }), 401, 'UNAUTHORIZED');
  });

  it('rejects bad bodies and bad Idempotency-Keys with 400 before taking the lock, changing nothing', async () => {
    const userId = await fresh.user(500);
    const before = await pointsState(t.pg, userId);
    // Held by someone else throughout: a request that waited for it would answer 409 LOCK_TIMEOUT.
    const held = await acquireLock(pointLockKey(userId), { leaseMs: 60_000 });
    try {
      const badBodies: unknown[] = [
        { amount: 0 },
        { amount: -1 },
        { amount: 1_000_001 },
        { amount: 1.5 },
        { amount: '5' },
        { amount: null },
        {},
        [{ amount: 5 }],
        'null',
        '{"amount": 5',
        '',
      ];
      for (const body of badBodies) expectProblem(await callCharge(userId, body), 400, 'VALIDATION_ERROR');
      const badKeys = ['', 'has space', 'x'.repeat(256), 'ключ', 'tab\there'];
      for (const value of badKeys) expectProblem(await callCharge(userId, { amount: 5 }, idempotencyKey(value)), 400, 'VALIDATION_ERROR');
    } finally {
      await releaseLock(held);
    }
    expect(await pointsState(t.pg, userId)).toEqual(before);
  });

  it('is 409 LOCK_TIMEOUT with Retry-After when the user’s lock stays busy, changing nothing', async () => {
    const userId = await fresh.user(500);
    const before = await pointsState(t.pg, userId);
    const held = await acquireLock(pointLockKey(userId), { leaseMs: 60_000 });
    try {
      const error = await chargePoints({ userId, amount: 5 }, { lock: { waitBudgetMs: 100 } }).catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(LockTimeoutError);
      const response = problem(toAppError(error));
      expectProblem(response, 409, 'LOCK_TIMEOUT');
      expect(response.headers?.['retry-after']).toBe('1');
    } finally {
      await releaseLock(held);
    }
    expect(await pointsState(t.pg, userId)).toEqual(before);
  });
});

describe('Idempotency-Key', () => {
  it('replays the first response with Idempotent-Replayed, whatever the key order of the same body', async () => {
    const userId = await fresh.user(0);
    const first = await callCharge(userId, { amount: 70, note: { a: 1, b: [1, 2] } }, idempotencyKey('replay-1'));
    const again = await callCharge(userId, '{ "note": { "b": [1, 2], "a": 1.0 }, "amount": 70 }', idempotencyKey('replay-1'));
    expect(answer(first)).toEqual({ status: 200, replayed: false });
    expect(answer(again)).toEqual({ status: 200, replayed: true });
    expect(again.body).toBe(first.body);
    const state = await pointsState(t.pg, userId);
    expect(state.user.balance).toBe(70);
    expect(state.history).toHaveLength(1);
  });

  it('is 422 for the same key with a different body, changing nothing', async () => {
    const userId = await fresh.user(0);
    await callCharge(userId, { amount: 70 }, idempotencyKey('reuse'));
    const before = await pointsState(t.pg, userId);
    expectProblem(await callCharge(userId, { amount: 71 }, idempotencyKey('reuse')), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(await pointsState(t.pg, userId)).toEqual(before);
  });

  it('scopes keys to the user', async () => {
    const [alice, bob] = [await fresh.user(0), await fresh.user(0)];
    await callCharge(alice, { amount: 10 }, idempotencyKey('shared'));
    expect(answer(await callCharge(bob, { amount: 20 }, idempotencyKey('shared')))).toEqual({ status: 200, replayed: false });
    expect((await pointsState(t.pg, bob)).user.balance).toBe(20);
  });

  it('accepts a key of 255 characters from ! to ~', async () => {
    const userId = await fresh.user(0);
    const longest = '!~'.repeat(127) + 'x';
    expect(answer(await callCharge(userId, { amount: 1 }, idempotencyKey(longest)))).toEqual({ status: 200, replayed: false });
    expect(answer(await callCharge(userId, { amount: 1 }, idempotencyKey(longest)))).toEqual({ status: 200, replayed: true });
  });

  it('stores only successes: a key whose request failed may be tried again', async () => {
    const userId = fresh.id();
    expectProblem(await callCharge(userId, { amount: 5 }, idempotencyKey('retry-me')), 404, 'NOT_FOUND');
    await insertUser(t.pg, userId, 0);
    expect(answer(await callCharge(userId, { amount: 5 }, idempotencyKey('retry-me')))).toEqual({ status: 200, replayed: false });
  });

  it('charges once for the same key sent 20 times at once', async () => {
    const userId = await fresh.user(0);
    const results = await Promise.all(Array.from({ length: 20 }, () => callCharge(userId, { amount: 30 }, idempotencyKey('burst'))));
    const applied = results.filter((r) => r.statusCode === 200 && !answer(r).replayed);
    const replayed = results.filter((r) => r.statusCode === 200 && answer(r).replayed);
    const inProgress = results.filter((r) => r.statusCode === 409);
    expect(applied).toHaveLength(1);
    expect(replayed.length + inProgress.length).toBe(19);
    for (const r of inProgress) expectProblem(r, 409, 'IDEMPOTENCY_IN_PROGRESS');
    for (const r of replayed) expect(r.body).toBe(applied[0]!.body);
    const state = await pointsState(t.pg, userId);
    expect(state.user.balance).toBe(30);
    expect(state.history).toHaveLength(1);
    // After the first one finished, the key replays.
    expect(answer(await callCharge(userId, { amount: 30 }, idempotencyKey('burst')))).toEqual({ status: 200, replayed: true });
  });

  it('answers a duplicate that arrives while the first runs: 409 for the same body, 422 for another', async () => {
    const userId = await fresh.user(0);
    const gated = gatedDatabase(t.db);
    const idempotency = { route: 'POST /points/charge', key: 'slow', requestHash: requestHash({ amount: 40 }) };
    const first = chargePoints({ userId, amount: 40, idempotency }, { database: gated.database });
    await gated.entered;
    expectProblem(await callCharge(userId, { amount: 40 }, idempotencyKey('slow')), 409, 'IDEMPOTENCY_IN_PROGRESS');
    expectProblem(await callCharge(userId, { amount: 41 }, idempotencyKey('slow')), 422, 'IDEMPOTENCY_KEY_REUSED');
    gated.open();
    expect(await first).toMatchObject({ status: 200, replayed: false });
    expect(answer(await callCharge(userId, { amount: 40 }, idempotencyKey('slow')))).toEqual({ status: 200, replayed: true });
    expect((await pointsState(t.pg, userId)).user.balance).toBe(40);
  });

  it('charges once when the process dies after the commit and before the response, then the client retries', async () => {
    const userId = await fresh.user(0);
    const idempotency = { route: 'POST /points/charge', key: 'crash', requestHash: requestHash({ amount: 90 }) };
    const crash = () => {
      throw new Error('killed between commit and response');
    };
    await expect(chargePoints({ userId, amount: 90, idempotency }, { afterCommit: crash })).rejects.toThrow('killed');
    const retried = await callCharge(userId, { amount: 90 }, idempotencyKey('crash'));
    expect(answer(retried)).toEqual({ status: 200, replayed: true });
    expect(bodyOf(retried)).toMatchObject({ userId, charged: 90, balance: 90 });
    const state = await pointsState(t.pg, userId);
    expect(state.user.balance).toBe(90);
    expect(state.history).toHaveLength(1);
  });
});

describe('when a dependency fails', () => {
  it('is 503 with nothing written when Redis is down', async () => {
    const userId = await fresh.user(10);
    const before = await pointsState(t.pg, userId);
    const down = unreachableRedis();
    try {
      for (const idempotency of [undefined, { route: 'POST /points/charge', key: 'k', requestHash: 'h' }]) {
        const error = await chargePoints({ userId, amount: 5, idempotency }, { redis: down }).catch((thrown: unknown) => thrown);
        expectProblem(problem(toAppError(error)), 503, 'DEPENDENCY_UNAVAILABLE');
      }
    } finally {
      down.disconnect();
    }
    expect(await pointsState(t.pg, userId)).toEqual(before);
  });

  it('is 503 when the database is down, and releases the lock and the key', async () => {
    const userId = await fresh.user(10);
    const before = await pointsState(t.pg, userId);
    const idempotency = { route: 'POST /points/charge', key: 'db-down', requestHash: requestHash({ amount: 5 }) };
    const down = await unavailableDatabase();
    const error = await chargePoints({ userId, amount: 5, idempotency }, { database: down.database })
      .catch((thrown: unknown) => thrown)
      .finally(down.close);
    expect(error).toBeInstanceOf(DependencyUnavailableError);
    expectProblem(problem(toAppError(error)), 503, 'DEPENDENCY_UNAVAILABLE');
    expect(await redis().exists(pointLockKey(userId))).toBe(0);
    expect(await pointsState(t.pg, userId)).toEqual(before);
    expect((await callCharge(userId, { amount: 5 }, idempotencyKey('db-down'))).statusCode).toBe(200);
  });
});

describe('a statement whose reply was lost', () => {
  it('never writes once the resolution has put its tombstone in, even when it runs later with a cutoff still ahead', async () => {
    // As a statement still on its way, reaching a database whose clock is far behind: only the request id stops it.
    const userId = await fresh.user(100);
    const before = await pointsState(t.pg, userId);
    let late: (() => Promise<unknown>) | undefined;
    const database = lostCallDatabase(t.db, (statement) => {
      late = () => statement.run({ ...statement.params, cutoffMs: Date.now() + 60_000 });
    });
    const error = await chargePoints({ userId, amount: 5 }, { database }).catch((thrown: unknown) => thrown);
    expectProblem(problem(toAppError(error)), 503, 'DEPENDENCY_UNAVAILABLE');
    await expect(late!()).rejects.toThrow(/duplicate key|balance_requests_pkey/);
    expect(await pointsState(t.pg, userId)).toEqual(before);
  });

  it('waits for a statement still committing and answers with its reply', async () => {
    const userId = await fresh.user(100);
    const committing = new Client({ connectionString: testDatabaseUrl() });
    await committing.connect();
    const database = lostCallDatabase(t.db, (statement) =>
      // The statement's own row, written and not yet committed when the resolution arrives.
      committing
        .query('BEGIN')
        .then(() =>
          committing.query(`INSERT INTO balance_requests (request_id, user_id, status_code, response_body) VALUES ($1, $2, 200, '{"charged":"by the late statement"}')`, [
            statement.params.requestId,
            userId,
          ]),
        ),
    );
    try {
      const charging = chargePoints({ userId, amount: 5 }, { database });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await committing.query('COMMIT');
      expect(await charging).toEqual({ status: 200, body: { charged: 'by the late statement' }, replayed: false });
    } finally {
      await committing.end();
    }
  });
});

describe('timeouts', () => {
  const env = {
    STAGE: 'test',
    DB_RESOURCE_ARN: 'arn',
    DB_SECRET_ARN: 'arn',
    DB_NAME: 'db',
    JWT_ISSUER: 'issuer',
    JWT_AUDIENCE: 'audience',
  };

  it('refuse a cold start when the lock wait, the statement and its resolution do not fit in the function’s timeout', () => {
    expect(() => parsePointsSettings({ ...env, FUNCTION_TIMEOUT_S: '15' })).not.toThrow();
    expect(() => parsePointsSettings({ ...env, FUNCTION_TIMEOUT_S: '10' })).toThrow(
      /FUNCTION_TIMEOUT_S .*POINT_LOCK_WAIT_BUDGET_MS \+ DB_CALL_TIMEOUT_MS \+ DB_RESOLVE_BUDGET_MS \+ DEADLINE_SAFETY_MARGIN_MS \+ CLOCK_SKEW_MARGIN_MS/,
    );
    expect(() => parsePointsSettings({ ...env, FUNCTION_TIMEOUT_S: '10', POINT_LOCK_WAIT_BUDGET_MS: '3000' })).not.toThrow();
  });
});

describe('fencing', () => {
  it('refuses the write of a holder whose lease expired once the next holder has written', async () => {
    const userId = await fresh.user(1000);
    const a = await stalledHolder(t.db, (deps) => chargePoints({ userId, amount: 100 }, deps));

    const b = await chargePoints({ userId, amount: 7 }); // waits out A's lease, then commits
    expect(b.body).toMatchObject({ balance: 1007 });

    a.resume(); // A writes with its old fencing token
    const error = await a.outcome.catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(LockLostError);
    const state = await pointsState(t.pg, userId);
    expect(state.user.balance).toBe(1007);
    expect(state.history).toEqual([expect.objectContaining({ type: 'CHARGE', amount: 7, balance_after: 1007 })]);
    expectProblem(problem(toAppError(error)), 409, 'LOCK_TIMEOUT');
  });

  it('repairs a users.lock_fence that is ahead of the lock’s counter instead of refusing the user forever', async () => {
    // As after Redis lost the counter and its clock stepped back: every token it issues is below the database's.
    const userId = await fresh.user(100);
    const ahead = 5_000_000_000_000_000;
    await t.pg.query('UPDATE users SET lock_fence = $1 WHERE id = $2', [ahead, userId]);
    const charged = await callCharge(userId, { amount: 5 });
    expect(charged.statusCode).toBe(200);
    expect(bodyOf(charged)).toMatchObject({ balance: 105 });
    const state = await pointsState(t.pg, userId);
    expect(BigInt(state.user.fence)).toBeGreaterThan(BigInt(ahead));
    expect(state.history).toHaveLength(1);
    // Repaired for good: the next one needs no repair.
    expect((await callCharge(userId, { amount: 5 })).statusCode).toBe(200);
    expect((await pointsState(t.pg, userId)).user.balance).toBe(110);
  });
});

describe('balance_requests', () => {
  it('holds each charge’s request id with its reply, and the purge deletes day-old rows only', async () => {
    const userId = await fresh.user(0);
    const charged = await callCharge(userId, { amount: 3 });
    const { rows } = await t.pg.query('SELECT status_code, response_body FROM balance_requests WHERE user_id = $1', [userId]);
    expect(rows).toEqual([{ status_code: 200, response_body: bodyOf(charged) }]);
    await t.pg.query(
      `INSERT INTO balance_requests (request_id, user_id, created_at) VALUES (gen_random_uuid(), $1, now() - interval '25 hours')`,
      [userId],
    );
    expect(await purgeBalanceRequests(t.db)).toBeGreaterThanOrEqual(1);
    const left = await t.pg.query('SELECT status_code FROM balance_requests WHERE user_id = $1', [userId]);
    expect(left.rows).toEqual([{ status_code: 200 }]);
  });
});

function testDatabaseUrl(): string {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${process.env.DB_NAME}`;
  return url.toString();
}
