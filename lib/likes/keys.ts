/**
 * The likes Redis key schema: every key the likes feature reads or writes is
 * named here and nowhere else. REDIS_KEY_PREFIX goes in front of each (ioredis
 * adds it); the prefix must hold no `{`, so the hash tag below is the key's
 * first one.
 *
 * Buckets. An author belongs to bucket `authorId mod LIKE_BUCKETS`, and every
 * key of that author carries the bucket's hash tag `{lk:<bucket>}`. So a like
 * script touches the post's like set, the author's counter, the markers and
 * the bucket's change stream in one slot (one Redis Cluster node), and
 * sync-likes finds every pending change by reading the LIKE_BUCKETS streams:
 * no KEYS, no SCAN, no registry. The bucket count is part of the schema:
 * changing it moves every author to another key (Redis would rebuild from
 * PostgreSQL, and changes not yet synced would be stranded), so it is a
 * constant, not a setting.
 *
 * Per post (author a, post p, bucket of a):
 *   likes:{lk:b}:u:<a>:post:<p>              SET     ids of the users who like the post
 *   likes:{lk:b}:u:<a>:post:<p>:loaded       STRING  the set holds PostgreSQL + pending changes (rebuilt, or new)
 *   likes:{lk:b}:u:<a>:post:<p>:author       STRING  Redis vouches the post is a's; expires after
 *                                                    LIKES_POST_RECHECK_SECONDS so a deleted post is noticed
 *   likes:{lk:b}:u:<a>:post:<p>:rebuilding   STRING  rebuild lock (holder's token, short lease)
 *   likes:{lk:b}:u:<a>:post:<p>:rebuild:<t>  SET     a rebuild's work in progress, renamed over the set at the end
 * Per author:
 *   likes:{lk:b}:u:<a>:received              STRING  received-like count (the sum of the author's posts)
 *   likes:{lk:b}:u:<a>:loaded                STRING  the counter was rebuilt from PostgreSQL + pending changes
 *   likes:{lk:b}:u:<a>:rebuilding            STRING  rebuild lock
 *   likes:{lk:b}:u:<a>:none                  STRING  the author had no post and no pending change when last
 *                                                    rebuilt: received-likes answers 0 until it expires
 *                                                    (EMPTY_AUTHOR_TTL_SECONDS). Never a loaded marker: a like
 *                                                    still needs the author rebuilt for real first.
 * Per bucket:
 *   likes:{lk:b}:changes                     STREAM  every change not yet synced (and, briefly, synced ones
 *                                                    until the sync trims them): fields s (seq), p, u, a, o (1 like,
 *                                                    0 unlike), t (ms)
 *   likes:{lk:b}:meta                        HASH    seq (last change's number), epoch (this stream's
 *                                                    incarnation)
 *   likes:{lk:b}:pins                        HASH    rebuilder token -> "<expiry ms> <entry id>": while a
 *                                                    post or author of the bucket is rebuilt, sync-likes trims
 *                                                    the stream no further than that id (lib/likes/rebuild);
 *                                                    expires with the last lease
 * Outside any bucket (read alone, one GET):
 *   post-author:<p>                          STRING  the post's author id, a cache (lib/likes/post-authors);
 *                                                    or "none", briefly, for a post that does not exist
 *
 * A loaded marker is what lets the scripts tell "no likes" from "Redis forgot":
 * a like script writes only when both the post's and the author's are present,
 * and otherwise asks the caller to rebuild (lib/likes/rebuild). None of these
 * keys expires except the authorship marker, the rebuild leases and the
 * answers about ids that do not exist (post-author "none", the author's
 * none marker), so an eviction policy that spares keys without a TTL never
 * drops likes alone, and asking about ids that are not there stores nothing
 * that lasts. Every key without a TTL belongs to a post in the database or to
 * an author who has one.
 */

export const LIKE_BUCKETS = 64;

export const bucketOf = (authorId: number): number => authorId % LIKE_BUCKETS;

const bucketTag = (bucket: number): string => `{lk:${bucket}}`;
const author = (authorId: number): string => `likes:${bucketTag(bucketOf(authorId))}:u:${authorId}`;
const post = (authorId: number, postId: number): string => `${author(authorId)}:post:${postId}`;

export const likeSetKey = (authorId: number, postId: number): string => post(authorId, postId);
export const postLoadedKey = (authorId: number, postId: number): string => `${post(authorId, postId)}:loaded`;
export const authorshipKey = (authorId: number, postId: number): string => `${post(authorId, postId)}:author`;
export const postRebuildLockKey = (authorId: number, postId: number): string => `${post(authorId, postId)}:rebuilding`;
export const postRebuildWorkKey = (authorId: number, postId: number, token: string): string => `${post(authorId, postId)}:rebuild:${token}`;

export const receivedLikesKey = (authorId: number): string => `${author(authorId)}:received`;
export const authorLoadedKey = (authorId: number): string => `${author(authorId)}:loaded`;
export const authorRebuildLockKey = (authorId: number): string => `${author(authorId)}:rebuilding`;
export const authorNoneKey = (authorId: number): string => `${author(authorId)}:none`;

export const changesKey = (bucket: number): string => `likes:${bucketTag(bucket)}:changes`;
export const bucketMetaKey = (bucket: number): string => `likes:${bucketTag(bucket)}:meta`;
export const bucketPinsKey = (bucket: number): string => `likes:${bucketTag(bucket)}:pins`;

export const postAuthorKey = (postId: number): string => `post-author:${postId}`;

/** The keys of like.lua and unlike.lua, in their KEYS order. */
export function likeScriptKeys(authorId: number, postId: number): string[] {
  const bucket = bucketOf(authorId);
  return [
    likeSetKey(authorId, postId),
    receivedLikesKey(authorId),
    authorshipKey(authorId, postId),
    postLoadedKey(authorId, postId),
    authorLoadedKey(authorId),
    changesKey(bucket),
    bucketMetaKey(bucket),
  ];
}
