import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Queryable } from '../platform/db';
import { logger } from '../platform/logger';
import { type RedisClient } from '../platform/redis/client';
import { runScript } from '../platform/redis/scripts';
import {
  authorLoadedKey,
  authorNoneKey,
  authorRebuildLockKey,
  bucketMetaKey,
  bucketOf,
  bucketPinsKey,
  changesKey,
  likeSetKey,
  postLoadedKey,
  postRebuildLockKey,
  postRebuildWorkKey,
  receivedLikesKey,
} from './keys';
import {
  rebuildAuthorScript as finishAuthorScript,
  rebuildChunkScript as chunkScript,
  rebuildLockScript as lockScript,
  rebuildPostScript as finishPostScript,
  rebuildUnlockScript as unlockScript,
} from './scripts';
import { likesSettings } from './settings';

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
 *   pages of PAGE_SIZE rows per Data API call) into a work set, then the
 *   pending changes are replayed onto it REPLAY_PAGE stream entries per
 *   call, and the call that reaches the stream's end renames it into place:
 *   Redis is never blocked for the whole post or the whole backlog, and no
 *   request sees half of it.
 * - An author's count is PostgreSQL's count over all of the author's posts
 *   plus the author's pending changes. A post that is not loaded yet counts
 *   there with what its own rebuild will give it, so the count equals the sum
 *   of the posts whichever loads first.
 * - Never without a synced like: the elected rebuilder pins its bucket's
 *   stream before it reads PostgreSQL, and sync-likes trims nothing past a
 *   pin, so every change that the read of post_likes (and, in the same
 *   statement, of likes_sync_state) lacks is still in the stream to replay,
 *   however many sync rounds commit meanwhile. The pin lives as long as the
 *   lock's lease, renewed with it; a rebuilder that stalls past it loses
 *   both, and the next caller starts over. See lua/likes-rebuild-lock.lua and
 *   lua/likes-rebuild-post.lua.
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
/** Stream entries replayed per Redis call: bounds each call, whatever the sync's backlog. */
const REPLAY_PAGE = 1000;

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

/**
 * Makes sure Redis holds the post's likes: rebuilds them, or waits a moment
 * for whoever is rebuilding them. The caller then runs its script again (and
 * comes back here, within its deadline, if they are still not there).
 */
export async function loadPostLikes(authorId: number, postId: number, deps: RebuildDeps): Promise<void> {
  const lock = postRebuildLockKey(authorId, postId);
  await asTheOneRebuilder(lock, postLoadedKey(authorId, postId), bucketOf(authorId), deps.redis, (token) => rebuildPost(authorId, postId, token, deps));
}

/** The same for an author's received-like count. */
export async function loadAuthorLikes(authorId: number, deps: RebuildDeps): Promise<void> {
  const lock = authorRebuildLockKey(authorId);
  await asTheOneRebuilder(lock, authorLoadedKey(authorId), bucketOf(authorId), deps.redis, (token) => rebuildAuthor(authorId, token, deps));
}

/** `rebuild` answers true when done, false when it lost the lock or its pin (the caller's next try starts over). */
async function asTheOneRebuilder(lock: string, loaded: string, bucket: number, client: RedisClient, rebuild: (token: string) => Promise<boolean>): Promise<void> {
  const token = randomUUID();
  const pins = bucketPinsKey(bucket);
  const elected = await runScript<number>(lockScript, [lock, loaded, pins], [token, likesSettings().LIKES_REBUILD_LEASE_MS], client);
  if (elected === 2) return;
  if (elected === 0) {
    await sleep(POLL_MS);
    return;
  }
  let done = false;
  try {
    done = await rebuild(token);
  } finally {
    // Free them now rather than after the lease, so the next caller can try and the sync may trim.
    if (!done) await runScript(unlockScript, [lock, pins], [token], client).catch(() => undefined);
  }
}

async function rebuildPost(authorId: number, postId: number, token: string, deps: RebuildDeps): Promise<boolean> {
  const bucket = bucketOf(authorId);
  const lock = postRebuildLockKey(authorId, postId);
  const work = postRebuildWorkKey(authorId, postId, token);
  const pins = bucketPinsKey(bucket);
  const { LIKES_REBUILD_LEASE_MS: rebuildLeaseMs, LIKES_REBUILD_CHUNK_SIZE: rebuildChunkSize } = likesSettings();
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
      const kept = await runScript<number>(chunkScript, [work, lock, pins], [token, rebuildLeaseMs, ...chunk], deps.redis);
      if (kept === 0) return false;
    }
    total += ids.length;
    if (ids.length < PAGE_SIZE) break;
    after = Number(ids[ids.length - 1]);
  }
  const keys = [work, likeSetKey(authorId, postId), postLoadedKey(authorId, postId), lock, changesKey(bucket), bucketMetaKey(bucket), pins];
  for (let from = ''; ; ) {
    const reply = await runScript<[number, (string | number)?]>(finishPostScript, keys, [token, mark.epoch, mark.id, from, postId, REPLAY_PAGE, rebuildLeaseMs], deps.redis);
    if (reply[0] === 0) return false;
    if (reply[0] === 1) {
      logger.info('post likes rebuilt from the database', { postId, authorId, fromDatabase: total, likeCount: reply[1] });
      return true;
    }
    from = String(reply[1]);
  }
}

async function rebuildAuthor(authorId: number, token: string, deps: RebuildDeps): Promise<boolean> {
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
    bucketPinsKey(bucket),
  ];
  const hasPosts = row?.has_posts === true || String(row?.has_posts) === 'true';
  let from = '';
  let count = String(Number(row?.likes ?? 0));
  let seen = '0';
  for (;;) {
    const args = [token, row?.epoch ?? '', row?.last_entry_id ?? '', from, authorId, count, seen, hasPosts ? '1' : '0', EMPTY_AUTHOR_TTL_SECONDS, REPLAY_PAGE, likesSettings().LIKES_REBUILD_LEASE_MS];
    const reply = await runScript<[number, (string | number)?, string?, number?]>(finishAuthorScript, keys, args, deps.redis);
    if (reply[0] === 0) return false;
    if (reply[0] === 1) {
      logger.info('received likes rebuilt from the database', { authorId, receivedLikeCount: reply[1] });
      return true;
    }
    [from, count, seen] = [String(reply[1]), String(reply[2]), String(reply[3])];
  }
}
