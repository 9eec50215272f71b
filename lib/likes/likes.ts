import { ReplyError } from 'ioredis';
import likeSource from '../../lua/like.lua';
import likeStatusSource from '../../lua/like-status.lua';
import unlikeSource from '../../lua/unlike.lua';
import { InternalError, NotFoundError } from '../platform/errors';
import { authorshipKey, postAuthors, type PostAuthors } from './post-authors';
import { luaScript, redis, runScript, type LuaScript, type RedisClient } from '../platform/redis';

/**
 * Likes live in Redis only. Key schema (REDIS_KEY_PREFIX goes in front of each):
 *
 *   likes:{u:<authorId>}:post:<postId>          SET     ids of the users who like the post
 *   likes:{u:<authorId>}:received               STRING  the author's received-like count; absent = 0
 *   likes:{u:<authorId>}:post:<postId>:author   STRING  Redis vouches the post is the author's (lib/likes/post-authors)
 *   post-author:<postId>                        STRING  the post's author id, a cache (lib/likes/post-authors)
 *
 * A like moves the post's set and its author's counter together in one Lua
 * script, so both keys carry the author's hash tag {u:<authorId>}: they hash
 * to one slot and the same script runs on Redis Cluster. That is why every
 * like route first needs the post's author, which comes from the database
 * (cached), never from the client.
 *
 * Round trips: a like, an unlike or a like-status on a warm instance is one
 * EVALSHA and no database call; received likes is one GET. Only when Redis
 * has lost the authorship marker (a flush or failover) does a call cost a
 * SELECT and a second EVALSHA.
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
}

const defaultDeps = (): LikesDeps => ({ redis: redis(), authors: postAuthors() });

export const likeSetKey = (authorId: number, postId: number): string => `likes:{u:${authorId}}:post:${postId}`;
export const receivedLikesKey = (authorId: number): string => `likes:{u:${authorId}}:received`;

export const likeScript = luaScript('like', 3, likeSource);
const unlikeScript = luaScript('unlike', 3, unlikeSource);
const likeStatusScript = luaScript('likeStatus', 2, likeStatusSource);

/** POST /posts/{postId}/likes: liking twice is still one like. */
export function like(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeChange> {
  return setLiked(likeScript, true, postId, userId, deps);
}

/** DELETE /posts/{postId}/likes: unliking what was not liked changes nothing. */
export function unlike(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeChange> {
  return setLiked(unlikeScript, false, postId, userId, deps);
}

async function setLiked(script: LuaScript, liked: boolean, postId: number, userId: number, deps: LikesDeps): Promise<LikeChange> {
  const [changed, likeCount] = await withAuthor(postId, deps, (authorId) => {
    const keys = [likeSetKey(authorId, postId), receivedLikesKey(authorId), authorshipKey(authorId, postId)];
    return runLikeScript<[number, number] | null>(script, keys, [userId], deps.redis);
  });
  return { postId, liked, changed: changed === 1, likeCount };
}

/** GET /posts/{postId}/likes */
export async function likeStatus(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeStatus> {
  // A script rather than a pipeline of SCARD + SISMEMBER: the same one round
  // trip, but one command and an atomic snapshot (likedByMe never comes with a
  // count that does not include it).
  const [likeCount, member] = await withAuthor(postId, deps, (authorId) =>
    runLikeScript<[number, number] | null>(likeStatusScript, [likeSetKey(authorId, postId), authorshipKey(authorId, postId)], [userId], deps.redis),
  );
  return { postId, likeCount, likedByMe: member === 1 };
}

/**
 * GET /users/{userId}/received-likes: one GET. A user with no posts, no liked
 * post or no row at all has no counter, which reads as 0.
 */
export async function receivedLikes(userId: number, client: RedisClient = redis()): Promise<ReceivedLikes> {
  const key = receivedLikesKey(userId);
  const stored = await client.get(key);
  if (stored === null) return { userId, receivedLikeCount: 0 };
  if (!/^(0|[1-9]\d*)$/.test(stored) || !Number.isSafeInteger(Number(stored))) {
    throw new InternalError(`${key} does not hold a like count: ${JSON.stringify(stored)}`);
  }
  return { userId, receivedLikeCount: Number(stored) };
}

/**
 * Runs a like script with the post's author. A script answers null, having
 * written nothing, when Redis no longer vouches for that author (see
 * lib/likes/post-authors): the author is then read from the database, and the
 * script runs once more.
 */
async function withAuthor<T>(postId: number, deps: LikesDeps, run: (authorId: number) => Promise<T | null>): Promise<T> {
  const answer = await run(requireAuthor(postId, await deps.authors.authorOf(postId)));
  if (answer !== null) return answer;
  const retried = await run(requireAuthor(postId, await deps.authors.reload(postId)));
  if (retried === null) throw new InternalError(`post ${postId}: Redis lost its author marker again right after it was written`);
  return retried;
}

function requireAuthor(postId: number, authorId: number | undefined): number {
  if (authorId === undefined) throw new NotFoundError(`post ${postId} does not exist`);
  return authorId;
}

/**
 * The scripts refuse (with a CORRUPT error, before writing anything) to touch
 * keys holding what they did not write: a bug or a manual edit, so a 500.
 * Other reply errors (LOADING, CLUSTERDOWN, ...) keep their own meaning.
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
