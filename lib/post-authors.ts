import { LRUCache } from 'lru-cache';
import { db, type Queryable } from './db';
import { idString } from './http';
import { redis, type RedisClient } from './redis';

/**
 * Who wrote a post: `posts.author_id`, never something the client says.
 *
 * A post's author never changes, so the answer is cached twice:
 * - in an LRU inside the Lambda instance, so a warm instance answers with no
 *   network call at all;
 * - in Redis under `post-author:<postId>`, shared by every instance, so a cold
 *   instance pays one GET instead of a Data API call.
 *
 * "No such post" is never cached: the post may be inserted a moment later, and
 * a like on it must then work. So every request about a missing post costs a
 * Redis GET and a SELECT.
 */
export interface PostAuthors {
  /** The post's author id, or undefined when the post does not exist. */
  authorOf(postId: number): Promise<number | undefined>;
}

export const postAuthorKey = (postId: number): string => `post-author:${postId}`;

/**
 * The Redis copy expires only so that eviction policies that spare keys
 * without a TTL (ElastiCache's default volatile-lru) drop this cache before
 * they would drop likes, which live in Redis only. Losing it costs one SELECT.
 */
const REDIS_TTL_SECONDS = 30 * 24 * 3600;

export function createPostAuthors(client: RedisClient, database: Queryable, maxEntries = 10_000): PostAuthors {
  async function load(postId: number): Promise<number | undefined> {
    const key = postAuthorKey(postId);
    // A value that is not an id cannot have come from us: reload it rather
    // than send likes to a made-up author.
    const cached = idString.safeParse(await client.get(key));
    if (cached.success) return cached.data;
    const { rows } = await database.query<{ author_id: number }>('SELECT author_id FROM posts WHERE id = :postId', { postId });
    const authorId = rows[0]?.author_id;
    if (authorId !== undefined) await client.set(key, authorId, 'EX', REDIS_TTL_SECONDS);
    return authorId;
  }

  const cache = new LRUCache<number, number>({
    max: maxEntries,
    // fetch() gives concurrent misses on one post a single load: a burst of
    // likes on a cold post costs one GET (and at most one SELECT), not one each.
    // A load that resolves undefined stores nothing.
    fetchMethod: (postId) => load(postId),
  });

  return { authorOf: (postId) => cache.fetch(postId) };
}

let shared: PostAuthors | undefined;

/** The Lambda instance's post → author cache, created on first use. */
export function postAuthors(): PostAuthors {
  shared ??= createPostAuthors(redis(), db());
  return shared;
}
