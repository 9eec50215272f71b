import fc from 'fast-check';
import { like, likeStatus, receivedLikes, unlike, unloadPost, type LikesDeps } from '../../lib/likes/likes';
import { postAuthors } from '../../lib/likes/post-authors';
import { redis } from '../../lib/platform/redis/client';
import { useTestDatabase } from '../support/database';
import { useLikesWorld, type Post } from './likes-durable-support';

/**
 * Random sequences of likes, unlikes, syncs, Redis losing everything and
 * rebuilds on purpose, against a reference model of what docs/api.md promises:
 *   record  = post_likes: what the last sync saw;
 *   live    = what the API answers: the record plus the changes since;
 *   a flush = live falls back to the record (changes since the sync are lost);
 *   a sync  = the record catches up with live;
 * and every author's received count is the sum of their posts' counts.
 * A race leaves some changes pending, makes Redis forget one post and its
 * author, then runs more likes and unlikes, their rebuild and two syncs of
 * one change per round all at once (and one more round right after each
 * read the rebuild makes): the syncs commit and trim while the rebuild
 * reads, and none of it may lose or double a like.
 */

const t = useTestDatabase();
const w = useLikesWorld(t, 1_000_000);

type Command =
  | { kind: 'like' | 'unlike'; post: number; user: number }
  | { kind: 'sync' }
  | { kind: 'flush' }
  | { kind: 'unload'; post: number }
  | { kind: 'received'; author: number }
  | { kind: 'race'; post: number; before: LikeOrUnlike[]; during: LikeOrUnlike[] };

type LikeOrUnlike = { kind: 'like' | 'unlike'; post: number; user: number };

const POSTS = 3; // posts 0 and 1 by the first author, post 2 by the second
const USERS = 4;

const likeOrUnlike = fc.record({ kind: fc.constantFrom('like' as const, 'unlike' as const), post: fc.nat(POSTS - 1), user: fc.nat(USERS - 1) });
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: likeOrUnlike },
  { weight: 1, arbitrary: fc.constant({ kind: 'sync' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unload' as const), post: fc.nat(POSTS - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('received' as const), author: fc.nat(1) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('race' as const),
      post: fc.nat(POSTS - 1),
      before: fc.array(likeOrUnlike, { maxLength: 12 }),
      during: fc.array(likeOrUnlike, { maxLength: 6 }),
    }),
  },
);

/**
 * The likes service with one sync round (one change) run right after each
 * read a rebuild makes of post_likes: the worst moment for a trim.
 */
const racingDeps: LikesDeps = {
  get redis() {
    return redis();
  },
  get authors() {
    return postAuthors();
  },
  db: {
    async query(sql, params, options) {
      const result = await t.db.query(sql, params, options);
      if (sql.includes('LEFT JOIN likes_sync_state')) {
        let once = true;
        await w.sync({ batchSize: 1, keepGoing: () => (once ? !(once = false) : false) });
      }
      return result as never;
    },
  },
};

it('like / unlike / sync / flush / rebuild sequences behave as the model says', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 30 }), async (commands) => {
      const authors = [w.freshId(), w.freshId()];
      const posts: Post[] = [];
      for (let n = 0; n < POSTS; n++) posts.push(await w.insertPost(authors[n < 2 ? 0 : 1]));
      const users = Array.from({ length: USERS }, w.freshId);
      let record = posts.map(() => new Set<number>());
      let live = posts.map(() => new Set<number>());
      const sum = (author: number) => posts.reduce((total, post, n) => total + (post.authorId === authors[author] ? live[n]!.size : 0), 0);

      const likeStep = async (step: LikeOrUnlike) => {
        const post = posts[step.post]!;
        const userId = users[step.user]!;
        const set = live[step.post]!;
        const had = set.has(userId);
        const answer = await (step.kind === 'like' ? like : unlike)(post.postId, userId);
        if (step.kind === 'like') set.add(userId);
        else set.delete(userId);
        expect(answer).toEqual({ postId: post.postId, liked: step.kind === 'like', changed: had !== (step.kind === 'like'), likeCount: set.size });
      };

      for (const step of commands) {
        switch (step.kind) {
          case 'like':
          case 'unlike':
            await likeStep(step);
            break;
          case 'race': {
            const post = posts[step.post]!;
            for (const op of step.before) await likeStep(op);
            await unloadPost(post.authorId, post.postId);
            await Promise.all([
              (async () => {
                for (const op of step.during) await likeStep(op);
              })(),
              likeStatus(post.postId, 0, racingDeps),
              receivedLikes(post.authorId, racingDeps),
              w.sync({ batchSize: 1 }),
              w.sync({ batchSize: 1 }),
            ]);
            // Whatever the race left pending, the record catches up with it.
            await w.sync();
            record = live.map((set) => new Set(set));
            expect(await likeStatus(post.postId, 0)).toMatchObject({ likeCount: live[step.post]!.size });
            for (const author of [0, 1]) expect(await receivedLikes(authors[author]!)).toEqual({ userId: authors[author], receivedLikeCount: sum(author) });
            break;
          }
          case 'sync': {
            expect(await w.sync()).toMatchObject({ caughtUp: true });
            record = live.map((set) => new Set(set));
            for (const [n, post] of posts.entries()) expect(await w.recorded(post.postId)).toEqual([...record[n]!].sort((a, b) => a - b));
            break;
          }
          case 'flush':
            await w.loseRedis();
            live = record.map((set) => new Set(set));
            break;
          case 'unload':
            await unloadPost(posts[step.post]!.authorId, posts[step.post]!.postId);
            break;
          case 'received':
            expect(await receivedLikes(authors[step.author]!)).toEqual({ userId: authors[step.author], receivedLikeCount: sum(step.author) });
            break;
        }
      }
      for (const [n, post] of posts.entries()) {
        for (const userId of users) {
          expect(await likeStatus(post.postId, userId)).toEqual({ postId: post.postId, likeCount: live[n]!.size, likedByMe: live[n]!.has(userId) });
        }
      }
      for (const author of [0, 1]) expect(await receivedLikes(authors[author]!)).toEqual({ userId: authors[author], receivedLikeCount: sum(author) });
      // And the record catches up with everything the API answered since the last flush.
      await w.sync();
      for (const [n, post] of posts.entries()) expect(await w.recorded(post.postId)).toEqual([...live[n]!].sort((a, b) => a - b));
    }),
    { numRuns: 40 },
  );
}, 180_000);
