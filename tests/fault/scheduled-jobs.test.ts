import { Client } from 'pg';
import { handler as evictPopularItems } from '../../functions/evict-popular-items';
import { handler as purgeIdempotencyKeys } from '../../functions/purge-idempotency-keys';
import { handler as syncLikes } from '../../functions/sync-likes';
import { like } from '../../lib/likes/likes';
import { config } from '../../lib/platform/config';
import { DatabaseUnavailableError } from '../../lib/platform/db';
import { ROLLUP_STATEMENT_TIMEOUT_MS } from '../../lib/popular-items/popular-items';
import { useTestDatabase } from '../support/database';
import { lambdaContext } from '../support/events';
import { useDataApiProxy } from './db-harness';

/**
 * The scheduled functions, through their Lambda entry points with a real
 * Lambda context, on a slow database (a fault proxy in front of the Data
 * API). A request's Data API call is cut at DB_CALL_TIMEOUT_MS; a scheduled
 * job's calls are not (a batch of a thousand likes, a day of orders, a purge
 * batch may each take longer), but every one of them still ends within the
 * invocation's own remaining time, never in the platform's timeout.
 */

// Before anything reads the configuration.
const dataApiProxy = useDataApiProxy();
const t = useTestDatabase();

// Each way: so every Data API call takes more than twice this, above DB_CALL_TIMEOUT_MS.
const SLOW_MS = 700;

afterEach(() => dataApiProxy().set({ mode: 'pass' }));

it('the proxy makes every Data API call slower than a request may wait', () => {
  expect(2 * SLOW_MS).toBeGreaterThan(config().db.callTimeoutMs);
});

it('sync-likes writes a batch whose statement is slower than DB_CALL_TIMEOUT_MS', async () => {
  await t.pg.query("INSERT INTO posts (id, author_id, title) VALUES (1, 1, 'p'), (2, 2, 'q')");
  const users = Array.from({ length: 300 }, (_, n) => 1000 + n);
  for (const userId of users) await like(1 + (userId % 2), userId);
  dataApiProxy().set({ mode: 'latency', ms: SLOW_MS });
  const context = lambdaContext(40_000);
  const summary = await syncLikes(undefined, context);
  expect(summary).toMatchObject({ applied: users.length, caughtUp: true });
  const { rows } = await t.pg.query<{ n: number }>('SELECT count(*)::int AS n FROM post_likes');
  expect(rows[0]!.n).toBe(users.length);
}, 60_000);

it('sync-likes on a database that does not answer gives up within its invocation, before the platform would', async () => {
  await t.pg.query("INSERT INTO posts (id, author_id, title) VALUES (3, 3, 'r')");
  await like(3, 7);
  dataApiProxy().set({ mode: 'blackhole' });
  // Enough for one round (a run starts none with less than 10 s left).
  const context = lambdaContext(12_500);
  await expect(syncLikes(undefined, context)).rejects.toBeInstanceOf(DatabaseUnavailableError);
  expect(context.getRemainingTimeInMillis()).toBeGreaterThan(0);
  // The database is back (and the connections the black hole swallowed are gone): the next run syncs.
  dataApiProxy().set({ mode: 'pass' });
  dataApiProxy().closeAll();
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(await syncLikes(undefined, lambdaContext(30_000))).toMatchObject({ caughtUp: true });
}, 60_000);

it('purge-idempotency-keys deletes a batch slower than DB_CALL_TIMEOUT_MS', async () => {
  await t.pg.query(
    `INSERT INTO idempotency_keys (user_id, route, idempotency_key, request_hash, status_code, response_body, created_at)
     SELECT 1, 'POST /points/charge', 'k' || g, 'h', 200, '{}', now() - interval '30 days' FROM generate_series(1, 50) AS g`,
  );
  dataApiProxy().set({ mode: 'latency', ms: SLOW_MS });
  expect(await purgeIdempotencyKeys(undefined, lambdaContext(30_000))).toEqual({ purged: 50, purgedRequests: 0, purgedQueued: 0 });
}, 60_000);

it('purge-idempotency-keys on a database that does not answer gives up within its invocation, before the platform would', async () => {
  dataApiProxy().set({ mode: 'blackhole' });
  const context = lambdaContext(4000);
  await expect(purgeIdempotencyKeys(undefined, context)).rejects.toBeInstanceOf(DatabaseUnavailableError);
  expect(context.getRemainingTimeInMillis()).toBeGreaterThan(0);
}, 60_000);

it('evict-popular-items recomputes, evicts and re-warms with every statement slower than DB_CALL_TIMEOUT_MS', async () => {
  await t.pg.query("INSERT INTO items (id, name, price, stock) VALUES (1, 'a', 100, 10), (2, 'b', 100, 10)");
  const { rows } = await t.pg.query<{ id: string }>(
    "INSERT INTO orders (user_id, status, total_amount, created_at) VALUES (1, 'PAID', 300, now() - interval '1 day') RETURNING id",
  );
  await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, 2, 3, 100)', [rows[0]!.id]);
  dataApiProxy().set({ mode: 'latency', ms: SLOW_MS });
  const summary = await evictPopularItems(undefined, lambdaContext(120_000));
  expect(summary.rolledUp).toBeGreaterThan(0);
  expect(summary.warmed.items).toBe(1);
}, 180_000);

it('the recompute waits for a statement no longer than the database lets it run', async () => {
  // A new session, as the Data API opens them: it gets the database's default (migration 005).
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${process.env.DB_NAME}`;
  const session = new Client({ connectionString: url.toString() });
  await session.connect();
  try {
    const { rows } = await session.query<{ ms: string }>("SELECT EXTRACT(EPOCH FROM current_setting('statement_timeout')::interval) * 1000 AS ms");
    expect(Number(rows[0]!.ms)).toBeGreaterThan(0);
    expect(ROLLUP_STATEMENT_TIMEOUT_MS).toBeLessThanOrEqual(Number(rows[0]!.ms));
  } finally {
    await session.end();
  }
});
