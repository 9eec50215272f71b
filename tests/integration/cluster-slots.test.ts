import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import calculateSlot from 'cluster-key-slot';
import { handler as charge } from '../../functions/charge';
import { handler as evictPopularItems } from '../../functions/evict-popular-items';
import { handler as like } from '../../functions/like';
import { handler as likeStatus } from '../../functions/like-status';
import { handler as pay } from '../../functions/pay';
import { handler as popularItems } from '../../functions/popular-items';
import { handler as trendingItems } from '../../functions/trending-items';
import { trendingKeys } from '../../lib/trending/keys';
import { trendingItems as trendingRanking } from '../../lib/trending/trending';
import { handler as syncLikes } from '../../functions/sync-likes';
import { handler as unlike } from '../../functions/unlike';
import { likeStatus as postLikeStatus, unloadPost } from '../../lib/likes/likes';
import { postAuthors } from '../../lib/likes/post-authors';
import { config } from '../../lib/platform/config';
import { redis } from '../../lib/platform/redis/client';
import * as scriptsModule from '../../lib/platform/redis/scripts';
import type { LuaScript } from '../../lib/platform/redis/scripts';
import { projectRoot } from '../../local/env';
import { useTestDatabase } from '../support/database';
import { httpEvent, lambdaContext } from '../support/events';
import { masters, onCluster, testRedis, unlinkMatching, type TestRedisClient } from '../support/redis-nodes';

/**
 * Redis Cluster runs a script only when all its KEYS hash to one slot
 * (CROSSSLOT otherwise). This drives every feature through its real handlers
 * (likes, their rebuild, unload and sync, charge and pay with an Idempotency-Key,
 * a contended lock, popular items and their eviction), records every script
 * call with the keys it was given, and checks each call's keys, as Redis
 * will see them (with REDIS_KEY_PREFIX), share one slot: by CLUSTER KEYSLOT
 * when the run is on a cluster (TEST_REDIS=cluster), else by the same CRC16
 * ioredis routes with. It also lists the Lua scripts under lib/ that no scenario
 * reached, so a new script cannot slip past unchecked.
 */

const t = useTestDatabase();
const prefix = config().redis.keyPrefix;
const calls: { script: LuaScript; keys: string[] }[] = [];
let raw: TestRedisClient;

beforeAll(() => {
  raw = testRedis();
  const original = scriptsModule.runScript;
  jest.spyOn(scriptsModule, 'runScript').mockImplementation((script, keys, args, client) => {
    calls.push({ script, keys: keys.map((key) => prefix + key) });
    return original(script, keys, args, client);
  });
});

afterAll(() => {
  jest.restoreAllMocks();
  raw.disconnect();
});

const call = (fn: typeof like, input: Parameters<typeof httpEvent>[0]) => fn(httpEvent(input), lambdaContext());

/** Every scenario the API has, once, with the statuses it must answer. */
async function driveEveryFeature(): Promise<number[]> {
  const pg = t.pg;
  // Authors in different like buckets, a buyer, an item.
  await pg.query("INSERT INTO users (id, name, point_balance) VALUES (1, 'a', 0), (2, 'b', 0), (3, 'buyer', 100000)");
  await pg.query("INSERT INTO posts (id, author_id, title) VALUES (10, 1, 'p'), (11, 1, 'q'), (20, 2, 'r')");
  await pg.query("INSERT INTO items (id, name, price, stock) VALUES (7, 'item', 100, 1000)");
  const statuses: number[] = [];
  const record = async (result: Promise<{ statusCode: number }>) => statuses.push((await result).statusCode);
  const likeRoute = (postId: number, userId: number) => ({ routeKey: 'POST /posts/{postId}/likes', pathParameters: { postId: String(postId) }, userId });
  for (const postId of [10, 11, 20]) await record(call(like, likeRoute(postId, 3)));
  await record(call(unlike, { ...likeRoute(11, 3), routeKey: 'DELETE /posts/{postId}/likes' }));
  await record(call(likeStatus, { ...likeRoute(10, 3), routeKey: 'GET /posts/{postId}/likes' }));
  await record(call(likeStatus, { routeKey: 'GET /users/{userId}/received-likes', pathParameters: { userId: '1' }, userId: 3 }));
  await syncLikes(undefined, lambdaContext(30_000));
  // Redis forgets this file's keys (a flush, a failover to an empty node): the next calls rebuild.
  await unlinkMatching(raw, `${prefix}*`);
  await record(call(like, likeRoute(10, 2)));
  await record(call(likeStatus, { routeKey: 'GET /users/{userId}/received-likes', pathParameters: { userId: '1' }, userId: 3 }));
  await syncLikes(undefined, lambdaContext(30_000));
  // npm run likes:rebuild drops a post's likes from Redis; the next like loads them again.
  await unloadPost(1, 10);
  await record(call(like, likeRoute(10, 1)));
  // A rebuild whose database read fails frees its lock and its bucket's pin at once.
  await unloadPost(1, 10);
  const down = { query: () => Promise.reject(new Error('database down')) };
  await expect(postLikeStatus(10, 3, { redis: redis(), authors: postAuthors(), db: down })).rejects.toThrow('database down');
  // Points: keys with braces of their own must not move the marker to another slot.
  const keyed = (key: string) => ({ 'Idempotency-Key': key });
  await record(call(charge, { routeKey: 'POST /points/charge', body: { amount: 500 }, headers: keyed('}{x}{'), userId: 3 }));
  await record(call(charge, { routeKey: 'POST /points/charge', body: { amount: 500 }, headers: keyed('}{x}{'), userId: 3 }));
  await record(call(pay, { routeKey: 'POST /orders', body: { items: [{ itemId: 7, quantity: 1 }] }, headers: keyed('{order}'), userId: 3 }));
  // A contended lock: ten charges of one user at once wait for each other.
  await Promise.all(Array.from({ length: 10 }, () => record(call(charge, { routeKey: 'POST /points/charge', body: { amount: 1 }, userId: 3 }))));
  await record(call(popularItems, { routeKey: 'GET /items/popular', rawQueryString: 'days=3&limit=5', userId: 3 }));
  await record(call(popularItems, { routeKey: 'GET /items/popular', rawQueryString: 'days=1&limit=5', userId: 3 }));
  await evictPopularItems();
  // Trending: the pay above counted its order; a read checks the counts
  // against the table, one written straight to the table is counted by the
  // next check, and one deleted from it is taken out.
  await record(call(trendingItems, { routeKey: 'GET /items/trending', rawQueryString: 'minutes=10&limit=5', userId: 3 }));
  const { rows } = await pg.query<{ id: string }>("INSERT INTO orders (user_id, status, total_amount) VALUES (3, 'PAID', 0) RETURNING id");
  await pg.query('INSERT INTO order_items (order_id, item_id, quantity, unit_price) VALUES ($1, 7, 2, 0)', [rows[0]!.id]);
  // The read above holds the check lease for a second: each of these checks at once.
  const checkNow = async () => {
    await redis().del(trendingKeys.checkLease);
    await trendingRanking({ minutes: 10, limit: 5 }, { instance: null });
  };
  await checkNow();
  await pg.query('DELETE FROM order_items WHERE order_id = $1', [rows[0]!.id]);
  await pg.query('DELETE FROM orders WHERE id = $1', [rows[0]!.id]);
  await checkNow();
  return statuses;
}

it("gives every script keys of one slot, as Redis Cluster requires", async () => {
  const statuses = await driveEveryFeature();

  const node = onCluster() ? (await masters(raw))[0]! : undefined;
  const spread: string[] = [];
  for (const { script, keys } of calls) {
    const slots = await Promise.all(keys.map(async (key) => (node ? Number(await node.cluster('KEYSLOT', key)) : calculateSlot(key))));
    if (node) expect(slots).toEqual(keys.map((key) => calculateSlot(key))); // ioredis routes where Redis hashes
    if (new Set(slots).size > 1) spread.push(`${script.name}: ${keys.map((key, i) => `${key} → ${slots[i]}`).join(', ')}`);
  }
  expect(spread).toEqual([]);
  expect(calls.length).toBeGreaterThan(0);
  // After the slots: a feature that fails for another reason must not hide a CROSSSLOT.
  expect(statuses.filter((status) => status >= 300)).toEqual([]);
});

it('reaches every Lua script under lib/ (a script no scenario runs is a script this test does not check)', () => {
  const seen = calls.map(({ script }) => script.source);
  // A prelude is part of the scripts it opens (lib/platform/redis/scripts.ts), not a script.
  const files = readdirSync(join(projectRoot, 'lib'), { recursive: true }).map(String).filter((file) => file.endsWith('.lua') && !file.endsWith('.prelude.lua'));
  const source = (file: string) => readFileSync(join(projectRoot, 'lib', file), 'utf8');
  const unreached = files.filter((file) => !seen.some((joined) => joined.endsWith(source(file))));
  // A script of one key cannot span slots: one that only failure paths reach
  // (a lost lease, a raced rebuild) may stay unreached here.
  // As declared: a script whose shared body sits in its prelude names no KEYS itself.
  const declared = (file: string) => scriptsModule.declaredScripts().find((script) => script.source.endsWith(source(file)));
  const manyKeys = (file: string) => (declared(file)?.numberOfKeys ?? Infinity) > 1;
  expect(unreached.filter(manyKeys)).toEqual([]);
});
