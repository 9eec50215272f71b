import { handler as likeHandler } from '../../functions/like';
import { handler as likeStatusHandler } from '../../functions/like-status';
import { handler as unlikeHandler } from '../../functions/unlike';
import type { HttpHandler } from '../../lib/platform/http';
import { receivedLikesKey } from '../../lib/likes/keys';
import { useTestDatabase } from '../support/database';
import { testRedis } from '../support/redis-nodes';
import { bodyOf, httpEvent, lambdaContext, type EventInput } from '../support/events';

/** The like handlers called as API Gateway would call them, against real Redis and PostgreSQL. */

const LIKE = 'POST /posts/{postId}/likes';
const UNLIKE = 'DELETE /posts/{postId}/likes';
const STATUS = 'GET /posts/{postId}/likes';
const RECEIVED = 'GET /users/{userId}/received-likes';

const handlers: Record<string, HttpHandler> = {
  [LIKE]: likeHandler,
  [UNLIKE]: unlikeHandler,
  [STATUS]: likeStatusHandler,
  [RECEIVED]: likeStatusHandler,
};

const t = useTestDatabase();
let nextId = 1;
const freshId = () => nextId++;

async function insertPost(authorId = freshId(), postId = freshId()): Promise<{ postId: number; authorId: number }> {
  await t.pg.query('INSERT INTO posts (id, author_id) VALUES ($1, $2)', [postId, authorId]);
  return { postId, authorId };
}

function call(routeKey: string, id: number | string, userId?: number | string, extra: Partial<EventInput> = {}) {
  const name = routeKey === RECEIVED ? 'userId' : 'postId';
  const event = httpEvent({ routeKey, pathParameters: { [name]: String(id) }, userId, ...extra });
  return handlers[routeKey]!(event, lambdaContext());
}

function expectProblem(result: { statusCode: number; headers?: Record<string, unknown>; body?: string }, status: number, code: string) {
  expect(result.statusCode).toBe(status);
  expect(result.headers?.['content-type']).toBe('application/problem+json');
  expect(bodyOf(result)).toMatchObject({ type: 'about:blank', status, code });
}

it('serves every row of the Likes table', async () => {
  const { postId, authorId } = await insertPost();
  const userId = freshId();

  const liked = await call(LIKE, postId, userId);
  expect(liked.statusCode).toBe(200);
  expect(liked.headers?.['content-type']).toBe('application/json');
  expect(bodyOf(liked)).toEqual({ postId, liked: true, changed: true, likeCount: 1 });
  expect(bodyOf(await call(LIKE, postId, userId))).toEqual({ postId, liked: true, changed: false, likeCount: 1 });

  expect(bodyOf(await call(STATUS, postId, userId))).toEqual({ postId, likeCount: 1, likedByMe: true });
  expect(bodyOf(await call(STATUS, postId, freshId()))).toEqual({ postId, likeCount: 1, likedByMe: false });
  expect(bodyOf(await call(RECEIVED, authorId, freshId()))).toEqual({ userId: authorId, receivedLikeCount: 1 });

  const unliked = await call(UNLIKE, postId, userId);
  expect(unliked.statusCode).toBe(200);
  expect(bodyOf(unliked)).toEqual({ postId, liked: false, changed: true, likeCount: 0 });
  expect(bodyOf(await call(UNLIKE, postId, userId))).toEqual({ postId, liked: false, changed: false, likeCount: 0 });
  expect(bodyOf(await call(RECEIVED, authorId, userId))).toEqual({ userId: authorId, receivedLikeCount: 0 });
});

it('takes the author from the database, whatever the request says', async () => {
  const { postId, authorId } = await insertPost();
  const claimedAuthor = freshId();
  await call(LIKE, postId, freshId(), { body: { authorId: claimedAuthor } });
  expect(bodyOf(await call(RECEIVED, authorId, freshId()))).toEqual({ userId: authorId, receivedLikeCount: 1 });
  expect(bodyOf(await call(RECEIVED, claimedAuthor, freshId()))).toEqual({ userId: claimedAuthor, receivedLikeCount: 0 });
});

it('answers 200 with 0 received likes for a user with no posts and no row', async () => {
  const result = await call(RECEIVED, 9007199254740991, freshId());
  expect(result.statusCode).toBe(200);
  expect(bodyOf(result)).toEqual({ userId: 9007199254740991, receivedLikeCount: 0 });
});

it.each([LIKE, UNLIKE, STATUS])('%s: 404 NOT_FOUND for a post that does not exist', async (routeKey) => {
  expectProblem(await call(routeKey, freshId(), freshId()), 404, 'NOT_FOUND');
});

describe.each([LIKE, UNLIKE, STATUS, RECEIVED])('%s', (routeKey) => {
  it.each(['01', '-1', '1e3', 'abc', '0', '1.5', '9007199254740992', ' 1', ''])('400 VALIDATION_ERROR for path id %j', async (id) => {
    expectProblem(await call(routeKey, id, freshId()), 400, 'VALIDATION_ERROR');
  });

  it('401 UNAUTHORIZED without a token, or with a subject that is not an id', async () => {
    const { postId } = await insertPost();
    expectProblem(await call(routeKey, postId), 401, 'UNAUTHORIZED');
    expectProblem(await call(routeKey, postId, 'admin'), 401, 'UNAUTHORIZED');
  });
});

it('a refused like is a bare 500: no internals in the body, nothing liked', async () => {
  const { postId, authorId } = await insertPost();
  const raw = testRedis({ keyPrefix: process.env.REDIS_KEY_PREFIX });
  try {
    await call(STATUS, postId, freshId()); // loaded: a rebuild would overwrite what follows
    await call(RECEIVED, authorId, freshId());
    await raw.set(receivedLikesKey(authorId), 'corrupt');
    const userId = freshId();
    const result = await call(LIKE, postId, userId);
    expectProblem(result, 500, 'INTERNAL');
    expect(result.body).not.toMatch(/CORRUPT|likes:|received/);
    expect(bodyOf(await call(STATUS, postId, userId))).toEqual({ postId, likeCount: 0, likedByMe: false });
  } finally {
    raw.disconnect();
  }
});

it('a burst of likes through the handler counts every distinct user once', async () => {
  const { postId, authorId } = await insertPost();
  const users = Array.from({ length: 100 }, freshId);
  // Every user likes twice, all requests in flight at once.
  const results = await Promise.all([...users, ...users].map((userId) => call(LIKE, postId, userId)));
  expect(results.every((result) => result.statusCode === 200)).toBe(true);
  expect(results.filter((result) => bodyOf<{ changed: boolean }>(result).changed)).toHaveLength(100);
  expect(bodyOf(await call(STATUS, postId, users[0]!))).toEqual({ postId, likeCount: 100, likedByMe: true });
  expect(bodyOf(await call(RECEIVED, authorId, users[0]!))).toEqual({ userId: authorId, receivedLikeCount: 100 });
});
