import { LRUCache } from 'lru-cache';
import type { Queryable } from '../platform/db';
import { idString } from '../platform/http';
import { lazyDb } from '../platform/lazy-db';
import { redis, type RedisClient } from '../platform/redis/client';
import { authorshipKey, postAuthorKey } from './keys';
import { likesSettings } from './settings';

/**
 * Who wrote a post: `posts.author_id`, never something the client says.
 *
 * A post's author never changes, so the answer is cached twice:
 * - in an LRU inside the Lambda instance, so a warm instance answers with no
 *   network call at all;
 * - in Redis under `post-author:<postId>`, shared by every instance, so a cold
 *   instance pays one GET instead of a Data API call.
 *
 * The LRU outlives anything Redis forgets (a flush, a failover without
 * persistence, an eviction), and the post's likes live in Redis. So loading
 * an author also writes an authorship marker in the author's hash slot, and
 * the like scripts check it in the same call: when Redis no longer vouches
 * for the pair, they write nothing and the caller reloads from the database
 * (`reload`). The warm path stays one command.
 *
 * "No such post" is kept in Redis for MISSING_POST_TTL_MS only (`none` under
 * the same key, never in the LRU): a caller asking about an id again and
 * again costs one SELECT per id per period, and stores nothing that lasts,
 * while a post inserted right after a 404 on it takes likes that much later
 * at worst.
 *
 * The marker expires after LIKES_POST_RECHECK_SECONDS: then the next like
 * asks the database again, and a post deleted meanwhile answers 404 from then
 * on (lib/likes/likes drops its likes from Redis). That bounds how long a
 * deleted post keeps taking likes, for one SELECT per post per period.
 */
export interface PostAuthors {
  /** The post's author id, or undefined when the post does not exist. */
  authorOf(postId: number): Promise<number | undefined>;
  /** authorOf straight from the database, refreshing both caches. */
  reload(postId: number): Promise<number | undefined>;
}

/**
 * The Redis copy expires only so that eviction policies that spare keys
 * without a TTL (ElastiCache's default volatile-lru) drop this cache before
 * they would drop likes, which would then cost a rebuild. Losing it costs one SELECT.
 */
const REDIS_TTL_SECONDS = 30 * 24 * 3600;

/** How long a 404 is answered from Redis: short, since the post may be inserted a moment later. */
export const MISSING_POST_TTL_MS = 1000;
const MISSING = 'none';

export function createPostAuthors(client: RedisClient, database: Queryable, maxEntries = 10_000): PostAuthors {
  async function load(postId: number): Promise<number | undefined> {
    // A value that is not an id cannot have come from us: reload it rather
    // than send likes to a made-up author.
    const stored = await client.get(postAuthorKey(postId));
    if (stored === MISSING) return undefined;
    const cached = idString.safeParse(stored);
    return cached.success ? cached.data : loadFromDatabase(postId);
  }

  async function loadFromDatabase(postId: number): Promise<number | undefined> {
    const { rows } = await database.query<{ author_id: number }>('SELECT author_id FROM posts WHERE id = :postId', { postId });
    const authorId = rows[0]?.author_id;
    if (authorId === undefined) {
      await client.set(postAuthorKey(postId), MISSING, 'PX', MISSING_POST_TTL_MS);
    } else {
      // Two slots, so two commands, sent together: one round trip of latency.
      await Promise.all([
        client.set(postAuthorKey(postId), authorId, 'EX', REDIS_TTL_SECONDS),
        client.set(authorshipKey(authorId, postId), 1, 'EX', likesSettings().LIKES_POST_RECHECK_SECONDS),
      ]);
    }
    return authorId;
  }

  const cache = new LRUCache<number, number>({
    max: maxEntries,
    // fetch() gives concurrent misses on one post a single load: a burst of
    // likes on a cold post costs one GET (and at most one SELECT), not one each.
    // A load that resolves undefined stores nothing.
    fetchMethod: (postId) => load(postId),
  });

  // A marker expiring under a hot post sends every request in flight to
  // reload; they share one SELECT.
  const reloading = new Map<number, Promise<number | undefined>>();
  async function reloadOnce(postId: number): Promise<number | undefined> {
    const authorId = await loadFromDatabase(postId);
    if (authorId === undefined) cache.delete(postId);
    else cache.set(postId, authorId);
    return authorId;
  }

  return {
    // A hit answers from the LRU without fetch()'s bookkeeping: this is every warm like.
    authorOf: (postId) => {
      const known = cache.get(postId);
      return known !== undefined ? Promise.resolve(known) : cache.fetch(postId);
    },
    reload(postId) {
      let pending = reloading.get(postId);
      if (!pending) {
        pending = reloadOnce(postId).finally(() => reloading.delete(postId));
        reloading.set(postId, pending);
      }
      return pending;
    },
  };
}

let shared: PostAuthors | undefined;

/** The Lambda instance's post → author cache, created on first use. */
export function postAuthors(): PostAuthors {
  shared ??= createPostAuthors(redis(), lazyDb());
  return shared;
}
