import { checkLikes } from '../../lib/likes/admin';
import { bucketOf, bucketPinsKey, changesKey } from '../../lib/likes/keys';
import { like, likeStatus, receivedLikes, unloadPost, type LikesDeps } from '../../lib/likes/likes';
import { postAuthors } from '../../lib/likes/post-authors';
import type { Queryable } from '../../lib/platform/db';
import type { Command, Redis } from 'ioredis';
import { testRedis } from '../support/redis-nodes';
import { useTestDatabase } from '../support/database';
import { useLikesWorld, type Post } from './likes-durable-support';

/**
 * A rebuild never finishes without likes that are already synced, even when
 * sync-likes runs round after round on a busy bucket meanwhile (each round
 * committing and trimming what the rebuild's read of post_likes lacked), and
 * no script call replays more than a page of the bucket's backlog.
 */

const t = useTestDatabase();
const w = useLikesWorld(t, 7_000_000);

/** Another author of the same like bucket as `authorId` (same stream, same slot). */
const bucketMate = (authorId: number, n: number) => authorId + 64 * (20_000 + n);

it('a post with 20,000 likes rebuilt while sync rounds run back to back on its busy bucket: no drift', async () => {
  const authorId = w.freshId();
  const hot = await w.insertPost(authorId);
  await t.pg.query('INSERT INTO post_likes (post_id, user_id) SELECT $1, g FROM generate_series(1, 20000) AS g', [hot.postId]);
  const others: Post[] = [];
  for (let n = 0; n < 8; n++) others.push(await w.insertPost(bucketMate(authorId, n)));
  expect(new Set([hot, ...others].map((post) => bucketOf(post.authorId)))).toEqual(new Set([bucketOf(authorId)]));

  // A backlog of 4,000 changes in the bucket, the hot post's 400 new likes spread through it.
  let nextUser = 1_000_000;
  const pendingOnHot: number[] = [];
  for (let i = 0; i < 4000; i++) {
    const userId = nextUser++;
    if (i % 10 === 0) {
      pendingOnHot.push(userId);
      await like(hot.postId, userId);
    } else await like(others[i % others.length]!.postId, userId);
  }
  // Redis forgets the hot post and its author (npm run likes:rebuild does this); the stream stays.
  await unloadPost(hot.authorId, hot.postId);

  let busy = true;
  // Other users keep liking the bucket's other posts ...
  const traffic = (async () => {
    while (busy) await like(others[nextUser % others.length]!.postId, nextUser++);
  })();
  // ... while sync-likes runs round after round, each committing and trimming a small batch ...
  let rounds = 0;
  const syncing = Promise.all(
    Array.from({ length: 2 }, async () => {
      while (busy) rounds += (await w.sync({ batchSize: 50 })).rounds;
    }),
  );
  // ... and, to leave nothing to luck, one more round right after each read
  // the rebuild makes of post_likes: it commits changes that read lacks, the
  // hot post's among them, and trims them if nothing stops it.
  let hookedRounds = 0;
  const database: Queryable = {
    async query(sql, params, options) {
      const result = await t.db.query(sql, params, options);
      if (sql.includes('LEFT JOIN likes_sync_state')) {
        let once = true;
        hookedRounds += (await w.sync({ batchSize: 50, keepGoing: () => (once ? !(once = false) : false) })).rounds;
      }
      return result as never;
    },
  };
  // The rebuild's finishing calls, counted: those that name both its work set and the loaded marker.
  const client = testRedis({ keyPrefix: w.prefix }) as Redis;
  const finishing: unknown[] = [];
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((command: Command, stream?: unknown) => {
    const args = command.args.map(String);
    if (args.some((arg) => arg.includes(`:post:${hot.postId}:rebuild:`)) && args.some((arg) => arg.endsWith(`:post:${hot.postId}:loaded`))) {
      command.promise.then((reply) => finishing.push(reply), () => undefined);
    }
    return send(command, stream as never);
  }) as typeof client.sendCommand;
  const deps: LikesDeps = { redis: client, authors: postAuthors(), db: database };
  // The rebuild of the hot post and its author, while all that goes on.
  const [status, received] = await Promise.all([likeStatus(hot.postId, 1, deps), receivedLikes(authorId, deps)]).finally(() => {
    busy = false;
  });
  await Promise.all([traffic, syncing]);
  client.disconnect();
  // The backlog (thousands of entries) was replayed a page of 1,000 per call ({2, last id read}), not in one,
  // and the rebuild finished once, on its first attempt.
  const more = finishing.filter((reply) => Array.isArray(reply) && reply[0] === 2);
  expect(more.length).toBeGreaterThanOrEqual(1);
  expect(finishing).toEqual([...more, [1, 20_000 + pendingOnHot.length]]);

  const expected = 20_000 + pendingOnHot.length;
  expect(status).toEqual({ postId: hot.postId, likeCount: expected, likedByMe: true });
  expect(received).toEqual({ userId: authorId, receivedLikeCount: expected });
  expect(rounds).toBeGreaterThan(1);
  expect(hookedRounds).toBeGreaterThan(0);
  // Nothing held back for good: the pins went with the rebuilds, and the next sync trims everything.
  expect(await w.raw.exists(w.prefix + bucketPinsKey(bucketOf(authorId)))).toBe(0);
  expect(await w.sync()).toMatchObject({ caughtUp: true });
  expect(await w.raw.xlen(w.prefix + changesKey(bucketOf(authorId)))).toBe(0);
  expect((await checkLikes()).drift).toEqual([]);
  expect(await w.recorded(hot.postId)).toHaveLength(expected);
  await w.expectCountsConsistent([hot, ...others]);
}, 120_000);
