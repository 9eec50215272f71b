import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Redis from 'ioredis';
import type { Client } from 'pg';
import { handler as chargeHandler } from '../../functions/charge';
import { handler as payHandler } from '../../functions/pay';
import { createDatabase, type Database } from '../../lib/db';
import type { HttpResult } from '../../lib/http';
import { bodyOf, httpEvent, lambdaContext } from './events';

/** Shared by the points, orders and lock test files. */

export function callBalance(userId: number | undefined): Promise<HttpResult> {
  return chargeHandler(httpEvent({ routeKey: 'GET /points', userId }), lambdaContext());
}

export function callCharge(userId: number | undefined, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return chargeHandler(httpEvent({ routeKey: 'POST /points/charge', body, headers, userId }), lambdaContext());
}

export function callPay(userId: number | undefined, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return payHandler(httpEvent({ routeKey: 'POST /orders', body, headers, userId }), lambdaContext());
}

export function expectProblem(result: HttpResult, status: number, code: string): void {
  expect({ status: result.statusCode, type: result.headers?.['content-type'], body: bodyOf(result) }).toEqual({
    status,
    type: 'application/problem+json',
    body: expect.objectContaining({ type: 'about:blank', status, code }),
  });
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

/** A Redis client of the test's key prefix on its own connection, which a test may cut. */
export function separateRedis(): Redis {
  return new Redis(process.env.REDIS_URL!, { keyPrefix: process.env.REDIS_KEY_PREFIX, maxRetriesPerRequest: 0, disconnectTimeout: 10 });
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

/** The real database, with every statement held at `gate` until the test opens it. */
export function gatedDatabase(database: Database): { database: Database; entered: Promise<void>; open(): void } {
  const entered = deferred();
  const gate = deferred();
  return {
    database: {
      async query(sql, params) {
        entered.resolve();
        await gate.promise;
        return database.query(sql, params);
      },
      transaction: (fn) => database.transaction(fn),
    },
    entered: entered.promise,
    open: gate.resolve,
  };
}
