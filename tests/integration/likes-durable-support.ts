import { likeStatus, receivedLikes } from '../../lib/likes/likes';
import { syncLikes, type SyncOptions, type SyncSummary } from '../../lib/likes/sync';
import type { TestDatabaseHandle } from '../support/database';
import { testRedis, unlinkMatching, type TestRedisClient } from '../support/redis-nodes';

/**
 * Shared by the durable-likes test files (not a test file itself): posts with
 * fresh ids, Redis losing everything of this file, and the record read
 * straight from PostgreSQL.
 */

export interface Post {
  postId: number;
  authorId: number;
}

export interface LikesWorld {
  /** A connection of the test's own; keys as stored, prefix included. */
  readonly raw: TestRedisClient;
  readonly prefix: string;
  freshId(): number;
  insertPost(authorId?: number): Promise<Post>;
  /**
   * Redis loses every key of this test file, as a FLUSHALL or a restart
   * without persistence would do to it (the machine's Redis is shared, so
   * never a real FLUSHALL).
   */
  loseRedis(): Promise<void>;
  sync(options?: SyncOptions): Promise<SyncSummary>;
  /** post_likes of one post: the user ids, ascending. */
  recorded(postId: number): Promise<number[]>;
  /** Redis (through the service) agrees with itself: each author's count is the sum of their posts'. */
  expectCountsConsistent(posts: Post[]): Promise<Map<number, number>>;
}

export function useLikesWorld(t: TestDatabaseHandle, firstId = 1): LikesWorld {
  const prefix = process.env.REDIS_KEY_PREFIX!;
  let raw: TestRedisClient | undefined;
  let nextId = firstId;
  beforeAll(() => {
    raw = testRedis();
  });
  afterAll(() => {
    raw?.disconnect();
  });
  return {
    get raw() {
      return raw!;
    },
    prefix,
    freshId: () => nextId++,
    async insertPost(authorId = nextId++) {
      const postId = nextId++;
      await t.pg.query('INSERT INTO posts (id, author_id, title) VALUES ($1, $2, $3)', [postId, authorId, 'a post']);
      return { postId, authorId };
    },
    async loseRedis() {
      await unlinkMatching(raw!, `${prefix}*`);
    },
    sync: (options) => syncLikes(undefined, options),
    async recorded(postId) {
      const { rows } = await t.pg.query<{ user_id: string }>('SELECT user_id FROM post_likes WHERE post_id = $1 ORDER BY user_id', [postId]);
      return rows.map((row) => Number(row.user_id));
    },
    async expectCountsConsistent(posts) {
      const counts = new Map<number, number>();
      for (const post of posts) counts.set(post.postId, (await likeStatus(post.postId, 0)).likeCount);
      for (const authorId of new Set(posts.map((post) => post.authorId))) {
        const sum = posts.filter((post) => post.authorId === authorId).reduce((total, post) => total + counts.get(post.postId)!, 0);
        expect(await receivedLikes(authorId)).toEqual({ userId: authorId, receivedLikeCount: sum });
      }
      return counts;
    },
  };
}
