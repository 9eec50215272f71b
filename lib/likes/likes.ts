import { ReplyError } from 'ioredis';
import type { Queryable } from '../platform/db';
import { currentDeadline, type Deadline } from '../platform/deadline';
import { DependencyUnavailableError, InternalError, NotFoundError } from '../platform/errors';
import { lazyDb } from '../platform/lazy-db';
import { logger } from '../platform/logger';
import { redis, type RedisClient } from '../platform/redis/client';
import { runScript, type LuaScript } from '../platform/redis/scripts';
import {
  authorLoadedKey,
  authorNoneKey,
  authorshipKey,
  likeScriptKeys,
  likeSetKey,
  postLoadedKey,
  receivedLikesKey,
} from './keys';
import { postAuthors, type PostAuthors } from './post-authors';
import { loadAuthorLikes, loadPostLikes } from './rebuild';
import { likeScript, likeStatusScript, receivedScript, unlikeScript, unloadScript } from './scripts';

/**
 * Likes: Redis is the fast path, PostgreSQL (post_likes) the record. The key
 * schema is lib/likes/keys; the write-behind is lib/likes/sync; the rebuild
 * after Redis lost its data is lib/likes/rebuild.
 *
 * A like moves the post's set and its author's counter together and appends
 * the change to its bucket's stream, in one Lua script: one round trip, one
 * hash slot (so it runs on Redis Cluster too). That is why every like route
 * first needs the post's author, which comes from the database (cached),
 * never from the client.
 *
 * Round trips: a like, an unlike, a like-status or a received-likes on a warm
 * instance is one EVALSHA and no database call. Only when Redis does not
 * vouch for the author (marker expired or lost) does a call cost a SELECT,
 * and only when Redis lost the likes themselves a rebuild (lib/likes/rebuild).
 */

export interface LikeChange {
  postId: number;
  liked: boolean;
  /** True when this call added (or removed) the like. */
  changed: boolean;
  likeCount: number;
}

export interface LikeStatus {
  postId: number;
  likeCount: number;
  likedByMe: boolean;
}

export interface ReceivedLikes {
  userId: number;
  receivedLikeCount: number;
}

export interface LikesDeps {
  redis: RedisClient;
  authors: PostAuthors;
  /** For rebuilds only: the warm path never queries. */
  db: Queryable;
}

const defaultDeps = (): LikesDeps => ({ redis: redis(), authors: postAuthors(), db: lazyDb() });

/** POST /posts/{postId}/likes: liking twice is still one like. */
export function like(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeChange> {
  return setLiked(likeScript, true, postId, userId, deps);
}

/** DELETE /posts/{postId}/likes: unliking what was not liked changes nothing. */
export function unlike(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeChange> {
  return setLiked(unlikeScript, false, postId, userId, deps);
}

/**
 * A script's answer: its value, or null (Redis does not vouch for the
 * author), or what must be loaded first.
 */
type Answer<T> = { value: T } | null | { load: { post: boolean; author: boolean } };

async function setLiked(script: LuaScript, liked: boolean, postId: number, userId: number, deps: LikesDeps): Promise<LikeChange> {
  const [changed, likeCount] = await withPost<[number, number]>(postId, deps, async (authorId) => {
    const reply = await runLikeScript<number[] | null>(script, likeScriptKeys(authorId, postId), [userId, postId, authorId], deps.redis);
    if (reply === null) return null;
    if (reply[0] === -1) return { load: { post: reply[1] === 0, author: reply[2] === 0 } };
    return { value: [reply[0]!, reply[1]!] };
  });
  return { postId, liked, changed: changed === 1, likeCount };
}

/** GET /posts/{postId}/likes */
export async function likeStatus(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeStatus> {
  // A script rather than a pipeline of SCARD + SISMEMBER: the same one round
  // trip, but one command and an atomic snapshot (likedByMe never comes with a
  // count that does not include it).
  const [likeCount, member] = await withPost<[number, number]>(postId, deps, async (authorId) => {
    const keys = [likeSetKey(authorId, postId), authorshipKey(authorId, postId), postLoadedKey(authorId, postId)];
    const reply = await runLikeScript<number[] | null>(likeStatusScript, keys, [userId], deps.redis);
    if (reply === null) return null;
    if (reply[0] === -1) return { load: { post: true, author: false } };
    return { value: [reply[0]!, reply[1]!] };
  });
  return { postId, likeCount, likedByMe: member === 1 };
}

/**
 * GET /users/{userId}/received-likes: one EVALSHA. A user with no posts, no
 * liked post or no row at all has a count of 0 (after a first rebuild, which
 * finds nothing in the database). For a user with no post that answer is
 * kept only for EMPTY_AUTHOR_TTL_SECONDS (lib/likes/rebuild): ids that are
 * not there cost one query per id per period and leave nothing that lasts.
 */
export async function receivedLikes(userId: number, deps: LikesDeps = defaultDeps()): Promise<ReceivedLikes> {
  const key = receivedLikesKey(userId);
  const deadline = currentDeadline();
  for (;;) {
    const stored = await runScript<string | number>(receivedScript, [key, authorLoadedKey(userId), authorNoneKey(userId)], [], deps.redis);
    if (stored !== -1) {
      if (typeof stored !== 'string' || !/^(0|[1-9]\d*)$/.test(stored) || !Number.isSafeInteger(Number(stored))) {
        throw new InternalError(`${key} does not hold a like count: ${JSON.stringify(stored)}`);
      }
      return { userId, receivedLikeCount: Number(stored) };
    }
    requireTime(deadline, `received likes of ${userId}`);
    await loadAuthorLikes(userId, deps);
  }
}

/**
 * Runs a like script with the post's author until it answers: reloading the
 * author from the database when Redis no longer vouches for it, rebuilding
 * (or waiting for another caller's rebuild of) the post's likes and the
 * author's count when Redis does not hold them. Within the request's
 * deadline: past it, 503.
 */
async function withPost<T>(postId: number, deps: LikesDeps, run: (authorId: number) => Promise<Answer<T>>): Promise<T> {
  const deadline = currentDeadline();
  let authorId = requireAuthor(postId, await deps.authors.authorOf(postId));
  let reloads = 0;
  for (;;) {
    const answer = await run(authorId);
    if (answer !== null && 'value' in answer) return answer.value;
    if (answer === null) {
      if (++reloads > 2) throw new InternalError(`post ${postId}: Redis lost its author marker again right after it was written`);
      const reloaded = await deps.authors.reload(postId);
      if (reloaded === undefined) {
        await forgetDeletedPost(authorId, postId, deps);
        throw new NotFoundError(`post ${postId} does not exist`);
      }
      authorId = reloaded;
      continue;
    }
    requireTime(deadline, `likes of post ${postId}`);
    const loads: Promise<void>[] = [];
    if (answer.load.post) loads.push(loadPostLikes(authorId, postId, deps));
    if (answer.load.author) loads.push(loadAuthorLikes(authorId, deps));
    await Promise.all(loads);
  }
}

/**
 * A post deleted from the database: its likes leave Redis, and its author's
 * count is rebuilt on next use from the posts that remain, so it still equals
 * their sum. Its rows stay in post_likes (see README, "Durable likes").
 */
async function forgetDeletedPost(authorId: number, postId: number, deps: LikesDeps): Promise<void> {
  const keys = [likeSetKey(authorId, postId), postLoadedKey(authorId, postId), authorshipKey(authorId, postId), authorLoadedKey(authorId)];
  await runScript(unloadScript, keys, [1], deps.redis);
  logger.info('post deleted from the database: its likes left Redis', { postId, authorId });
}

/**
 * Drops what Redis holds of a post's likes and its author's count, so that
 * the next request rebuilds both from post_likes (npm run likes:rebuild).
 */
export async function unloadPost(authorId: number, postId: number, client: RedisClient = redis()): Promise<void> {
  const keys = [likeSetKey(authorId, postId), postLoadedKey(authorId, postId), authorshipKey(authorId, postId), authorLoadedKey(authorId)];
  await runScript(unloadScript, keys, [0], client);
}

/** Waiting for a rebuild must end in a 503 before the request's deadline, not in the platform's timeout. */
function requireTime(deadline: Deadline, what: string): void {
  if (deadline.expired()) {
    throw new DependencyUnavailableError('redis', { cause: new Error(`${what}: not rebuilt before the deadline`) });
  }
}

function requireAuthor(postId: number, authorId: number | undefined): number {
  if (authorId === undefined) throw new NotFoundError(`post ${postId} does not exist`);
  return authorId;
}

/**
 * The scripts refuse (with a CORRUPT error, before writing anything) to touch
 * keys holding what they did not write: a bug or a manual edit, so a 500.
 * Other reply errors (EXPIRED, LOADING, CLUSTERDOWN, ...) keep their own meaning.
 */
async function runLikeScript<T>(script: LuaScript, keys: string[], args: number[], client: RedisClient): Promise<T> {
  try {
    return await runScript<T>(script, keys, args, client);
  } catch (error) {
    if (error instanceof ReplyError && (error as Error).message.startsWith('CORRUPT ')) {
      throw new InternalError(`${script.name} refused: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  }
}
