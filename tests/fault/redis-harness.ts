import type { Client } from 'pg';
import type { HttpHandler, HttpResult } from '../../lib/platform/http';
import type { TestDatabase } from '../support/database';
import { bodyOf, httpEvent, lambdaContext, type EventInput } from '../support/events';
import { startRedisServer, type RedisServer } from '../support/redis-server';

/**
 * The API's real handlers against a Redis of the test's own (which it may
 * pause, kill and restart) and the file's own database.
 *
 * config() is read once per module registry, on first use, and importing a
 * handler reads it (httpHandler validates at cold start). So the server is
 * started and REDIS_URL pointed at it first, and everything that reads config
 * is imported after that, dynamically.
 */
export interface FaultStack extends HandlerStack {
  server: RedisServer;
}

/** The handlers and the database, on whatever Redis the caller started (a cluster: startHandlerStack). */
export interface HandlerStack {
  pg: Client;
  call(input: EventInput): Promise<Timed>;
  like(postId: number, userId: number): Promise<Timed>;
  likeStatus(postId: number, userId: number): Promise<Timed>;
  received(authorId: number): Promise<Timed>;
  charge(userId: number, amount: number, idempotencyKey?: string): Promise<Timed>;
  pay(userId: number, items: { itemId: number; quantity: number }[]): Promise<Timed>;
  popular(userId: number): Promise<Timed>;
  health(): Promise<Timed>;
  close(): Promise<void>;
}

/** A handler's answer and how long it took (monotonic clock). */
export interface Timed {
  result: HttpResult;
  ms: number;
  status: number;
  body: Record<string, unknown>;
}

const ROUTES: Record<string, string> = {
  'POST /posts/{postId}/likes': 'like',
  'DELETE /posts/{postId}/likes': 'unlike',
  'GET /posts/{postId}/likes': 'like-status',
  'GET /users/{userId}/received-likes': 'like-status',
  'GET /points': 'charge',
  'POST /points/charge': 'charge',
  'POST /orders': 'pay',
  'GET /items/popular': 'popular-items',
  'GET /items/trending': 'trending-items',
  'GET /health': 'health',
};

export async function startFaultStack(): Promise<FaultStack> {
  const server = await startRedisServer();
  try {
    const stack = await startHandlerStack({ url: server.url, cluster: false });
    return {
      ...stack,
      server,
      async close() {
        await stack.close();
        await server.stop();
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/**
 * The handlers against a Redis the caller owns (and stops): a standalone
 * server or a cluster's node. `remainingMs`: every invocation's time left
 * (lambdaContext's default when absent).
 */
export async function startHandlerStack(redis: { url: string; cluster: boolean }, options: { remainingMs?: number } = {}): Promise<HandlerStack> {
  process.env.REDIS_URL = redis.url;
  process.env.REDIS_CLUSTER = String(redis.cluster);
  let database: TestDatabase | undefined;
  try {
    const { createTestDatabase } = await import('../support/database');
    database = await createTestDatabase();
    const handlers: Record<string, HttpHandler> = {};
    for (const name of new Set(Object.values(ROUTES))) {
      handlers[name] = ((await import(`../../functions/${name}`)) as { handler: HttpHandler }).handler;
    }
    const { closeRedis } = await import('../../lib/platform/redis/client');

    const call = async (input: EventInput): Promise<Timed> => {
      const handler = handlers[ROUTES[input.routeKey]!]!;
      const started = performance.now();
      const result = await handler(httpEvent(input), lambdaContext(options.remainingMs));
      const ms = performance.now() - started;
      let body: Record<string, unknown> = {};
      try {
        body = bodyOf(result);
      } catch {
        // not JSON: the assertions on status and content type say so
      }
      return { result, ms, status: result.statusCode, body };
    };
    const opened = database;
    return {
      pg: opened.pg,
      call,
      like: (postId, userId) => call({ routeKey: 'POST /posts/{postId}/likes', pathParameters: { postId: String(postId) }, userId }),
      likeStatus: (postId, userId) => call({ routeKey: 'GET /posts/{postId}/likes', pathParameters: { postId: String(postId) }, userId }),
      received: (authorId) => call({ routeKey: 'GET /users/{userId}/received-likes', pathParameters: { userId: String(authorId) }, userId: authorId }),
      charge: (userId, amount, idempotencyKey) =>
        call({ routeKey: 'POST /points/charge', body: { amount }, userId, headers: idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {} }),
      pay: (userId, items) => call({ routeKey: 'POST /orders', body: { items }, userId }),
      popular: (userId) => call({ routeKey: 'GET /items/popular', rawQueryString: 'days=3&limit=5', userId }),
      health: () => call({ routeKey: 'GET /health' }),
      async close() {
        await closeRedis();
        await opened.close();
      },
    };
  } catch (error) {
    await database?.close();
    throw error;
  }
}

/** "503 within about 2 s" (docs/api.md, local defaults) on a loaded 2-core machine. */
export const ANSWER_BOUND_MS = 2500;

/**
 * The file's stack, started before its tests and closed after them; a
 * server a test left paused is let go first, so closing cannot hang on it.
 */
export function useFaultStack(): () => FaultStack {
  let stack: FaultStack | undefined;
  beforeAll(async () => {
    stack = await startFaultStack();
  }, 60_000);
  afterAll(async () => {
    stack?.server.resume();
    await stack?.close();
  });
  return () => stack!;
}

/** The answer docs/api.md asks for when a dependency does not answer. */
export function isUnavailableProblem(answer: Timed): boolean {
  return (
    answer.status === 503 &&
    answer.result.headers?.['content-type'] === 'application/problem+json' &&
    answer.body.code === 'DEPENDENCY_UNAVAILABLE' &&
    /^[1-9][0-9]*$/.test(String(answer.result.headers?.['retry-after'] ?? ''))
  );
}

export const is2xx = (answer: Timed): boolean => answer.status >= 200 && answer.status < 300;

/** Retries `attempt` until it answers 2xx; returns the first 2xx and the time since the first try. */
export async function untilServed(attempt: () => Promise<Timed>, giveUpMs = 10_000): Promise<{ answer: Timed; afterMs: number; tries: number }> {
  const started = performance.now();
  for (let tries = 1; ; tries++) {
    const answer = await attempt();
    if (is2xx(answer)) return { answer, afterMs: performance.now() - started, tries };
    if (performance.now() - started > giveUpMs) throw new Error(`not served within ${giveUpMs} ms; last answer ${answer.status} ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function insertUser(pg: Client, id: number, balance = 0): Promise<void> {
  await pg.query('INSERT INTO users (id, name, point_balance) VALUES ($1, $2, $3)', [id, `user ${id}`, balance]);
}

export async function insertPost(pg: Client, id: number, authorId: number): Promise<void> {
  await pg.query('INSERT INTO posts (id, author_id, title) VALUES ($1, $2, $3)', [id, authorId, `post ${id}`]);
}

export async function insertItem(pg: Client, id: number, price: number, stock: number): Promise<void> {
  await pg.query('INSERT INTO items (id, name, price, stock) VALUES ($1, $2, $3, $4)', [id, `item ${id}`, price, stock]);
}

export async function balanceOf(pg: Client, userId: number): Promise<{ balance: number; charges: number }> {
  const { rows } = await pg.query<{ balance: number; charges: number }>(
    `SELECT point_balance::int AS balance,
            (SELECT count(*)::int FROM point_history WHERE user_id = $1 AND type = 'CHARGE') AS charges
     FROM users WHERE id = $1`,
    [userId],
  );
  return rows[0]!;
}

/** A summary for failure messages and the log: status and latency of each answer. */
export const summary = (answers: Timed[]) => answers.map((a) => `${a.status}/${Math.round(a.ms)}ms`).join(' ');
