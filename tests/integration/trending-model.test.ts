import fc from 'fast-check';
import type * as CacheModule from '../../lib/platform/cache';
import { evictGroup } from '../../lib/platform/cache';
import { InstanceTier } from '../../lib/platform/cache/instance-tier';
import type * as RedisModule from '../../lib/platform/redis/client';
import { redis } from '../../lib/platform/redis/client';
import { popularItemsJson } from '../../lib/popular-items/popular-items';
import { countPaidOrder } from '../../lib/trending/counts';
import { minuteOf, trendingKeys } from '../../lib/trending/keys';
import { trendingItems } from '../../lib/trending/trending';
import { useTestDatabase } from '../support/database';
import { testRedis, unlinkMatching } from '../support/redis-nodes';

/**
 * Model tests against real Redis and PostgreSQL: random sequences of orders,
 * failed counts, replays, flushes, clock moves and reads, each answer
 * compared with a reference computed from the model alone.
 */

const t = useTestDatabase();
const prefix = process.env.REDIS_KEY_PREFIX ?? '';
const admin = testRedis();
const ITEMS = [1, 2, 3, 4];

beforeAll(async () => {
  await t.pg.query(`INSERT INTO items (id, name, price, stock) SELECT n, 'item ' || n, n * 10, 0 FROM generate_series(1, 4) AS n`);
});

afterAll(() => {
  admin.disconnect();
});

type Rank = [itemId: number, quantity: number][];

function rankingOf(orders: { minute: number; lines: [number, number][] }[], from: number, until: number, limit: number): Rank {
  const sold = new Map<number, number>();
  for (const order of orders) {
    if (order.minute < from || order.minute > until) continue;
    for (const [item, quantity] of order.lines) sold.set(item, (sold.get(item) ?? 0) + quantity);
  }
  return [...sold]
    .filter(([, quantity]) => quantity > 0)
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, limit);
}

const line = fc.tuple(fc.constantFrom(...ITEMS), fc.integer({ min: 1, max: 5 }));
const lines = fc.uniqueArray(line, { minLength: 1, maxLength: 3, selector: ([item]) => item });
const command = fc.oneof(
  fc.record({ kind: fc.constant('pay' as const), lines }),
  fc.record({ kind: fc.constant('payCountFailed' as const), lines }),
  fc.record({ kind: fc.constant('replay' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('flush' as const) }),
  fc.record({ kind: fc.constant('advance' as const), seconds: fc.integer({ min: 0, max: 400 }) }),
  fc.record({ kind: fc.constant('read' as const), minutes: fc.integer({ min: 1, max: 12 }), limit: fc.integer({ min: 1, max: 4 }), checked: fc.boolean() }),
);

it('answers every trending read as the reference ranking of the orders it has counted, and of all of them after a check', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: 30 }), async (commands) => {
      await t.pg.query('TRUNCATE orders, order_items');
      await unlinkMatching(admin, `${prefix}trending:*`);
      // Starts a few minutes ago, so the clock can move forward past now without leaving the keys' lifetime.
      let clock = Date.now() - 20 * 60_000;
      const orders: { id: number; minute: number; lines: [number, number][]; counted: boolean }[] = [];
      for (const step of commands) {
        switch (step.kind) {
          case 'pay':
          case 'payCountFailed': {
            const { rows } = await t.pg.query<{ id: string; minute: string }>(
              `INSERT INTO orders (user_id, status, total_amount, created_at) VALUES (1, 'PAID', 0, to_timestamp($1 / 1000.0))
               RETURNING id, floor(extract(epoch FROM created_at) / 60)::bigint AS minute`,
              [clock],
            );
            const order = { id: Number(rows[0]!.id), minute: Number(rows[0]!.minute), lines: step.lines, counted: step.kind === 'pay' };
            for (const [item, quantity] of step.lines) {
              await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, $2, $3, 0)', [order.id, item, quantity]);
            }
            // The pay path's call after the commit; a failed one is simply not made.
            if (order.counted) await countPaidOrder({ orderId: order.id, minute: order.minute, lines: order.lines.map(([i, q]) => `${i}:${q}`).join(',') });
            orders.push(order);
            break;
          }
          case 'replay': {
            const order = orders[step.pick % Math.max(1, orders.length)];
            if (!order) break;
            await countPaidOrder({ orderId: order.id, minute: order.minute, lines: order.lines.map(([i, q]) => `${i}:${q}`).join(',') });
            order.counted = true;
            break;
          }
          case 'flush':
            await unlinkMatching(admin, `${prefix}trending:*`);
            // The lease is gone too: the next read checks, and counts everything again.
            for (const order of orders) order.counted = false;
            break;
          case 'advance':
            clock += step.seconds * 1000;
            break;
          case 'read': {
            const current = minuteOf(clock);
            // A second has passed since the last check, or not: the lease says which.
            if (step.checked) await redis().del(trendingKeys.checkLease);
            else await redis().set(trendingKeys.checkLease, '1', 'PX', 60_000);
            const answer = await trendingItems({ minutes: step.minutes, limit: step.limit }, { database: t.db, instance: null, now: () => clock });
            if (step.checked) {
              // This read checked: every order of the last hour is counted now.
              for (const order of orders) if (order.minute >= current - 60 && order.minute <= current) order.counted = true;
            }
            const counted = orders.filter((order) => order.counted);
            expect(answer.items.map((item) => [item.itemId, item.soldQuantity])).toEqual(rankingOf(counted, current - step.minutes, current, step.limit));
            expect(answer.items.map((item) => item.rank)).toEqual(answer.items.map((_, i) => i + 1));
            expect(answer.asOf).toBe(new Date(clock).toISOString());
            break;
          }
        }
      }
    }),
    { numRuns: 25 },
  );
});

it('never answers popular items from before an eviction once δ has passed on the reading instance', async () => {
  const DELTA = 1000;
  const today = new Date();
  // Another instance runs the evictions: a module copy of its own, whose
  // eviction cannot drop this process's memory in passing.
  let other!: { cache: typeof CacheModule; redis: typeof RedisModule };
  jest.isolateModules(() => {
    other = { cache: require('../../lib/platform/cache') as typeof CacheModule, redis: require('../../lib/platform/redis/client') as typeof RedisModule };
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('sell' as const), item: fc.constantFrom(...ITEMS), quantity: fc.integer({ min: 1, max: 9 }) }),
          fc.record({ kind: fc.constant('evict' as const) }),
          fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 1500 }) }),
          fc.record({ kind: fc.constant('read' as const) }),
        ),
        { minLength: 3, maxLength: 25 },
      ),
      async (commands) => {
        await t.pg.query('TRUNCATE orders, order_items');
        let clock = Date.now();
        const tier = new InstanceTier({ freshMs: DELTA, maxEntries: 100, maxBytes: 1 << 20 }, () => clock);
        const read = (instance: InstanceTier | null) => popularItemsJson({ days: 3, limit: 5 }, { database: t.db, instance, now: () => today });
        await evictGroup('popular-items');
        // What Redis held, and from when (this instance's clock): each eviction starts the next.
        const held = [{ since: -Infinity, value: await read(null) }];
        for (const step of commands) {
          if (step.kind === 'sell') {
            const { rows } = await t.pg.query<{ id: string }>(`INSERT INTO orders (user_id, total_amount, created_at) VALUES (1, 0, now() - interval '1 day') RETURNING id`);
            await t.pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, $2, $3, 0)', [rows[0]!.id, step.item, step.quantity]);
          } else if (step.kind === 'evict') {
            await other.cache.evictGroup('popular-items');
            held.push({ since: clock, value: await read(null) });
          } else if (step.kind === 'advance') {
            clock += step.ms;
          } else {
            const answer = await read(tier);
            // Checked at most δ ago: what Redis held at some moment of [clock - δ, clock].
            const allowed = held.filter((value, i) => (held[i + 1]?.since ?? Infinity) >= clock - DELTA).map((value) => value.value);
            expect(allowed).toContain(answer);
          }
        }
      },
    ),
    { numRuns: 20 },
  );
  await other.redis.closeRedis();
});
