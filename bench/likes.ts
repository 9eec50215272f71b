import { performance } from 'node:perf_hooks';
import { Cluster } from 'ioredis';
import { asJson, db } from '../lib/platform/db';
import { like, likeStatus, unloadPost } from '../lib/likes/likes';
import { likeScript } from '../lib/likes/scripts';
import { likeScriptKeys } from '../lib/likes/keys';
import { syncLikes } from '../lib/likes/sync';
import { config } from '../lib/platform/config';
import { redis, type RedisClient } from '../lib/platform/redis/client';
import { measure, report, reportLatency, section, type LatencyStats } from './harness';
import { likesSettings } from '../lib/likes/settings';

/**
 * A warm like through the service code, against what it cannot beat: a raw
 * EVALSHA of the same script on the same keys, and a raw PING. Then the Redis
 * commands one warm like sends, counted by Redis itself. Then durable likes:
 * sync-likes against a raw multi-row INSERT of the same rows, and the rebuild
 * of a post with 100,000 likes.
 */

const POST_ID = 1;
const AUTHOR_ID = 2;

export async function run(): Promise<void> {
  section('likes: one warm like');
  await db().query('INSERT INTO posts (id, author_id, title) VALUES (:postId, :authorId, :title)', {
    postId: POST_ID,
    authorId: AUTHOR_ID,
    title: 'bench',
  });
  const client = redis();
  try {
    await measureLikes(client, likeScriptKeys(AUTHOR_ID, POST_ID));
    section('likes: sync-likes to post_likes');
    await measureSync();
    section('likes: rebuild after Redis lost a post');
    await measureRebuild(client);
  } finally {
    // The bench environment drops its database, not its Redis keys.
    await dropOwnKeys(client);
  }
}

async function measureLikes(client: RedisClient, keys: string[]): Promise<void> {
  // Every like is by a new user, so every one takes the same path (SADD adds, INCR runs).
  let nextUser = 1;
  const serviceLike = () => like(POST_ID, nextUser++);
  // The same arguments runScript sends: the cutoff first (a deadline script), then user, post, author.
  const rawLike = () => client.evalsha(likeScript.sha1, keys.length, ...keys, Date.now() + 10_000, nextUser++, POST_ID, AUTHOR_ID);
  await serviceLike(); // fills the author caches, loads the post and the author, and loads the script

  const ping = await measure(() => client.ping());
  // Interleaved, so that whatever else this shared machine does falls on both alike.
  const [evalsha, service] = await measureInterleaved(rawLike, serviceLike);
  reportLatency('raw PING (baseline)', ping);
  reportLatency('raw EVALSHA of like.lua', evalsha, ping);
  reportLatency('like() through the service', service, ping);
  report(
    'like() through the service vs raw EVALSHA',
    `x${(service.p50 / evalsha.p50).toFixed(2)} p50, x${(service.p99 / evalsha.p99).toFixed(2)} p99`,
  );

  // commandstats also counts the commands a script runs inside Redis, so a
  // warm like is compared with one raw EVALSHA of the same script on the same
  // path: any command the service sent besides its EVALSHA shows as a difference.
  const likes = 1000;
  const viaService = await commandsPerCall(likes, serviceLike);
  const viaEvalsha = await commandsPerCall(likes, rawLike);
  const sent = 1 + viaService.perCall - viaEvalsha.perCall;
  report('commands executed per like() (INFO commandstats)', `${viaService.perCall.toFixed(2)} [${viaService.breakdown}]`);
  report('commands executed per raw EVALSHA (INFO commandstats)', `${viaEvalsha.perCall.toFixed(2)} [${viaEvalsha.breakdown}]`);
  // Other clients of a shared Redis add a little noise; an extra command per like would add 1.
  const verdict = Math.abs(sent - 1) < 0.05 ? 'ok: must be 1' : 'MUST BE 1 (or other clients were busy on this Redis)';
  report('Redis commands sent per warm like', `${sent.toFixed(2)} (${verdict})`);
}

/** Runs fn `calls` times and returns what Redis executed meanwhile, per call. */
async function commandsPerCall(calls: number, fn: () => Promise<unknown>): Promise<{ perCall: number; breakdown: string }> {
  const before = await commandCalls();
  for (let i = 0; i < calls; i++) await fn();
  const after = await commandCalls();
  // The first INFO is counted in the second snapshot: leave INFO out.
  const delta = [...after]
    .filter(([name]) => name !== 'info')
    .map(([name, count]) => [name, count - (before.get(name) ?? 0)] as const)
    .filter(([, count]) => count > 0);
  const total = delta.reduce((sum, [, count]) => sum + count, 0);
  return { perCall: total / calls, breakdown: delta.map(([name, count]) => `${name} ${+(count / calls).toFixed(3)}`).join(', ') };
}

/** Calls per command since Redis started, e.g. evalsha → 1234. */
async function commandCalls(): Promise<Map<string, number>> {
  const info = await redis().info('commandstats');
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(match[1]!, Number(match[2]));
  return calls;
}

/**
 * Likes made through the service (so the streams hold real changes), synced;
 * against the same rows inserted raw, a multi-row INSERT per batch through
 * the Data API with no transaction, no state and no stream: what the sync's
 * bookkeeping costs on top of the writes themselves.
 */
async function measureSync(): Promise<void> {
  const likes = 20_000;
  const posts = 200;
  await db().query(
    'INSERT INTO posts (id, author_id, title) SELECT 1000 + g, 5000 + g % 97, :title FROM generate_series(1, :posts) AS g',
    { posts, title: 'bench' },
  );
  // Loaded first, one by one: the likes below are warm ones.
  for (let n = 1; n <= posts; n++) await likeStatus(1000 + n, 1);
  const made: { p: number; u: number; l: boolean; t: number }[] = [];
  for (let first = 0; first < likes; first += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        const n = first + i;
        const change = { p: 1000 + 1 + (n % posts), u: 100_000 + n, l: true, t: Date.now() };
        made.push(change);
        return like(change.p, change.u);
      }),
    );
  }
  const batch = likesSettings().LIKES_SYNC_BATCH_SIZE;
  const started = performance.now();
  const summary = await syncLikes();
  const syncMs = performance.now() - started;

  await db().query('CREATE TABLE bench_post_likes (LIKE post_likes INCLUDING ALL)');
  const rawStarted = performance.now();
  for (let first = 0; first < made.length; first += batch) {
    await db().query(
      `INSERT INTO bench_post_likes (post_id, user_id, created_at)
       SELECT p, u, to_timestamp(t / 1000.0) FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(p bigint, u bigint, l boolean, t bigint)
       ON CONFLICT (post_id, user_id) DO NOTHING`,
      { rows: asJson(made.slice(first, first + batch)) },
    );
  }
  const rawMs = performance.now() - rawStarted;
  const syncRate = likes / (syncMs / 1000);
  const rawRate = likes / (rawMs / 1000);
  report('sync-likes', `${likes} likes in ${syncMs.toFixed(0)} ms: ${syncRate.toFixed(0)} likes/s, ${summary.transactions} transactions of <= ${batch}`);
  report('raw multi-row INSERT through the Data API (baseline)', `${likes} rows in ${rawMs.toFixed(0)} ms: ${rawRate.toFixed(0)} rows/s`);
  report('sync-likes vs raw INSERT (throughput)', `x${(syncRate / rawRate).toFixed(2)}`);
}

/**
 * A post with 100,000 likes in post_likes that Redis no longer holds: the
 * first request rebuilds it. Meanwhile a PING loop shows how long Redis was
 * ever kept from answering (the rebuild goes in chunks).
 */
async function measureRebuild(client: RedisClient): Promise<void> {
  const postId = 9_000_001;
  const authorId = 9_000_002;
  const likes = 100_000;
  await db().query('INSERT INTO posts (id, author_id, title) VALUES (:postId, :authorId, :title)', { postId, authorId, title: 'bench' });
  await db().query('INSERT INTO post_likes (post_id, user_id) SELECT :postId, g FROM generate_series(1, :likes) AS g', { postId, likes });
  await likeStatus(postId, 1); // loads the author cache, the scripts and the post
  const ping = await measure(() => client.ping(), 500, 50);
  await unloadPost(authorId, postId); // as after a flush: the post must come from post_likes again

  let pinging = true;
  let worstPing = 0;
  const pings = (async () => {
    while (pinging) {
      const sent = performance.now();
      await client.ping();
      worstPing = Math.max(worstPing, performance.now() - sent);
    }
  })();
  const started = performance.now();
  const status = await likeStatus(postId, 1);
  const rebuildMs = performance.now() - started;
  pinging = false;
  await pings;
  if (status.likeCount !== likes) throw new Error(`rebuilt ${status.likeCount} likes, not ${likes}`);
  report('rebuild of a post with 100,000 likes (first request)', `${rebuildMs.toFixed(0)} ms, in chunks of ${likesSettings().LIKES_REBUILD_CHUNK_SIZE}`);
  report('longest PING during the rebuild', `${worstPing.toFixed(2)} ms (PING p99 ${ping.p99.toFixed(3)} ms when idle)`);
}

/** Every key of this run's prefix (standalone Redis: one SCAN; a cluster run leaves them to expire with its prefix). */
async function dropOwnKeys(client: RedisClient): Promise<void> {
  if (client instanceof Cluster) return;
  const prefix = config().redis.keyPrefix;
  if (!prefix) return;
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    // SCAN answers full names; the client would prefix them again.
    if (keys.length > 0) await client.unlink(...keys.map((key) => key.slice(prefix.length)));
    cursor = next;
  } while (cursor !== '0');
}

/** Like harness.measure, for two functions run alternately (a, b, a, b, ...). */
async function measureInterleaved(a: () => Promise<unknown>, b: () => Promise<unknown>, iterations = 4000, warmup = 400): Promise<[LatencyStats, LatencyStats]> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const samples = [new Float64Array(iterations), new Float64Array(iterations)] as const;
  for (let i = 0; i < iterations; i++) {
    for (const [n, fn] of [a, b].entries()) {
      const start = performance.now();
      await fn();
      samples[n]![i] = performance.now() - start;
    }
  }
  const stats = (sorted: Float64Array): LatencyStats => {
    sorted.sort();
    const at = (q: number) => sorted[Math.min(iterations - 1, Math.floor(q * iterations))]!;
    return { n: iterations, p50: at(0.5), p99: at(0.99), mean: sorted.reduce((sum, x) => sum + x, 0) / iterations };
  };
  return [stats(samples[0]), stats(samples[1])];
}
