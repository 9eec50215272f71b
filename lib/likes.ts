import { ReplyError } from 'ioredis';
import likeSource from '../lua/like.lua';
import likeStatusSource from '../lua/like-status.lua';
import unlikeSource from '../lua/unlike.lua';
import { InternalError, NotFoundError } from './errors';
import { postAuthors, type PostAuthors } from './post-authors';
import { luaScript, redis, runScript, type LuaScript, type RedisClient } from './redis';

/**
 * Likes live in Redis only. Key schema (REDIS_KEY_PREFIX goes in front of each):
 *
 *   likes:{u:<authorId>}:post:<postId>   SET     ids of the users who like the post
 *   likes:{u:<authorId>}:received        STRING  the author's received-like count; absent = 0
 *   post-author:<postId>                 STRING  the post's author id, a cache (lib/post-authors)
 *
 * A like moves the post's set and its author's counter together in one Lua
 * script, so both keys carry the author's hash tag {u:<authorId>}: they hash
 * to one slot and the same script runs on Redis Cluster. That is why every
 * like route first needs the post's author, which comes from the database
 * (cached), never from the client.
 *
 * Round trips: a like, an unlike or a like-status on a warm instance is one
 * EVALSHA and no database call; received likes is one GET.
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

export const likeScript = luaScript('like', 2, likeSource);
const unlikeScript = luaScript('unlike', 2, unlikeSource);
const likeStatusScript = luaScript('likeStatus', 1, likeStatusSource);

/** POST /posts/{postId}/likes: liking twice is still one like. */
export function like(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeChange> {
  return setLiked(likeScript, true, postId, userId, deps);
}

/** DELETE /posts/{postId}/likes: unliking what was not liked changes nothing. */
export function unlike(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeChange> {
  return setLiked(unlikeScript, false, postId, userId, deps);
}

async function setLiked(script: LuaScript, liked: boolean, postId: number, userId: number, deps: LikesDeps): Promise<LikeChange> {
  const authorId = await requireAuthor(postId, deps.authors);
  const keys = [likeSetKey(authorId, postId), receivedLikesKey(authorId)];
  const [changed, likeCount] = await runLikeScript<[number, number]>(script, keys, [userId], deps.redis);
  return { postId, liked, changed: changed === 1, likeCount };
}

/** GET /posts/{postId}/likes */
export async function likeStatus(postId: number, userId: number, deps: LikesDeps = defaultDeps()): Promise<LikeStatus> {
  const authorId = await requireAuthor(postId, deps.authors);
  // A script rather than a pipeline of SCARD + SISMEMBER: the same one round
  // trip, but one command and an atomic snapshot (likedByMe never comes with a
  // count that does not include it).
  const [likeCount, member] = await runLikeScript<[number, number]>(likeStatusScript, [likeSetKey(authorId, postId)], [userId], deps.redis);
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

async function requireAuthor(postId: number, authors: PostAuthors): Promise<number> {
  const authorId = await authors.authorOf(postId);
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
