// Read once, on first use of the configuration: this file checks deleted
// posts, so their authorship marker is rechecked after a second.
process.env.LIKES_POST_RECHECK_SECONDS = '1';

import { setTimeout as sleep } from 'node:timers/promises';
import type Redis from 'ioredis';
import { checkLikes, rebuildAll } from '../../lib/likes/admin';
import { bucketMetaKey, bucketOf, changesKey, likeScriptKeys, likeSetKey, receivedLikesKey } from '../../lib/likes/keys';
import { like, likeStatus, receivedLikes, unlike, unloadPost } from '../../lib/likes/likes';
import { likeScript, unlikeScript } from '../../lib/likes/scripts';
import { Deadline, withDeadline } from '../../lib/platform/deadline';
import { NotFoundError } from '../../lib/platform/errors';
import { createPostAuthors } from '../../lib/likes/post-authors';
import { useTestDatabase } from '../support/database';
import { recordCommands } from '../support/redis-commands';
import { testRedis } from '../support/redis-nodes';
import { useLikesWorld, type Post } from './likes-durable-support';

/**
 * Durable likes (docs/api.md "Durable likes") against real Redis and PostgreSQL:
 * the write-behind to post_likes, exactly once, and the rebuild after Redis
 * loses its data.
 */

const t = useTestDatabase();
const w = useLikesWorld(t, 1_000);

/** Every change of this file is synced and trimmed, so each test starts from a caught-up stream. */
afterEach(async () => {
  await w.sync();
});

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

async function expectRecordMatchesRedis(posts: Post[]): Promise<void> {
  for (const post of posts) {
    const inRedis = (await w.raw.smembers(w.prefix + likeSetKey(post.authorId, post.postId))).map(Number).sort((a, b) => a - b);
    expect({ postId: post.postId, likes: await w.recorded(post.postId) }).toEqual({ postId: post.postId, likes: inRedis });
  }
}

describe('write-behind', () => {
  it('writes likes and unlikes to post_likes; a second sync finds nothing to do', async () => {
    const post = await w.insertPost();
    const [a, b, c] = [w.freshId(), w.freshId(), w.freshId()];
    for (const userId of [a, b, c]) await like(post.postId, userId);
    await unlike(post.postId, b);
    expect(await w.recorded(post.postId)).toEqual([]);

    const first = await w.sync();
    expect(first).toMatchObject({ caughtUp: true });
    expect(first.applied).toBeGreaterThanOrEqual(3); // a, c, and b's last change
    expect(await w.recorded(post.postId)).toEqual([a, c]);
    expect(await w.raw.xlen(w.prefix + changesKey(bucketOf(post.authorId)))).toBe(0);

    expect(await w.sync()).toEqual({ applied: 0, alreadyApplied: 0, transactions: 0, rounds: 1, caughtUp: true });
    expect(await w.recorded(post.postId)).toEqual([a, c]);
  });

  it('keeps the order inside one batch: like then unlike ends unliked, unlike then like ends liked', async () => {
    const post = await w.insertPost();
    const [kept, dropped] = [w.freshId(), w.freshId()];
    await like(post.postId, kept);
    await w.sync();
    await unlike(post.postId, kept);
    await like(post.postId, kept);
    await like(post.postId, dropped);
    await unlike(post.postId, dropped);
    await w.sync();
    expect(await w.recorded(post.postId)).toEqual([kept]);
  });

  it('stores when the like was made', async () => {
    const post = await w.insertPost();
    const before = Date.now();
    await like(post.postId, w.freshId());
    await w.sync();
    const { rows } = await t.pg.query<{ created_at: Date }>('SELECT created_at FROM post_likes WHERE post_id = $1', [post.postId]);
    expect(rows[0]!.created_at.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(rows[0]!.created_at.getTime()).toBeLessThanOrEqual(Date.now() + 5);
  });

  it('a sync that dies after its commit and before its trim: the next one counts nothing twice', async () => {
    const post = await w.insertPost();
    const users = Array.from({ length: 20 }, w.freshId);
    for (const userId of users) await like(post.postId, userId);
    await expect(w.sync({ afterCommit: () => Promise.reject(new Error('killed after the commit')) })).rejects.toThrow('killed');
    expect(await w.recorded(post.postId)).toEqual(users);
    // Still in the stream: the trim never ran.
    expect(await w.raw.xlen(w.prefix + changesKey(bucketOf(post.authorId)))).toBe(20);

    // Meanwhile half of them change their minds: replaying the old likes must not undo that.
    for (const userId of users.slice(0, 10)) await unlike(post.postId, userId);
    const rerun = await w.sync();
    expect(rerun.alreadyApplied).toBe(20);
    expect(rerun.caughtUp).toBe(true);
    expect(await w.recorded(post.postId)).toEqual(users.slice(10));
    expect(await w.raw.xlen(w.prefix + changesKey(bucketOf(post.authorId)))).toBe(0);
    await expectRecordMatchesRedis([post]);
  });

  it('a Redis that went back to an older copy (a failover to a lagging replica) still has its new changes synced', async () => {
    const post = await w.insertPost();
    const [kept, forgotten, later] = [w.freshId(), w.freshId(), w.freshId()];
    await like(post.postId, kept);
    await w.sync();
    await like(post.postId, forgotten);
    await w.sync();
    // The replica never got the second like: its copy lacks it, and numbers changes from there again.
    const meta = w.prefix + bucketMetaKey(bucketOf(post.authorId));
    await w.raw.hincrby(meta, 'seq', -1);
    await w.raw.srem(w.prefix + likeSetKey(post.authorId, post.postId), String(forgotten));
    await w.raw.decr(w.prefix + receivedLikesKey(post.authorId));

    expect(await like(post.postId, later)).toMatchObject({ changed: true, likeCount: 2 });
    await w.sync();
    expect(await w.recorded(post.postId)).toEqual([kept, forgotten, later].sort((a, b) => a - b));
    // Redis lacks a synced like: the check says so, and a rebuild puts it back.
    expect((await checkLikes()).drift).toContainEqual({ kind: 'post', id: post.postId, redis: 2, expected: 3 });
    await rebuildAll();
    expect(await likeStatus(post.postId, forgotten)).toEqual({ postId: post.postId, likeCount: 3, likedByMe: true });
    expect(await receivedLikes(post.authorId)).toEqual({ userId: post.authorId, receivedLikeCount: 3 });
  });

  it('two syncs at once apply every change once', async () => {
    const posts: Post[] = [];
    for (let n = 0; n < 12; n++) posts.push(await w.insertPost());
    const users = Array.from({ length: 15 }, w.freshId);
    await Promise.all(posts.flatMap((post) => users.map((userId) => like(post.postId, userId))));
    await Promise.all(posts.flatMap((post) => users.slice(0, 5).map((userId) => unlike(post.postId, userId))));

    const [one, two] = await Promise.all([w.sync({ batchSize: 50 }), w.sync({ batchSize: 50 })]);
    expect(one.caughtUp || two.caughtUp).toBe(true);
    await w.sync();
    await expectRecordMatchesRedis(posts);
    for (const post of posts) expect(await w.recorded(post.postId)).toEqual(users.slice(5));
  });

  it('likes and unlikes racing syncs: the record ends equal to Redis', async () => {
    const posts: Post[] = [];
    for (let n = 0; n < 6; n++) posts.push(await w.insertPost());
    const users = Array.from({ length: 12 }, w.freshId);
    const operations = shuffle(posts.flatMap((post) => users.flatMap((userId) => [like, unlike, like].map((operation) => ({ operation, post, userId })))));
    let storming = true;
    const syncs = (async () => {
      while (storming) await w.sync({ batchSize: 20 });
    })();
    for (let first = 0; first < operations.length; first += 25) {
      await Promise.all(operations.slice(first, first + 25).map(({ operation, post, userId }) => operation(post.postId, userId)));
    }
    storming = false;
    await syncs;
    await w.sync();
    await expectRecordMatchesRedis(posts);
    await w.expectCountsConsistent(posts);
  });
});

describe('rebuild on first use', () => {
  it('after Redis loses everything, synced likes are all counted and a new like adds to them', async () => {
    const authorId = w.freshId();
    const first = await w.insertPost(authorId);
    const second = await w.insertPost(authorId);
    const fans = Array.from({ length: 5 }, w.freshId);
    for (const userId of fans) await like(first.postId, userId);
    for (const userId of fans.slice(0, 3)) await like(second.postId, userId);
    await w.sync();
    const lateFan = w.freshId();
    await like(first.postId, lateFan); // never synced: may be lost, and is

    await w.loseRedis();
    // The author first, before any of their posts is loaded: the count comes from all of them.
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 8 });
    expect(await likeStatus(first.postId, fans[0]!)).toEqual({ postId: first.postId, likeCount: 5, likedByMe: true });
    expect(await likeStatus(first.postId, lateFan)).toEqual({ postId: first.postId, likeCount: 5, likedByMe: false });

    expect(await like(second.postId, w.freshId())).toMatchObject({ changed: true, likeCount: 4 });
    expect(await like(second.postId, fans[0]!)).toMatchObject({ changed: false, likeCount: 4 });
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 9 });
    await w.expectCountsConsistent([first, second]);
  });

  it('a like on a post first: the post and the author are rebuilt before it is counted', async () => {
    const authorId = w.freshId();
    const posts = [await w.insertPost(authorId), await w.insertPost(authorId), await w.insertPost(authorId)];
    for (const [n, post] of posts.entries()) {
      for (let i = 0; i <= n; i++) await like(post.postId, w.freshId());
    }
    await w.sync();
    await w.loseRedis();
    expect(await like(posts[2]!.postId, w.freshId())).toMatchObject({ changed: true, likeCount: 4 });
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 7 });
    await w.expectCountsConsistent(posts);
  });

  it('a rebuild keeps the changes still waiting for the sync', async () => {
    const post = await w.insertPost();
    const synced = w.freshId();
    const pending = w.freshId();
    await like(post.postId, synced);
    await w.sync();
    await like(post.postId, pending);
    await unlike(post.postId, synced);
    // Redis forgets it holds the post and its author (npm run likes:rebuild does this), the stream stays.
    await unloadPost(post.authorId, post.postId);
    expect(await likeStatus(post.postId, pending)).toEqual({ postId: post.postId, likeCount: 1, likedByMe: true });
    expect(await likeStatus(post.postId, synced)).toEqual({ postId: post.postId, likeCount: 1, likedByMe: false });
    expect(await receivedLikes(post.authorId)).toEqual({ userId: post.authorId, receivedLikeCount: 1 });
    await w.sync();
    expect(await w.recorded(post.postId)).toEqual([pending]);
  });

  it('a rebuild that races a sync counts each change once', async () => {
    const post = await w.insertPost();
    const users = Array.from({ length: 30 }, w.freshId);
    for (const userId of users) await like(post.postId, userId);
    await unloadPost(post.authorId, post.postId);
    // The rebuild and the sync (which trims what the rebuild may be replaying) at once.
    const [status] = await Promise.all([likeStatus(post.postId, users[0]!), w.sync()]);
    expect(status.likeCount).toBe(30);
    expect(await receivedLikes(post.authorId)).toEqual({ userId: post.authorId, receivedLikeCount: 30 });
  });

  it('a database reset under a Redis that kept its data: the likes are rebuilt from the new record, not 500 forever', async () => {
    const post = await w.insertPost();
    const [gone, kept] = [w.freshId(), w.freshId()];
    await like(post.postId, gone);
    await w.sync(); // applied to the old record, and trimmed from the stream
    await like(post.postId, kept); // still in the stream
    // The record starts over (a test suite's fresh database, a restore): it
    // knows nothing of what the stream was synced to before.
    await t.pg.query('TRUNCATE post_likes, likes_sync_state');
    await unloadPost(post.authorId, post.postId);
    expect(await likeStatus(post.postId, kept)).toEqual({ postId: post.postId, likeCount: 1, likedByMe: true });
    expect(await receivedLikes(post.authorId)).toEqual({ userId: post.authorId, receivedLikeCount: 1 });
    await w.expectCountsConsistent([post]);
  });

  it('concurrent first requests on a post with 20,000 likes rebuild it once, in chunks', async () => {
    const post = await w.insertPost();
    await t.pg.query('INSERT INTO post_likes (post_id, user_id) SELECT $1, g FROM generate_series(1, 20000) AS g', [post.postId]);
    await w.loseRedis();
    const client = testRedis({ keyPrefix: w.prefix }) as Redis;
    // Every script call that carries this post's rebuild work set.
    const scripts = recordCommands(client, [], (command) => command.args.some((arg) => String(arg).includes(`:post:${post.postId}:rebuild:`)));
    try {
      const deps = { redis: client, authors: createPostAuthors(client, t.db), db: t.db };
      const answers = await Promise.all(Array.from({ length: 20 }, () => likeStatus(post.postId, 7, deps)));
      expect(answers.every((answer) => answer.likeCount === 20000 && answer.likedByMe)).toBe(true);
    } finally {
      client.disconnect();
    }
    // 20,000 ids in chunks of LIKES_REBUILD_CHUNK_SIZE (2000): 10 chunk calls and one finishing call, from one rebuilder.
    expect(scripts).toHaveLength(11);
    expect(await receivedLikes(post.authorId)).toEqual({ userId: post.authorId, receivedLikeCount: 20000 });
  });

  it('likes:rebuild repairs drift that likes:check reports', async () => {
    const post = await w.insertPost();
    const users = [w.freshId(), w.freshId()];
    for (const userId of users) await like(post.postId, userId);
    await w.sync();
    expect((await checkLikes()).drift).toEqual([]);
    // Drift: a like in Redis that no change recorded (a manual edit, a bug).
    await w.raw.sadd(w.prefix + likeSetKey(post.authorId, post.postId), '424242');
    expect((await checkLikes()).drift).toContainEqual({ kind: 'post', id: post.postId, redis: 3, expected: 2 });
    await rebuildAll();
    expect((await checkLikes()).drift).toEqual([]);
    expect(await likeStatus(post.postId, 424242)).toEqual({ postId: post.postId, likeCount: 2, likedByMe: false });
  });
});

describe('deleted posts', () => {
  it('stop taking likes within LIKES_POST_RECHECK_SECONDS, and leave their author’s count', async () => {
    const authorId = w.freshId();
    const kept = await w.insertPost(authorId);
    const deleted = await w.insertPost(authorId);
    await like(kept.postId, w.freshId());
    await like(deleted.postId, w.freshId());
    await like(deleted.postId, w.freshId());
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 3 });
    await w.sync();

    await t.pg.query('DELETE FROM posts WHERE id = $1', [deleted.postId]);
    await sleep(1_100);
    await expect(like(deleted.postId, w.freshId())).rejects.toBeInstanceOf(NotFoundError);
    await expect(likeStatus(deleted.postId, w.freshId())).rejects.toBeInstanceOf(NotFoundError);
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 1 });
    await w.expectCountsConsistent([kept]);
  });
});

describe('nothing refused happens later', () => {
  it('a like whose request gave up before it reached Redis writes nothing, not even a change', async () => {
    const post = await w.insertPost();
    await likeStatus(post.postId, 1); // loaded, so only the like itself is left to refuse
    await receivedLikes(post.authorId);
    const stream = w.prefix + changesKey(bucketOf(post.authorId));
    const before = await w.raw.xlen(stream);
    const userId = w.freshId();
    // The client gives up at once (or Redis refuses it): either way, a 503.
    await expect(withDeadline(new Deadline(0), () => like(post.postId, userId))).rejects.toThrow(/EXPIRED|timed out/);
    // The script itself, reached after its cutoff (a paused Redis resuming): it refuses before any write.
    const keys = likeScriptKeys(post.authorId, post.postId).map((key) => w.prefix + key);
    for (const { source } of [likeScript, unlikeScript]) {
      await expect(w.raw.eval(source, keys.length, ...keys, Date.now() - 1000, userId, post.postId, post.authorId)).rejects.toThrow(/^EXPIRED/);
    }
    expect(await likeStatus(post.postId, userId)).toEqual({ postId: post.postId, likeCount: 0, likedByMe: false });
    expect(await w.raw.xlen(stream)).toBe(before);
    expect(await receivedLikes(post.authorId)).toEqual({ userId: post.authorId, receivedLikeCount: 0 });
  });
});
