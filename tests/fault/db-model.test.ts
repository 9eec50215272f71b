import fc from 'fast-check';
import { Client } from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { useTestDatabase } from '../support/database';
import { bodyOf } from '../support/events';
import { callCharge, callPay, freshRows, pointsState } from '../support/points';
import { useDataApiProxy } from './db-harness';

/**
 * Model-based: random sequences of charges and payments of one user, each
 * meeting a database fault chosen at random (none, a reply lost after the
 * commit, a silent Data API, a slow one, the user's row held by another
 * session), against a reference model of balance, stock and orders.
 *
 * Every answer must agree with the model: a 2xx is exactly the change the
 * model makes (and moves it), a 409 refusal is the one the model predicts, a
 * 5xx changed nothing, and so did the 409 LOCK_TIMEOUT of a request that
 * waited behind the held row (busy, not away). After each step, once the statements a fault left
 * behind have finished, PostgreSQL must equal the model.
 */

const SHORT_MS = 3000;
const LATENCY_MS = 1500;
const MAX_BALANCE = 100_000_000;

// Before anything reads the configuration (useTestDatabase's hook, the handlers).
const dataApiProxy = useDataApiProxy();
const t = useTestDatabase();
const fresh = freshRows(() => t.pg);

type Fault = 'none' | 'drop' | 'blackhole' | 'latency' | 'rowlock';
type Op = { kind: 'charge'; amount: number; fault: Fault } | { kind: 'pay'; lines: { item: number; quantity: number }[]; fault: Fault };

const PRICES = [100, 250, 40];
const fault = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Fault>('none') },
  { weight: 2, arbitrary: fc.constant<Fault>('drop') },
  { weight: 1, arbitrary: fc.constant<Fault>('blackhole') },
  { weight: 1, arbitrary: fc.constant<Fault>('latency') },
  { weight: 1, arbitrary: fc.constant<Fault>('rowlock') },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('charge' as const), amount: fc.integer({ min: 1, max: 600 }), fault }),
  fc.record({
    kind: fc.constant('pay' as const),
    lines: fc.uniqueArray(fc.record({ item: fc.integer({ min: 0, max: PRICES.length - 1 }), quantity: fc.integer({ min: 1, max: 3 }) }), {
      minLength: 1,
      maxLength: PRICES.length,
      selector: (line) => line.item,
    }),
    fault,
  }),
);

interface Model {
  balance: number;
  stock: number[];
  orders: number;
  history: number[];
}

/** What the model says a request should get when nothing fails: the new model, or the refusal code. */
function predict(model: Model, step: Op): { next: Model; status: number } | { code: string } {
  if (step.kind === 'charge') {
    if (model.balance + step.amount > MAX_BALANCE) return { code: 'BALANCE_LIMIT_EXCEEDED' };
    return { next: { ...model, balance: model.balance + step.amount, history: [...model.history, step.amount] }, status: 200 };
  }
  if (step.lines.some((line) => model.stock[line.item]! < line.quantity)) return { code: 'OUT_OF_STOCK' };
  const total = step.lines.reduce((sum, line) => sum + PRICES[line.item]! * line.quantity, 0);
  if (model.balance < total) return { code: 'INSUFFICIENT_BALANCE' };
  const stock = [...model.stock];
  for (const line of step.lines) stock[line.item]! -= line.quantity;
  return { next: { balance: model.balance - total, stock, orders: model.orders + 1, history: [...model.history, -total] }, status: 201 };
}

async function quiet(): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    const { rows } = await t.pg.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'`,
    );
    if (rows[0]!.n === 0) return;
    if (Date.now() > until) throw new Error('statements still running after 10 s');
    await sleep(50);
  }
}

async function holdUserRow(userId: number): Promise<Client> {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${process.env.DB_NAME}`;
  const holder = new Client({ connectionString: url.toString() });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [userId]);
  return holder;
}

const tally: Record<string, number> = {};
afterAll(() => console.log(`model test answers by fault: ${JSON.stringify(tally)}`));

it('keeps balances, stock and orders equal to the 2xx answers, whatever fails when', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), async (steps) => {
      const userId = await fresh.user(1000);
      const items: number[] = [];
      for (const price of PRICES) items.push(await fresh.item(price, 5));
      let model: Model = { balance: 1000, stock: [5, 5, 5], orders: 0, history: [] };

      for (const step of steps) {
        let holder: Client | undefined;
        let remainingMs: number | undefined;
        switch (step.fault) {
          case 'drop':
            dataApiProxy().set({ mode: 'dropAfterRequest', once: true });
            break;
          case 'blackhole':
            dataApiProxy().set({ mode: 'blackhole' });
            remainingMs = SHORT_MS;
            break;
          case 'latency':
            dataApiProxy().set({ mode: 'latency', ms: LATENCY_MS });
            remainingMs = SHORT_MS;
            break;
          case 'rowlock':
            holder = await holdUserRow(userId);
            remainingMs = SHORT_MS;
            break;
        }
        const result =
          step.kind === 'charge'
            ? await callCharge(userId, { amount: step.amount }, {}, remainingMs)
            : await callPay(userId, { items: step.lines.map((line) => ({ itemId: items[line.item]!, quantity: line.quantity })) }, {}, remainingMs);
        dataApiProxy().set({ mode: 'pass' });
        if (holder) {
          await holder.query('ROLLBACK');
          await holder.end();
        }
        if (step.fault === 'latency') await sleep(LATENCY_MS + 200); // what was sent still arrives
        await quiet();

        const key = `${step.fault}:${result.statusCode}`;
        tally[key] = (tally[key] ?? 0) + 1;
        const expected = predict(model, step);
        const body = bodyOf<Record<string, unknown>>(result);
        if (step.fault === 'rowlock' || body.code === 'LOCK_TIMEOUT') {
          expect({ fault: step.fault, status: result.statusCode, code: body.code }).toEqual({ fault: 'rowlock', status: 409, code: 'LOCK_TIMEOUT' });
        } else if (result.statusCode >= 500) {
          expect(body).toMatchObject({ status: 503, code: 'DEPENDENCY_UNAVAILABLE' });
          expect(step.fault).not.toBe('none');
        } else if ('code' in expected) {
          expect({ status: result.statusCode, code: body.code }).toEqual({ status: 409, code: expected.code });
        } else {
          expect(result.statusCode).toBe(expected.status);
          expect(body.balance).toBe(expected.next.balance);
          model = expected.next;
        }

        const state = await pointsState(t.pg, userId, items);
        expect({
          balance: state.user.balance,
          stock: state.items.map((item) => item.stock),
          orders: state.orders.length,
          history: state.history.map((row) => row.amount),
        }).toEqual(model);
      }
    }),
    { numRuns: 12, endOnFailure: true },
  );
}, 240_000);
