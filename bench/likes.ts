import { db } from '../lib/platform/db';
import { like, likeScript, likeSetKey, receivedLikesKey } from '../lib/likes/likes';
import { authorshipKey, postAuthorKey } from '../lib/likes/post-authors';
import { redis, type RedisClient } from '../lib/platform/redis';
import { measure, report, reportLatency, section } from './harness';

/**
 * A warm like through the service code, against what it cannot beat: a raw
 * EVALSHA of the same script on the same keys, and a raw PING. Then the Redis
 * commands one warm like sends, counted by Redis itself.
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
  const keys = [likeSetKey(AUTHOR_ID, POST_ID), receivedLikesKey(AUTHOR_ID), authorshipKey(AUTHOR_ID, POST_ID)];
  try {
    await measureLikes(client, keys);
  } finally {
    // The bench environment drops its database, not its Redis keys.
    await client.del(...keys, postAuthorKey(POST_ID));
  }
}

async function measureLikes(client: RedisClient, keys: string[]): Promise<void> {
  // Every like is by a new user, so every one takes the same path (SADD adds, INCR runs).
  let nextUser = 1;
  const serviceLike = () => like(POST_ID, nextUser++);
  const rawLike = () => client.evalsha(likeScript.sha1, keys.length, ...keys, nextUser++);
  await serviceLike(); // fills the author caches and loads the script

  const ping = await measure(() => client.ping());
  const evalsha = await measure(rawLike);
  const service = await measure(serviceLike);
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
