import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import rebuildAuthorSource from '../../lua/likes-rebuild-author.lua';
import rebuildChunkSource from '../../lua/likes-rebuild-chunk.lua';
import rebuildLockSource from '../../lua/likes-rebuild-lock.lua';
import rebuildPostSource from '../../lua/likes-rebuild-post.lua';
import rebuildUnlockSource from '../../lua/likes-rebuild-unlock.lua';
import { config } from '../platform/config';
import type { Queryable } from '../platform/db';
import { logger } from '../platform/logger';
import { luaScript, runScript, type RedisClient } from '../platform/redis';
import {
  authorLoadedKey,
  authorNoneKey,
  authorRebuildLockKey,
  bucketMetaKey,
  bucketOf,
  changesKey,
  likeSetKey,
  postLoadedKey,
  postRebuildLockKey,
  postRebuildWorkKey,
  receivedLikesKey,
} from './keys';

/**
 * Rebuild on first use: when Redis does not hold a post's likes or an
 * author's received-like count (it lost its data, or never had them), the
 * first request that needs them loads them from post_likes plus the changes
 * still pending in the bucket's stream, before it answers or writes.
 *
 * - One rebuilder per post or author: a short lock (likes-rebuild-lock.lua);
 *   the others poll for the loaded marker within their own deadline, so a
 *   burst of first requests costs one rebuild, not one each.
 * - A post is loaded in chunks (LIKES_REBUILD_CHUNK_SIZE ids per Redis call,
 *   pages of PAGE_SIZE rows per Data API call) into a work set, and the last
 *   script replays the pending changes and renames it into place: Redis is
 *   never blocked for the whole post, and no request sees half of it.
 * - An author's count is PostgreSQL's count over all of the author's posts
 *   plus the author's pending changes. A post that is not loaded yet counts
 *   there with what its own rebuild will give it, so the count equals the sum
 *   of the posts whichever loads first.
 * - The read of likes_sync_state comes first (or in the same statement), and
 *   the finishing script refuses when the sync trimmed changes newer than
 *   that read: then the rebuild reads again. See lua/likes-rebuild-post.lua.
 */

/** Rows per Data API call: 10,000 ids as one text column stay far below the Data API's 1 MB result limit. */
const PAGE_SIZE = 10_000;
/** How often a waiting request looks for another caller's rebuild to finish. */
const POLL_MS = 20;
/**
 * How long "this user has no post" is kept (lua/likes-rebuild-author.lua):
 * a received-likes for an id that is not there costs one query per id per
 * period, and stores nothing that outlives it. The answer cannot go stale:
 * a like on a post of theirs needs the author's loaded marker, which this
 * is not, so the first one rebuilds the author from the database.
 */
export const EMPTY_AUTHOR_TTL_SECONDS = 60;
/** Rebuild attempts before giving up when every read races a sync trim (each costs a sync round, about a minute apart in AWS). */
const ATTEMPTS = 5;

const lockScript = luaScript('likesRebuildLock', 2, rebuildLockSource, { deadline: true });
const chunkScript = luaScript('likesRebuildChunk', 2, rebuildChunkSource, { deadline: true });
const finishPostScript = luaScript('likesRebuildPost', 6, rebuildPostSource, { deadline: true });
const finishAuthorScript = luaScript('likesRebuildAuthor', 6, rebuildAuthorSource, { deadline: true });
const unlockScript = luaScript('likesRebuildUnlock', 1, rebuildUnlockSource, { deadline: true });

export interface RebuildDeps {
  redis: RedisClient;
  db: Queryable;
}

interface SyncMark {
  epoch: string;
  /** The last stream entry applied to post_likes, '' for none. */
  id: string;
}

const POST_PAGE_SQL = `
SELECT s.epoch, s.last_entry_id,
       (SELECT string_agg(page.user_id::text, ',' ORDER BY page.user_id)
          FROM (SELECT user_id FROM post_likes
                 WHERE post_id = :postId AND user_id > :after
                 ORDER BY user_id LIMIT :limit) AS page) AS ids
  FROM (SELECT 1) AS one
  LEFT JOIN likes_sync_state AS s ON s.bucket = :bucket`;

// One statement, so the count and the sync mark are one snapshot: the
// pending changes replayed on top are exactly those the count lacks.
const AUTHOR_COUNT_SQL = `
SELECT s.epoch, s.last_entry_id,
       (SELECT count(*) FROM post_likes AS l JOIN posts AS p ON p.id = l.post_id
         WHERE p.author_id = :authorId) AS likes,
       EXISTS (SELECT 1 FROM posts WHERE author_id = :authorId) AS has_posts
  FROM (SELECT 1) AS one
  LEFT JOIN likes_sync_state AS s ON s.bucket = :bucket`;

type Outcome = 'done' | 'lost' | 'retry';

/**
 * Makes sure Redis holds the post's likes: rebuilds them, or waits a moment
 * for whoever is rebuilding them. The caller then runs its script again (and
 * comes back here, within its deadline, if they are still not there).
 */
export async function loadPostLikes(authorId: number, postId: number, deps: RebuildDeps): Promise<void> {
  const lock = postRebuildLockKey(authorId, postId);
  await asTheOneRebuilder(lock, postLoadedKey(authorId, postId), deps.redis, (token, force) => rebuildPost(authorId, postId, token, deps, force));
}

/** The same for an author's received-like count. */
export async function loadAuthorLikes(authorId: number, deps: RebuildDeps): Promise<void> {
  const lock = authorRebuildLockKey(authorId);
  await asTheOneRebuilder(lock, authorLoadedKey(authorId), deps.redis, (token, force) => rebuildAuthor(authorId, token, deps, force));
}

async function asTheOneRebuilder(lock: string, loaded: string, client: RedisClient, rebuild: (token: string, force: boolean) => Promise<Outcome>): Promise<void> {
  const token = randomUUID();
  const elected = await runScript<number>(lockScript, [lock, loaded], [token, config().likes.rebuildLeaseMs], client);
  if (elected === 2) return;
  if (elected === 0) {
    await sleep(POLL_MS);
    return;
  }
  try {
    for (let attempt = 1; attempt < ATTEMPTS; attempt++) {
      const outcome = await rebuild(token, false);
      if (outcome !== 'retry') return;
      logger.info('likes rebuild raced a sync trim; reading again', { lock, attempt });
    }
    // A race with a sync resolves on the next read. One that never does means
    // the stream was synced to another database than this one (a database
    // reset or swapped under a Redis that kept its data): what it trimmed is
    // in that record, not this one, so this one's rows and the changes still
    // in the stream are all there is to count.
    logger.warn('likes rebuilt without the changes synced to another database', { lock });
    await rebuild(token, true);
  } catch (error) {
    // Free it now rather than after the lease, so the next caller can try.
    await runScript(unlockScript, [lock], [token], client).catch(() => undefined);
    throw error;
  }
}

async function rebuildPost(authorId: number, postId: number, token: string, deps: RebuildDeps, force: boolean): Promise<Outcome> {
  const bucket = bucketOf(authorId);
  const lock = postRebuildLockKey(authorId, postId);
  const work = postRebuildWorkKey(authorId, postId, token);
  const { rebuildLeaseMs, rebuildChunkSize } = config().likes;
  let mark: SyncMark | undefined;
  let after = 0;
  let total = 0;
  for (;;) {
    const { rows } = await deps.db.query<{ epoch: string | null; last_entry_id: string | null; ids: string | null }>(POST_PAGE_SQL, {
      postId,
      after,
      limit: PAGE_SIZE,
      bucket,
    });
    const row = rows[0];
    // The first page's statement read the mark: it is no later than any page.
    mark ??= { epoch: row?.epoch ?? '', id: row?.last_entry_id ?? '' };
    const ids = row?.ids ? row.ids.split(',') : [];
    for (let first = 0; first < ids.length; first += rebuildChunkSize) {
      const chunk = ids.slice(first, first + rebuildChunkSize);
      const kept = await runScript<number>(chunkScript, [work, lock], [token, rebuildLeaseMs, ...chunk], deps.redis);
      if (kept === 0) return 'lost';
    }
    total += ids.length;
    if (ids.length < PAGE_SIZE) break;
    after = Number(ids[ids.length - 1]);
  }
  const keys = [work, likeSetKey(authorId, postId), postLoadedKey(authorId, postId), lock, changesKey(bucket), bucketMetaKey(bucket)];
  const [status, count] = await runScript<[number, number?]>(finishPostScript, keys, [token, mark.epoch, mark.id, postId, force ? '1' : '0'], deps.redis);
  if (status === 1) logger.info('post likes rebuilt from the database', { postId, authorId, fromDatabase: total, likeCount: count });
  return status === 1 ? 'done' : status === 0 ? 'lost' : 'retry';
}

async function rebuildAuthor(authorId: number, token: string, deps: RebuildDeps, force: boolean): Promise<Outcome> {
  const bucket = bucketOf(authorId);
  const { rows } = await deps.db.query<{ epoch: string | null; last_entry_id: string | null; likes: number | string; has_posts: boolean }>(AUTHOR_COUNT_SQL, {
    authorId,
    bucket,
  });
  const row = rows[0];
  const keys = [
    receivedLikesKey(authorId),
    authorLoadedKey(authorId),
    authorRebuildLockKey(authorId),
    changesKey(bucket),
    bucketMetaKey(bucket),
    authorNoneKey(authorId),
  ];
  const hasPosts = row?.has_posts === true || String(row?.has_posts) === 'true';
  const args = [token, row?.epoch ?? '', row?.last_entry_id ?? '', authorId, Number(row?.likes ?? 0), force ? '1' : '0', hasPosts ? '1' : '0', EMPTY_AUTHOR_TTL_SECONDS];
  const [status, count] = await runScript<[number, number?]>(finishAuthorScript, keys, args, deps.redis);
  if (status === 1) logger.info('received likes rebuilt from the database', { authorId, receivedLikeCount: count });
  return status === 1 ? 'done' : status === 0 ? 'lost' : 'retry';
}
