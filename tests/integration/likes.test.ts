import type Redis from 'ioredis';
import type { Queryable } from '../../lib/platform/db';
import { InternalError, NotFoundError } from '../../lib/platform/errors';
import { like, likeStatus, receivedLikes, unlike, type LikesDeps } from '../../lib/likes/likes';
import { likeSetKey, postAuthorKey, receivedLikesKey } from '../../lib/likes/keys';
import { createPostAuthors, MISSING_POST_TTL_MS } from '../../lib/likes/post-authors';
import { useTestDatabase } from '../support/database';
import { recordCommands } from '../support/redis-commands';
import { scanAll, testRedis, unlinkMatching, type TestRedisClient } from '../support/redis-nodes';

/**
 * The likes service against real Redis and PostgreSQL (through the Data API).
 * Every test uses fresh post and user ids, so tests never see each other's keys.
 */

const prefix = process.env.REDIS_KEY_PREFIX!;
const t = useTestDatabase();
/** Sees keys exactly as stored: no key prefix. */
let raw: TestRedisClient;
let nextId = 1000;
const freshId = () => nextId++;

beforeAll(async () => {
  raw = testRedis();
});

afterAll(async () => {
  raw.disconnect();
});

async function insertPost(authorId = freshId(), postId = freshId()): Promise<{ postId: number; authorId: number }> {
  await t.pg.query('INSERT INTO posts (id, author_id, title) VALUES ($1, $2, $3)', [postId, authorId, 'a post']);
  return { postId, authorId };
}

/** Real Redis and a real Data API database, with every command and query counted. */
async function countedDeps(): Promise<{ deps: LikesDeps; redisCommands: string[]; dbQueries: string[]; close(): void }> {
  // A Cluster client on a cluster run: it has the same sendCommand to count through.
  const client = testRedis({ keyPrefix: prefix }) as Redis;
  await client.ping(); // connected first, so the handshake is not counted
  const redisCommands = recordCommands(client);
  const dbQueries: string[] = [];
  const database: Queryable = {
    query: (sql, params) => {
      dbQueries.push(sql);
      return t.db.query(sql, params);
    },
  };
  return {
    deps: { redis: client, authors: createPostAuthors(client, database), db: database },
    redisCommands,
    dbQueries,
    close: () => client.disconnect(),
  };
}

const members = (authorId: number, postId: number) => raw.smembers(prefix + likeSetKey(authorId, postId));
const counter = (authorId: number) => raw.get(prefix + receivedLikesKey(authorId));

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

describe('like and unlike', () => {
  it('likes once however often it is asked, and moves the author counter with it', async () => {
    const { postId, authorId } = await insertPost();
    const userId = freshId();

    expect(await like(postId, userId)).toEqual({ postId, liked: true, changed: true, likeCount: 1 });
    expect(await like(postId, userId)).toEqual({ postId, liked: true, changed: false, likeCount: 1 });
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 1 });

    expect(await unlike(postId, userId)).toEqual({ postId, liked: false, changed: true, likeCount: 0 });
    expect(await unlike(postId, userId)).toEqual({ postId, liked: false, changed: false, likeCount: 0 });
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 0 });
  });

  it('unliking what was never liked changes nothing and never takes the counter below zero', async () => {
    const { postId, authorId } = await insertPost();
    expect(await unlike(postId, freshId())).toEqual({ postId, liked: false, changed: false, likeCount: 0 });
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 0 });

    // A like set that got ahead of its counter (e.g. restored from an older
    // backup): the unlike removes the like but leaves the counter at 0.
    const userId = freshId();
    await raw.sadd(prefix + likeSetKey(authorId, postId), String(userId));
    await raw.set(prefix + receivedLikesKey(authorId), '0');
    expect(await unlike(postId, userId)).toEqual({ postId, liked: false, changed: true, likeCount: 0 });
    expect(await counter(authorId)).toBe('0');
  });

  it('reports like count and likedByMe per caller', async () => {
    const { postId } = await insertPost();
    const [fan, other] = [freshId(), freshId()];
    expect(await likeStatus(postId, fan)).toEqual({ postId, likeCount: 0, likedByMe: false });
    await like(postId, fan);
    expect(await likeStatus(postId, fan)).toEqual({ postId, likeCount: 1, likedByMe: true });
    expect(await likeStatus(postId, other)).toEqual({ postId, likeCount: 1, likedByMe: false });
  });

  it('gives an author the sum of the likes on all their posts', async () => {
    const authorId = freshId();
    const first = await insertPost(authorId);
    const second = await insertPost(authorId);
    const users = [freshId(), freshId(), freshId()];
    await Promise.all(users.map((userId) => like(first.postId, userId)));
    await Promise.all(users.slice(0, 2).map((userId) => like(second.postId, userId)));
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 5 });
  });

  it('reads 0 received likes for a user with no posts or no row at all', async () => {
    const nobody = freshId();
    expect(await receivedLikes(nobody)).toEqual({ userId: nobody, receivedLikeCount: 0 });
  });
});

describe('the post and its author', () => {
  it('answers 404 for a missing post and keeps that answer only briefly, then works once the post exists', async () => {
    const postId = freshId();
    const authorId = freshId();
    const userId = freshId();
    for (const call of [like, unlike, likeStatus]) {
      await expect(call(postId, userId)).rejects.toBeInstanceOf(NotFoundError);
    }
    expect(await scanAll(raw, `${prefix}*:post:${postId}`)).toEqual([]);
    // The 404 is kept for MISSING_POST_TTL_MS, so asking again costs no query; nothing that lasts.
    expect(await raw.get(prefix + postAuthorKey(postId))).toBe('none');
    expect(await raw.pttl(prefix + postAuthorKey(postId))).toBeLessThanOrEqual(MISSING_POST_TTL_MS);

    await insertPost(authorId, postId);
    await new Promise((resolve) => setTimeout(resolve, MISSING_POST_TTL_MS + 50));
    expect(await like(postId, userId)).toEqual({ postId, liked: true, changed: true, likeCount: 1 });
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 1 });
  });

  it('stores keys under REDIS_KEY_PREFIX (script KEYS included), with one hash tag per script', async () => {
    const { postId, authorId } = await insertPost();
    const userId = freshId();
    await like(postId, userId);

    const bucket = authorId % 64;
    const setKey = `${prefix}likes:{lk:${bucket}}:u:${authorId}:post:${postId}`;
    const counterKey = `${prefix}likes:{lk:${bucket}}:u:${authorId}:received`;
    expect(await raw.smembers(setKey)).toEqual([String(userId)]);
    expect(await raw.get(counterKey)).toBe('1');
    expect(await raw.get(`${prefix}post-author:${postId}`)).toBe(String(authorId));
    // Redis Cluster hashes only the first {...}: the prefix must hold none.
    const hashTag = (key: string) => /\{([^}]*)\}/.exec(key)?.[1];
    expect(hashTag(setKey)).toBe(`lk:${bucket}`);
    expect(hashTag(counterKey)).toBe(`lk:${bucket}`);
    expect(hashTag(`${prefix}likes:{lk:${bucket}}:changes`)).toBe(`lk:${bucket}`);
    expect(await raw.xlen(`${prefix}likes:{lk:${bucket}}:changes`)).toBeGreaterThan(0);
  });

  it('warm: a like, an unlike or a status is exactly one Redis command and no database query', async () => {
    const { postId } = await insertPost();
    const counted = await countedDeps();
    try {
      const userId = freshId();
      const everyRoute = async () => {
        await like(postId, userId, counted.deps);
        await unlike(postId, userId, counted.deps);
        await likeStatus(postId, userId, counted.deps);
      };
      // Cold: fills both author caches, loads every script into Redis, and
      // loads the post's likes and the author's count from post_likes.
      await everyRoute();
      expect(counted.dbQueries).toHaveLength(3);
      counted.redisCommands.length = 0;
      counted.dbQueries.length = 0;

      await everyRoute();
      expect(counted.redisCommands).toEqual(['evalsha', 'evalsha', 'evalsha']);
      expect(counted.dbQueries).toEqual([]);
    } finally {
      counted.close();
    }
  });

  it('a cold instance finds the author in Redis without touching the database', async () => {
    const { postId } = await insertPost();
    await like(postId, freshId()); // another instance cached the author in Redis
    const counted = await countedDeps();
    try {
      await like(postId, freshId(), counted.deps);
      expect(counted.redisCommands).toEqual(['get', 'evalsha']);
      expect(counted.dbQueries).toEqual([]);
    } finally {
      counted.close();
    }
  });

  it('a burst of likes on a cold post loads the author once', async () => {
    const { postId, authorId } = await insertPost();
    const counted = await countedDeps();
    try {
      const users = Array.from({ length: 50 }, freshId);
      await Promise.all(users.map((userId) => like(postId, userId, counted.deps)));
      // One author SELECT, one rebuild of the post, one of the author: the others waited.
      expect(counted.dbQueries).toHaveLength(3);
      expect(counted.redisCommands.filter((name) => name === 'get')).toHaveLength(1);
      expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 50 });
    } finally {
      counted.close();
    }
  });

  it('when Redis forgets (a flush), an instance’s cached author is checked against the database before any write', async () => {
    const { postId, authorId: firstAuthor } = await insertPost();
    const userId = freshId();
    await like(postId, userId); // this instance's LRU now holds firstAuthor
    // The data is reset the way a test suite or a disaster would: the post now
    // has another author, and Redis lost everything under this prefix.
    const secondAuthor = freshId();
    await t.pg.query('UPDATE posts SET author_id = $1 WHERE id = $2', [secondAuthor, postId]);
    await unlinkMatching(raw, `${prefix}*`);

    expect(await like(postId, userId)).toEqual({ postId, liked: true, changed: true, likeCount: 1 });
    expect(await likeStatus(postId, userId)).toEqual({ postId, likeCount: 1, likedByMe: true });
    expect(await receivedLikes(secondAuthor)).toEqual({ userId: secondAuthor, receivedLikeCount: 1 });
    expect(await receivedLikes(firstAuthor)).toEqual({ userId: firstAuthor, receivedLikeCount: 0 });
    expect(await raw.exists(prefix + likeSetKey(firstAuthor, postId))).toBe(0);
  });

  it('does not trust a Redis author entry that is not an id: reloads it from the database', async () => {
    const { postId, authorId } = await insertPost();
    await raw.set(prefix + postAuthorKey(postId), 'garbage');
    const counted = await countedDeps();
    try {
      await like(postId, freshId(), counted.deps);
      expect(counted.dbQueries.filter((sql) => sql.includes('FROM posts WHERE id'))).toHaveLength(1);
      expect(await raw.get(prefix + postAuthorKey(postId))).toBe(String(authorId));
      expect(await counter(authorId)).toBe('1');
    } finally {
      counted.close();
    }
  });
});

describe('a script checks everything before its first write', () => {
  const corruptCounters = ['not a number', '-1', '007', '1.5', '99999999999999999999'];

  it.each(corruptCounters)('refuses a like when the counter holds %j: clean error, like set untouched', async (value) => {
    const { postId, authorId } = await insertPost();
    const earlier = freshId();
    await like(postId, earlier);
    await raw.set(prefix + receivedLikesKey(authorId), value);

    const refused = like(postId, freshId());
    await expect(refused).rejects.toBeInstanceOf(InternalError);
    await expect(refused).rejects.toThrow(/does not hold a like count/);
    expect(await members(authorId, postId)).toEqual([String(earlier)]);
    expect(await counter(authorId)).toBe(value);
  });

  it('refuses an unlike when the counter is corrupt: the like stays', async () => {
    const { postId, authorId } = await insertPost();
    const userId = freshId();
    await like(postId, userId);
    await raw.set(prefix + receivedLikesKey(authorId), 'x');
    await expect(unlike(postId, userId)).rejects.toBeInstanceOf(InternalError);
    expect(await members(authorId, postId)).toEqual([String(userId)]);
  });

  it('refuses when the counter or the like set has the wrong type', async () => {
    const { postId, authorId } = await insertPost();
    await likeStatus(postId, freshId()); // loaded: a rebuild would overwrite what follows
    await receivedLikes(authorId);
    await raw.del(prefix + receivedLikesKey(authorId));
    await raw.rpush(prefix + receivedLikesKey(authorId), '1');
    await expect(like(postId, freshId())).rejects.toThrow(/does not hold a like count/);
    expect(await members(authorId, postId)).toEqual([]);

    await raw.del(prefix + receivedLikesKey(authorId));
    await raw.set(prefix + likeSetKey(authorId, postId), 'x');
    await expect(like(postId, freshId())).rejects.toThrow(/not a set/);
    await expect(unlike(postId, freshId())).rejects.toThrow(/not a set/);
    expect(await counter(authorId)).toBeNull();
  });

  it('refuses to read a corrupt received-like counter', async () => {
    const { authorId } = await insertPost();
    await receivedLikes(authorId); // loaded (as 0): a rebuild would overwrite what follows
    await raw.set(prefix + receivedLikesKey(authorId), '12abc');
    await expect(receivedLikes(authorId)).rejects.toBeInstanceOf(InternalError);
  });
});

describe('concurrency', () => {
  it('500 distinct users like one post at once: 500 likes, 500 received', async () => {
    const { postId, authorId } = await insertPost();
    const users = Array.from({ length: 500 }, freshId);
    const results = await Promise.all(users.map((userId) => like(postId, userId)));

    expect(results.every((result) => result.changed)).toBe(true);
    // Each like saw a different count: the script ran atomically, one at a time.
    expect(new Set(results.map((result) => result.likeCount)).size).toBe(500);
    expect(await likeStatus(postId, users[0]!)).toEqual({ postId, likeCount: 500, likedByMe: true });
    expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: 500 });
  });

  it('like/unlike storms in random order keep every counter equal to the sum of its posts', async () => {
    const authors = [freshId(), freshId(), freshId()];
    const posts = [];
    for (const authorId of authors) {
      for (let n = 0; n < 3; n++) posts.push(await insertPost(authorId));
    }
    const users = Array.from({ length: 20 }, freshId);
    // Every user likes and unlikes every post several times, all in flight at once.
    const operations = shuffle(
      posts.flatMap((post) =>
        users.flatMap((userId) =>
          [like, unlike, like, unlike, like].map((operation) => ({ operation, post, userId })),
        ),
      ),
    );
    const results = await Promise.all(
      operations.map(async ({ operation, post, userId }) => ({ post, result: await operation(post.postId, userId) })),
    );

    for (const post of posts) {
      const likeSet = await members(post.authorId, post.postId);
      const status = await Promise.all(users.map((userId) => likeStatus(post.postId, userId)));
      for (const [i, userId] of users.entries()) {
        expect(status[i]).toEqual({ postId: post.postId, likeCount: likeSet.length, likedByMe: likeSet.includes(String(userId)) });
      }
      // `changed` told the truth: the adds minus the removes it reported is what is left.
      const net = results
        .filter((entry) => entry.post === post && entry.result.changed)
        .reduce((sum, entry) => sum + (entry.result.liked ? 1 : -1), 0);
      expect(net).toBe(likeSet.length);
    }
    for (const authorId of authors) {
      const counts = await Promise.all(
        posts.filter((post) => post.authorId === authorId).map((post) => likeStatus(post.postId, users[0]!)),
      );
      const sum = counts.reduce((total, status) => total + status.likeCount, 0);
      expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: sum });
    }
  });
});
