import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Redis from 'ioredis';
import type { Client } from 'pg';
import { createDatabase, DatabaseUnavailableError, type Database, type SqlParams } from '../../lib/platform/db';
import type { HttpHandler, HttpResult } from '../../lib/platform/http';
import type { PointsDeps } from '../../lib/points/balance';
import { bodyOf, httpEvent, lambdaContext } from './events';
import { testRedis } from './redis-nodes';

/** Shared by the points, orders and lock test files. */

/**
 * The handlers, loaded on first call: a handler reads the configuration when
 * it is loaded (a cold start), so a file that points DATA_API_ENDPOINT at a
 * fault proxy or a cluster of its own in beforeAll may still use these.
 */
export const chargeHandler: HttpHandler = async (event, context) => (await import('../../functions/charge')).handler(event, context);
export const payHandler: HttpHandler = async (event, context) => (await import('../../functions/pay')).handler(event, context);

export function callBalance(userId: number | undefined): Promise<HttpResult> {
  return chargeHandler(httpEvent({ routeKey: 'GET /points', userId }), lambdaContext());
}

/** `remainingMs`: the invocation's remaining time (lambdaContext); the function's 15 s by default. */
export function callCharge(userId: number | undefined, body: unknown, headers: Record<string, string> = {}, remainingMs?: number): Promise<HttpResult> {
  return chargeHandler(httpEvent({ routeKey: 'POST /points/charge', body, headers, userId }), lambdaContext(remainingMs));
}

export function callPay(userId: number | undefined, body: unknown, headers: Record<string, string> = {}, remainingMs?: number): Promise<HttpResult> {
  return payHandler(httpEvent({ routeKey: 'POST /orders', body, headers, userId }), lambdaContext(remainingMs));
}

/** How a request was answered: its status, and whether it was an Idempotency-Key replay. */
export function answer(result: HttpResult): { status: number; replayed: boolean } {
  return { status: result.statusCode, replayed: result.headers?.['idempotent-replayed'] === 'true' };
}

export function expectProblem(result: HttpResult, status: number, code: string): void {
  expect({ status: result.statusCode, type: result.headers?.['content-type'], body: bodyOf(result) }).toEqual({
    status,
    type: 'application/problem+json',
    body: expect.objectContaining({ type: 'about:blank', status, code }),
  });
}

export const idempotencyKey = (value: string) => ({ 'Idempotency-Key': value });

/**
 * Rows with ids no other test of the file uses, so tests need no cleanup.
 * Takes a getter because the test database exists only from beforeAll on.
 */
export function freshRows(pg: () => Client) {
  let next = 1;
  const id = () => next++;
  return {
    /** An id that has no row yet. */
    id,
    async user(balance: number): Promise<number> {
      const userId = id();
      await insertUser(pg(), userId, balance);
      return userId;
    },
    async item(price: number, stock: number): Promise<number> {
      const itemId = id();
      await insertItem(pg(), itemId, price, stock);
      return itemId;
    },
  };
}

export async function insertUser(pg: Client, id: number, balance: number): Promise<void> {
  await pg.query('INSERT INTO users (id, name, point_balance) VALUES ($1, $2, $3)', [id, `user ${id}`, balance]);
}

export async function insertItem(pg: Client, id: number, price: number, stock: number): Promise<void> {
  await pg.query('INSERT INTO items (id, name, price, stock) VALUES ($1, $2, $3, $4)', [id, `item ${id}`, price, stock]);
}

/** Everything a points request may write, for "nothing changed" checks. */
export async function pointsState(pg: Client, userId: number, itemIds: number[] = []) {
  // One after the other: a pg Client runs one query at a time.
  const user = await pg.query('SELECT point_balance::int AS balance, lock_fence::text AS fence FROM users WHERE id = $1', [userId]);
  const history = await pg.query(
    'SELECT id::int, type, amount::int, balance_after::int, order_id::int FROM point_history WHERE user_id = $1 ORDER BY id',
    [userId],
  );
  const keys = await pg.query('SELECT route, idempotency_key FROM idempotency_keys WHERE user_id = $1 ORDER BY 1, 2', [userId]);
  const orders = await pg.query(
    `SELECT o.id::int, o.status, o.total_amount::int, count(oi.*)::int AS lines
     FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.id
     WHERE o.user_id = $1 GROUP BY o.id ORDER BY o.id`,
    [userId],
  );
  const items = await pg.query('SELECT id::int, stock FROM items WHERE id = ANY($1::bigint[]) ORDER BY id', [itemIds]);
  return { user: user.rows[0], history: history.rows, keys: keys.rows, orders: orders.rows, items: items.rows };
}

export function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/**
 * Holder A of the fencing scenario: starts a balance change (`start` gets
 * the dependencies to use), lets it take the user's lock with a short lease,
 * then stalls it right before its database write and cuts its Redis
 * connection, as a frozen Lambda: its lease can no longer be renewed and
 * runs out. `resume` lets it write, with its old fencing token.
 */
export async function stalledHolder<T>(database: Database, start: (deps: PointsDeps) => Promise<T>): Promise<{ outcome: Promise<T>; resume(): void }> {
  const ownConnection = testRedis({ keyPrefix: process.env.REDIS_KEY_PREFIX, maxRetriesPerRequest: 0, disconnectTimeout: 10 });
  const gated = gatedDatabase(database);
  const outcome = start({ redis: ownConnection, database: gated.database, lock: { leaseMs: 200 } });
  await gated.entered;
  ownConnection.disconnect();
  // A Cluster client would reconnect on A's next command: cut it for good.
  ownConnection.sendCommand = ((command: { reject(error: Error): void; promise: Promise<unknown> }) => {
    command.reject(new Error('Connection is closed.'));
    return command.promise;
  }) as unknown as typeof ownConnection.sendCommand;
  return { outcome, resume: gated.open };
}

/** A Redis nobody answers at. */
export function unreachableRedis(): Redis {
  const client = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, disconnectTimeout: 10 });
  client.on('error', () => {});
  return client;
}

/**
 * A Data API endpoint that answers every call 503 ServiceUnavailableError,
 * as AWS does when the cluster is away. (Refusing the connection would do
 * too in Lambda, but under jest the SDK wraps Node's network errors into
 * ones that no longer carry their code.)
 */
export async function unavailableDatabase(): Promise<{ database: Database; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    request.resume();
    response.writeHead(503, { 'content-type': 'application/json', 'x-amzn-errortype': 'ServiceUnavailableError' });
    response.end('{"message":"the database is unavailable"}');
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  const database = createDatabase({
    resourceArn: process.env.DB_RESOURCE_ARN!,
    secretArn: process.env.DB_SECRET_ARN!,
    database: process.env.DB_NAME!,
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    resumeBudgetMs: 1,
  });
  return { database, close: () => new Promise<void>((closed) => server.close(() => closed())) };
}

/**
 * The real database, except that its first statement's reply is lost: the
 * caller gets the error a timeout gives (DatabaseUnavailableError,
 * mayHaveRun), while `lost` gets the statement and decides what the
 * database does with it, and when (run it later, or not at all); the error
 * comes once what `lost` returns has settled. Every later call goes through
 * as it is.
 */
export function lostCallDatabase(
  database: Database,
  lost: (statement: { sql: string; params: SqlParams; run(params?: SqlParams): Promise<unknown> }) => void | Promise<unknown>,
): Database {
  let first = true;
  return {
    async query(sql, params, options) {
      if (!first) return database.query(sql, params, options);
      first = false;
      await lost({ sql, params: params ?? {}, run: (changed) => database.query(sql, changed ?? params, { timeoutMs: 10_000 }) });
      throw new DatabaseUnavailableError(true, { cause: new Error('the reply was lost (test)') });
    },
    transaction: (fn) => database.transaction(fn),
  };
}

/** The real database, with every statement held at `gate` until the test opens it. */
export function gatedDatabase(database: Database): { database: Database; entered: Promise<void>; open(): void } {
  const entered = deferred();
  const gate = deferred();
  return {
    database: {
      async query(sql, params, options) {
        entered.resolve();
        await gate.promise;
        return database.query(sql, params, options);
      },
      transaction: (fn) => database.transaction(fn),
    },
    entered: entered.promise,
    open: gate.resolve,
  };
}
