import { Client } from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { logger } from '../../lib/platform/logger';
import { useTestDatabase } from '../support/database';
import { bodyOf } from '../support/events';
import { callBalance, callCharge, callPay, expectProblem, freshRows, idempotencyKey, pointsState } from '../support/points';
import { useDataApiProxy, useTimedFigures } from './db-harness';

/**
 * The database side of docs/api.md "When a dependency fails", through the real
 * handlers and the real Data API client: a row lock held past the deadline,
 * a reply lost after the statement committed, a slow and a silent Data API.
 * A fault proxy (tests/support/fault-proxy) stands between the client and
 * the run's local Data API endpoint, which keeps running a statement whose
 * client went away, as AWS does.
 *
 * Every 503 must be fast and the truth: afterwards, once every statement the
 * faults left behind has finished, balances, stock, orders and history are
 * exactly what the 2xx answers say.
 */

// The Lambda's remaining time for the requests that meet a fault: short, so
// the tests are quick; the deadline is this less DEADLINE_SAFETY_MARGIN_MS (1 s).
const SHORT_MS = 3000;
// Generous for a loaded 2-core machine; the budgets are DB_CALL_TIMEOUT_MS
// (1.2 s) + DB_RESOLVE_BUDGET_MS (0.8 s).
const SLACK_MS = 700;

// Before anything reads the configuration (useTestDatabase's hook, the handlers).
const dataApiProxy = useDataApiProxy();
const t = useTestDatabase();
const fresh = freshRows(() => t.pg);

afterEach(async () => {
  dataApiProxy().set({ mode: 'pass' });
  await quiet();
});

/** Waits until no statement of this file's database is running or waiting (the stragglers of a fault). */
async function quiet(timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await t.pg.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'`,
    );
    if (rows[0]!.n === 0) return;
    if (Date.now() > until) throw new Error(`statements still running after ${timeoutMs} ms`);
    await sleep(50);
  }
}

const timed = useTimedFigures();

/** Another session holding the user's row (and optionally items' rows) FOR UPDATE, as a psql session would. */
async function holdRows(userId: number, itemIds: number[] = []): Promise<{ release(): Promise<void> }> {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${process.env.DB_NAME}`;
  const holder = new Client({ connectionString: url.toString() });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [userId]);
  if (itemIds.length > 0) await holder.query('SELECT 1 FROM items WHERE id = ANY($1::bigint[]) FOR UPDATE', [itemIds]);
  return {
    async release() {
      await holder.query('ROLLBACK');
      await holder.end();
    },
  };
}

function expectUnavailable(result: Awaited<ReturnType<typeof callCharge>>): void {
  expectProblem(result, 503, 'DEPENDENCY_UNAVAILABLE');
  expect(result.headers?.['retry-after']).toMatch(/^[1-9][0-9]*$/);
}

async function tombstones(): Promise<number> {
  const { rows } = await t.pg.query<{ n: number }>('SELECT count(*)::int AS n FROM balance_requests WHERE status_code IS NULL');
  return rows[0]!.n;
}

/**
 * The metrics the request emitted, from the line that closes it (lib/platform/observability),
 * read from stdout as CloudWatch Logs would; the tests run at log level SILENT otherwise.
 */
async function withMetrics<T>(fn: () => Promise<T>): Promise<{ result: T; metrics: Record<string, number> }> {
  const printed: string[] = [];
  const stdout = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => printed.push(String(chunk)) > 0);
  const level = logger.getLevelName();
  logger.setLogLevel('INFO');
  try {
    const result = await fn();
    const closing = printed
      .join('')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { message?: string; metrics?: Record<string, number> })
      .find((line) => line.message === 'request');
    return { result, metrics: closing?.metrics ?? {} };
  } finally {
    logger.setLogLevel(level);
    stdout.mockRestore();
  }
}

/** Busy, not away (docs/api.md: 409 LOCK_TIMEOUT, "busy, retry"): a row held by another session on a database that answers. */
function expectBusy(result: Awaited<ReturnType<typeof callCharge>>): void {
  expectProblem(result, 409, 'LOCK_TIMEOUT');
  expect(result.headers?.['retry-after']).toMatch(/^[1-9][0-9]*$/);
}

describe('a row lock held by another session past the deadline', () => {
  it('answers a charge 409 LOCK_TIMEOUT before the deadline, and the charge never applies, not even when the row is released', async () => {
    const userId = await fresh.user(1000);
    const before = await pointsState(t.pg, userId);
    const tombstonesBefore = await tombstones();
    const held = await holdRows(userId);
    let released = false;
    try {
      const { result: { result, ms }, metrics } = await withMetrics(() => timed(() => callCharge(userId, { amount: 50 }, {}, SHORT_MS)));
      expectBusy(result);
      expect(ms).toBeLessThan(SHORT_MS - 1000 + SLACK_MS);
      // Contention, not an outage: no DependencyFailure, which pages someone.
      expect({ LockTimeout: metrics.LockTimeout, DependencyFailure: metrics.DependencyFailure }).toEqual({ LockTimeout: 1, DependencyFailure: undefined });
      // The statement is still queued behind the row lock in PostgreSQL.
      await sleep(300);
      await held.release();
      released = true;
    } finally {
      if (!released) await held.release();
    }
    await quiet();
    expect(await pointsState(t.pg, userId)).toEqual(before);
    // The resolution's tombstone is what the late statement ran into.
    expect(await tombstones()).toBe(tombstonesBefore + 1);
    // And the user is served normally right after.
    const { result, ms } = await timed(() => callCharge(userId, { amount: 7 }));
    expect(result.statusCode).toBe(200);
    expect(bodyOf(result)).toMatchObject({ balance: 1007 });
    expect(ms).toBeLessThan(1000 + SLACK_MS);
  });

  it('answers a payment 409 LOCK_TIMEOUT while an item row is held, taking neither stock nor points, not even when the row is released', async () => {
    const userId = await fresh.user(1000);
    const itemId = await fresh.item(100, 5);
    const before = await pointsState(t.pg, userId, [itemId]);
    const held = await holdRows(fresh.id(), [itemId]);
    try {
      const { result, ms } = await timed(() => callPay(userId, { items: [{ itemId, quantity: 2 }] }, {}, SHORT_MS));
      expectBusy(result);
      expect(ms).toBeLessThan(SHORT_MS - 1000 + SLACK_MS);
    } finally {
      await held.release();
    }
    await quiet();
    expect(await pointsState(t.pg, userId, [itemId])).toEqual(before);
    const paid = await callPay(userId, { items: [{ itemId, quantity: 2 }] });
    expect(paid.statusCode).toBe(201);
    expect(await pointsState(t.pg, userId, [itemId])).toMatchObject({ user: { balance: 800 }, items: [{ id: itemId, stock: 3 }] });
  });

  it('waits for a lock released within the statement’s time, and succeeds', async () => {
    const userId = await fresh.user(10);
    const held = await holdRows(userId);
    const charging = callCharge(userId, { amount: 5 }, {}, SHORT_MS);
    await sleep(300);
    await held.release();
    const result = await charging;
    expect(result.statusCode).toBe(200);
    expect((await pointsState(t.pg, userId)).user.balance).toBe(15);
  });
});

describe('the connection lost after the statement was sent (commit, then reset)', () => {
  it('answers the charge’s real outcome, the success it committed, and charges once', async () => {
    const userId = await fresh.user(100);
    dataApiProxy().set({ mode: 'dropAfterRequest', once: true });
    const drops = dataApiProxy().drops;
    const result = await callCharge(userId, { amount: 40 });
    expect(dataApiProxy().drops).toBe(drops + 1);
    expect(result.statusCode).toBe(200);
    const body = bodyOf<{ historyId: number }>(result);
    expect(body).toEqual({ userId, charged: 40, balance: 140, historyId: expect.any(Number) });
    const state = await pointsState(t.pg, userId);
    expect(state.user.balance).toBe(140);
    expect(state.history).toEqual([{ id: body.historyId, type: 'CHARGE', amount: 40, balance_after: 140, order_id: null }]);
  });

  it('answers the payment’s real outcome, the order it placed, and places it once', async () => {
    const userId = await fresh.user(1000);
    const itemId = await fresh.item(150, 4);
    dataApiProxy().set({ mode: 'dropAfterRequest', once: true });
    const result = await callPay(userId, { items: [{ itemId, quantity: 3 }] });
    expect(result.statusCode).toBe(201);
    const body = bodyOf<{ orderId: number }>(result);
    expect(body).toEqual({
      orderId: expect.any(Number),
      userId,
      status: 'PAID',
      totalAmount: 450,
      balance: 550,
      items: [{ itemId, quantity: 3, unitPrice: 150 }],
    });
    const state = await pointsState(t.pg, userId, [itemId]);
    expect(state).toMatchObject({ user: { balance: 550 }, items: [{ id: itemId, stock: 1 }] });
    expect(state.orders).toEqual([{ id: body.orderId, status: 'PAID', total_amount: 450, lines: 1 }]);
    expect(state.history).toHaveLength(1);
  });

  it('with an Idempotency-Key: the success, then a replay of it, one charge', async () => {
    const userId = await fresh.user(0);
    dataApiProxy().set({ mode: 'dropAfterRequest', once: true });
    const first = await callCharge(userId, { amount: 9 }, idempotencyKey('lost-reply'));
    expect(first.statusCode).toBe(200);
    const again = await callCharge(userId, { amount: 9 }, idempotencyKey('lost-reply'));
    expect(again.headers?.['idempotent-replayed']).toBe('true');
    expect(again.body).toBe(first.body);
    const state = await pointsState(t.pg, userId);
    expect(state.user.balance).toBe(9);
    expect(state.history).toHaveLength(1);
  });
});

describe('a slow or silent Data API', () => {
  it('answers 503 within about 2 s when every reply is 3 s late, and the late statement writes nothing', async () => {
    const userId = await fresh.user(500);
    const before = await pointsState(t.pg, userId);
    dataApiProxy().set({ mode: 'latency', ms: 3000 });
    const { result, ms } = await timed(() => callCharge(userId, { amount: 5 }));
    expectUnavailable(result);
    expect(ms).toBeLessThan(2000 + SLACK_MS);
    dataApiProxy().set({ mode: 'pass' });
    // The statement reaches PostgreSQL about 3 s after it was sent, past its cutoff.
    await sleep(3500);
    await quiet();
    expect(await pointsState(t.pg, userId)).toEqual(before);
    const { result: next, ms: nextMs } = await timed(() => callCharge(userId, { amount: 5 }));
    expect(next.statusCode).toBe(200);
    expect(nextMs).toBeLessThan(1000 + SLACK_MS);
    expect((await pointsState(t.pg, userId)).user.balance).toBe(505);
  });

  it('tells the truth when every reply is 0.8 s late: the statement arrives in time to run but its reply cannot come back in time', async () => {
    // 0.8 s each way: before its cutoff (1.1 s after it was sent) when it
    // arrives, and its reply (and the resolution's, 1.6 s there and back)
    // later than the call's 1.2 s and the resolve budget's 0.8 s.
    const userId = await fresh.user(500);
    const before = await pointsState(t.pg, userId);
    dataApiProxy().set({ mode: 'latency', ms: 800 });
    const { result } = await timed(() => callCharge(userId, { amount: 5 }));
    dataApiProxy().set({ mode: 'pass' });
    await sleep(2000); // what was sent still arrives
    await quiet();
    const after = await pointsState(t.pg, userId);
    if (result.statusCode === 200) expect(after.user.balance).toBe(before.user.balance + 5);
    else {
      expectUnavailable(result);
      expect(after).toEqual(before);
    }
  });

  it('answers 503 within about 2 s when the Data API never answers, then serves normally at once', async () => {
    const userId = await fresh.user(500);
    const itemId = await fresh.item(10, 10);
    const before = await pointsState(t.pg, userId, [itemId]);
    dataApiProxy().set({ mode: 'blackhole' });
    for (const call of [
      () => callCharge(userId, { amount: 5 }),
      () => callPay(userId, { items: [{ itemId, quantity: 1 }] }),
    ]) {
      const { result, ms } = await timed(call);
      expectUnavailable(result);
      expect(ms).toBeLessThan(2000 + SLACK_MS);
    }
    const { result: balance, ms: balanceMs } = await timed(() => callBalance(userId));
    expectUnavailable(balance);
    expect(balanceMs).toBeLessThan(1200 + SLACK_MS);
    dataApiProxy().set({ mode: 'pass' });
    await quiet();
    expect(await pointsState(t.pg, userId, [itemId])).toEqual(before);
    const { result: next, ms: nextMs } = await timed(() => callCharge(userId, { amount: 5 }));
    expect(next.statusCode).toBe(200);
    expect(nextMs).toBeLessThan(1000 + SLACK_MS);
  });
});
