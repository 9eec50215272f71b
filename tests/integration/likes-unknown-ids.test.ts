import type Redis from 'ioredis';
import { like, likeStatus, receivedLikes, unlike, type LikesDeps } from '../../lib/likes/likes';
import { checkLikes } from '../../lib/likes/admin';
import { createPostAuthors, MISSING_POST_TTL_MS } from '../../lib/likes/post-authors';
import { NotFoundError } from '../../lib/platform/errors';
import type { Queryable } from '../../lib/platform/db';
import { useTestDatabase } from '../support/database';
import { masters, scanAll, testRedis } from '../support/redis-nodes';
import { useLikesWorld } from './likes-durable-support';

/**
 * docs/api.md, "Likes": requests about posts or users that do not exist leave
 * nothing in Redis that lasts, so no caller grows Redis by walking ids; and
 * asking about the same missing id again does not cost a query every time.
 * A user whose "no posts" answer is cached still gets exact counts once they
 * have a post and it is liked.
 */

const t = useTestDatabase();
const w = useLikesWorld(t, 5_000_000);

/** The likes service on this file's Redis and database, with every database query counted. */
function countedDeps(): { deps: LikesDeps; queries: string[]; close(): void } {
  const client = testRedis({ keyPrefix: w.prefix }) as Redis;
  const queries: string[] = [];
  const database: Queryable = {
    query: (sql, params, options) => {
      queries.push(sql);
      return t.db.query(sql, params, options);
    },
  };
  return { deps: { redis: client, authors: createPostAuthors(client, database), db: database }, queries, close: () => client.disconnect() };
}

/** Every key of this file that has no TTL, from every master. */
async function keysWithoutTtl(): Promise<string[]> {
  const lasting: string[] = [];
  for (const node of await masters(w.raw)) {
    for (const key of await scanAll(node, `${w.prefix}*`)) {
      if ((await node.pttl(key)) === -1) lasting.push(key);
    }
  }
  return lasting;
}

it('ids with no user and no post leave only keys that expire, and asking again costs no query', async () => {
  const N = 100;
  const ids = Array.from({ length: N }, w.freshId);
  const counted = countedDeps();
  try {
    for (const id of ids) {
      expect(await receivedLikes(id, counted.deps)).toEqual({ userId: id, receivedLikeCount: 0 });
      for (const call of [like, unlike, likeStatus]) await expect(call(id, 1, counted.deps)).rejects.toBeInstanceOf(NotFoundError);
    }
    expect(await keysWithoutTtl()).toEqual([]);
    expect((await scanAll(w.raw, `${w.prefix}*`)).length).toBeGreaterThan(0);

    // The same ids again, at once: answered from what Redis keeps for a while.
    const before = counted.queries.length;
    await Promise.all(ids.map(async (id) => expect(await receivedLikes(id, counted.deps)).toEqual({ userId: id, receivedLikeCount: 0 })));
    expect(counted.queries.length - before).toBe(0);
    const missing = ids.slice(0, 10);
    const beforePosts = counted.queries.length;
    // Within the 404's TTL a repeat costs nothing; one that comes after costs one query per id, not one per request.
    await Promise.all(missing.flatMap((id) => [likeStatus(id, 1, counted.deps).catch((e: unknown) => e), like(id, 1, counted.deps).catch((e: unknown) => e)]));
    expect(counted.queries.length - beforePosts).toBeLessThanOrEqual(missing.length);
  } finally {
    counted.close();
  }
});

it('a user whose "no posts" answer is kept, who then gets a post and likes: exact counts, kept without a TTL', async () => {
  const authorId = w.freshId();
  expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 0 });
  const post = await w.insertPost(authorId);
  // No like yet: 0 is still the truth.
  expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 0 });
  const users = [w.freshId(), w.freshId(), w.freshId()];
  for (const userId of users) await like(post.postId, userId);
  await unlike(post.postId, users[0]!);
  expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 2 });
  expect(await w.expectCountsConsistent([post])).toEqual(new Map([[post.postId, 2]]));
  // A real author's keys last: nothing of theirs waits on a TTL to go wrong.
  const authorKeys = await scanAll(w.raw, `${w.prefix}likes:{lk:${authorId % 64}}:u:${authorId}:*`);
  expect(authorKeys.length).toBeGreaterThan(0);
  for (const key of authorKeys.filter((k) => k.endsWith(':received') || k.endsWith(':loaded'))) {
    expect({ key, ttl: await w.raw.pttl(key) }).toEqual({ key, ttl: -1 });
  }
  expect(authorKeys.filter((k) => k.endsWith(':none'))).toEqual([]);
  // A second post of theirs: the count is still the sum.
  const second = await w.insertPost(authorId);
  await like(second.postId, users[1]!);
  expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 3 });
  // The record agrees once synced, and a rebuild after Redis lost it all too.
  await w.sync();
  expect((await checkLikes()).drift).toEqual([]);
  await w.loseRedis();
  expect(await w.expectCountsConsistent([post, second])).toEqual(new Map([[post.postId, 2], [second.postId, 1]]));
});

it('a post inserted after a 404 on it takes likes once the 404 has expired', async () => {
  const authorId = w.freshId();
  const postId = w.freshId();
  await expect(like(postId, 1)).rejects.toBeInstanceOf(NotFoundError);
  await t.pg.query('INSERT INTO posts (id, author_id, title) VALUES ($1, $2, $3)', [postId, authorId, 'late']);
  await new Promise((resolve) => setTimeout(resolve, MISSING_POST_TTL_MS + 50));
  expect(await like(postId, 1)).toEqual({ postId, liked: true, changed: true, likeCount: 1 });
  expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 1 });
});
