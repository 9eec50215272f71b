import { setTimeout as sleep } from 'node:timers/promises';
import { like, likeStatus, unlike } from '../../lib/likes/likes';
import { likeSetKey } from '../../lib/likes/keys';
import { DependencyUnavailableError } from '../../lib/platform/errors';
import { isRedisUnavailable } from '../../lib/platform/dependency-errors';
import { useTestDatabase } from '../support/database';
import { startRedisServer, type RedisServer } from '../support/redis-server';
import { useLikesWorld, type Post } from './likes-durable-support';

/**
 * Redis losing all its data in the middle of a like storm, for real: a
 * FLUSHALL, and a restart without persistence, of a redis-server of this
 * file's own (the machine's Redis is shared by every test run, and deleting
 * keys one by one is not the atomic loss a flush or a restart is).
 * Registered before the database's hooks: the server's URL must be in place
 * before anything reads the configuration.
 */

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
  process.env.REDIS_URL = server.url;
  process.env.REDIS_CLUSTER = 'false';
});
afterAll(async () => {
  await server?.stop();
});

const t = useTestDatabase();
const w = useLikesWorld(t, 1_000);

/** A 503 is an allowed answer while Redis restarts; it changed nothing, which the checks cover. */
async function tolerant(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (error) {
    // What the HTTP layer answers 503 for (lib/platform/http).
    if (!(error instanceof DependencyUnavailableError) && !isRedisUnavailable(error)) throw error;
  }
}

async function expectRecordMatchesRedis(posts: Post[]): Promise<void> {
  for (const post of posts) {
    await likeStatus(post.postId, 0); // loaded, if the loss left it unloaded
    const inRedis = (await w.raw.smembers(w.prefix + likeSetKey(post.authorId, post.postId))).map(Number).sort((a, b) => a - b);
    expect({ postId: post.postId, likes: await w.recorded(post.postId) }).toEqual({ postId: post.postId, likes: inRedis });
  }
}

describe.each([
  ['FLUSHALL', () => w.raw.flushall().then(() => undefined)],
  ['a restart without persistence', () => server.restart()],
])('Redis loses everything (%s) in the middle of a like storm', (_name, loseEverything) => {
  it('keeps every synced like that nothing changed since, and every count equal to the sum of its posts', async () => {
    const posts: Post[] = [];
    for (let author = 0; author < 4; author++) {
      const authorId = w.freshId();
      for (let n = 0; n < 2; n++) posts.push(await w.insertPost(authorId));
    }
    const users = Array.from({ length: 15 }, w.freshId);
    const randomOps = (count: number) =>
      Array.from({ length: count }, () => ({
        operation: Math.random() < 0.7 ? like : unlike,
        post: posts[Math.floor(Math.random() * posts.length)]!,
        userId: users[Math.floor(Math.random() * users.length)]!,
      }));
    await Promise.all(randomOps(300).map(({ operation, post, userId }) => tolerant(operation(post.postId, userId))));
    await w.sync();
    const synced = new Map<number, number[]>();
    for (const post of posts) synced.set(post.postId, await w.recorded(post.postId));

    const storm = randomOps(300);
    const touched = new Set(storm.map(({ post, userId }) => `${post.postId}:${userId}`));
    let lost = false;
    await Promise.all([
      ...storm.map(async ({ operation, post, userId }, n) => {
        await sleep(n % 30); // spread over the loss
        await tolerant(operation(post.postId, userId));
      }),
      sleep(12).then(async () => {
        await loseEverything();
        lost = true;
      }),
    ]);
    expect(lost).toBe(true);
    // Changes made after the loss are pending in a new stream: synced like the
    // others, once Redis answers again (a sync that fails is simply run again).
    for (let attempt = 0; ; attempt++) {
      try {
        await w.sync();
        break;
      } catch (error) {
        if (attempt >= 20) throw error;
        await sleep(100);
      }
    }

    await w.expectCountsConsistent(posts);
    for (const post of posts) {
      for (const userId of users) {
        if (touched.has(`${post.postId}:${userId}`)) continue;
        const { likedByMe } = await likeStatus(post.postId, userId);
        expect({ postId: post.postId, userId, likedByMe }).toEqual({ postId: post.postId, userId, likedByMe: synced.get(post.postId)!.includes(userId) });
      }
    }
    await expectRecordMatchesRedis(posts);
  });
});
