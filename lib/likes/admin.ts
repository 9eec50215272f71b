import { db, type Database } from '../platform/db';
import { redis, type RedisClient } from '../platform/redis/client';
import { LIKE_BUCKETS, authorLoadedKey, bucketMetaKey, changesKey, likeSetKey, postLoadedKey, receivedLikesKey } from './keys';
import { likeStatus, receivedLikes, unloadPost, type LikesDeps } from './likes';
import { postAuthors } from './post-authors';
import { entryAfter } from './sync';

/**
 * Operator tools (npm run likes:rebuild, npm run likes:check; the same code
 * could run as a one-off Lambda in AWS): rebuild every post and author from
 * post_likes on purpose, and compare Redis with post_likes.
 */

export interface AdminDeps {
  redis: RedisClient;
  db: Database;
  likes: LikesDeps;
}

const defaultDeps = (): AdminDeps => ({ redis: redis(), db: db(), likes: { redis: redis(), authors: postAuthors(), db: db() } });

const PAGE = 5000;
/** Posts rebuilt at once: each rebuild is a few Data API calls and Redis scripts. */
const PARALLEL = 8;

interface PostRow {
  id: number;
  author_id: number;
}

async function* allPosts(database: Database): AsyncGenerator<PostRow[]> {
  let after = 0;
  for (;;) {
    const { rows } = await database.query<PostRow>('SELECT id, author_id FROM posts WHERE id > :after ORDER BY id LIMIT :limit', { after, limit: PAGE });
    if (rows.length === 0) return;
    yield rows.map((row) => ({ id: Number(row.id), author_id: Number(row.author_id) }));
    after = Number(rows.at(-1)!.id);
  }
}

async function inParallel<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let first = 0; first < items.length; first += PARALLEL) await Promise.all(items.slice(first, first + PARALLEL).map(fn));
}

export interface RebuildSummary {
  posts: number;
  authors: number;
}

/**
 * Rebuilds every post of the database and every author of one: first makes
 * Redis forget all of them (each post's loaded marker and its author's),
 * then loads each through the usual rebuild-on-first-use path, so live
 * requests meanwhile wait for, or do, the same rebuilds. Pending changes are
 * kept: a rebuild replays them.
 */
export async function rebuildAll(deps: AdminDeps = defaultDeps()): Promise<RebuildSummary> {
  let posts = 0;
  const authors = new Set<number>();
  for await (const page of allPosts(deps.db)) {
    await inParallel(page, (post) => unloadPost(post.author_id, post.id, deps.redis));
  }
  for await (const page of allPosts(deps.db)) {
    await inParallel(page, (post) => likeStatus(post.id, 0, deps.likes));
    posts += page.length;
    for (const post of page) authors.add(post.author_id);
  }
  await inParallel([...authors], (authorId) => receivedLikes(authorId, deps.likes));
  return { posts, authors: authors.size };
}

export interface Drift {
  kind: 'post' | 'author';
  id: number;
  redis: number;
  expected: number;
}

export interface CheckReport {
  postsChecked: number;
  postsNotLoaded: number;
  authorsChecked: number;
  authorsNotLoaded: number;
  pendingChanges: number;
  drift: Drift[];
}

/**
 * Compares what Redis holds with what post_likes plus the pending changes
 * say it should hold: each loaded post's like count, and each loaded
 * author's received count (which must also equal the sum of their posts).
 * Entries that Redis has not loaded are not drift: they are rebuilt on first
 * use. Live traffic during a check can show as drift of a like or two; run it
 * again, or after a sync, to tell.
 */
export async function checkLikes(deps: AdminDeps = defaultDeps()): Promise<CheckReport> {
  const pending = await pendingDeltas(deps);
  const report: CheckReport = { postsChecked: 0, postsNotLoaded: 0, authorsChecked: 0, authorsNotLoaded: 0, pendingChanges: pending.total, drift: [] };
  const authors = new Set<number>();
  for await (const page of allPosts(deps.db)) {
    const { rows } = await deps.db.query<{ post_id: number; likes: number | string }>(
      'SELECT post_id, count(*) AS likes FROM post_likes WHERE post_id BETWEEN :first AND :last GROUP BY post_id',
      { first: page[0]!.id, last: page.at(-1)!.id },
    );
    const recorded = new Map(rows.map((row) => [Number(row.post_id), Number(row.likes)]));
    await inParallel(page, async (post) => {
      authors.add(post.author_id);
      report.postsChecked++;
      const [loaded, count] = await Promise.all([
        deps.redis.exists(postLoadedKey(post.author_id, post.id)),
        deps.redis.scard(likeSetKey(post.author_id, post.id)),
      ]);
      if (loaded === 0) {
        report.postsNotLoaded++;
        return;
      }
      const expected = (recorded.get(post.id) ?? 0) + (pending.posts.get(post.id) ?? 0);
      if (count !== expected) report.drift.push({ kind: 'post', id: post.id, redis: count, expected });
    });
  }
  await inParallel([...authors], async (authorId) => {
    report.authorsChecked++;
    const [loaded, stored] = await Promise.all([deps.redis.exists(authorLoadedKey(authorId)), deps.redis.get(receivedLikesKey(authorId))]);
    if (loaded === 0) {
      report.authorsNotLoaded++;
      return;
    }
    const { rows } = await deps.db.query<{ likes: number | string }>(
      'SELECT count(*) AS likes FROM post_likes AS l JOIN posts AS p ON p.id = l.post_id WHERE p.author_id = :authorId',
      { authorId },
    );
    const expected = Number(rows[0]?.likes ?? 0) + (pending.authors.get(authorId) ?? 0);
    if (Number(stored ?? 0) !== expected) report.drift.push({ kind: 'author', id: authorId, redis: Number(stored ?? 0), expected });
  });
  return report;
}

/** The net effect of every change not yet in post_likes, per post and per author. */
async function pendingDeltas(deps: AdminDeps): Promise<{ posts: Map<number, number>; authors: Map<number, number>; total: number }> {
  const { rows } = await deps.db.query<{ bucket: number; epoch: string; last_entry_id: string | null }>('SELECT bucket, epoch, last_entry_id FROM likes_sync_state');
  const states = new Map(rows.map((row) => [Number(row.bucket), { epoch: row.epoch, id: row.last_entry_id ?? '' }]));
  const posts = new Map<number, number>();
  const authors = new Map<number, number>();
  let total = 0;
  for (let bucket = 0; bucket < LIKE_BUCKETS; bucket++) {
    const [epoch, entries] = await Promise.all([deps.redis.hget(bucketMetaKey(bucket), 'epoch'), deps.redis.xrange(changesKey(bucket), '-', '+')]);
    const state = states.get(bucket);
    const recorded = state && state.epoch === epoch ? state.id : '';
    for (const [id, fields] of entries) {
      const f: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      if (!entryAfter(id, recorded)) continue;
      total++;
      const delta = f.o === '1' ? 1 : -1;
      posts.set(Number(f.p), (posts.get(Number(f.p)) ?? 0) + delta);
      authors.set(Number(f.a), (authors.get(Number(f.a)) ?? 0) + delta);
    }
  }
  return { posts, authors, total };
}
