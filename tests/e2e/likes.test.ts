import { useOfflineStack } from '../support/offline';

/** The Likes routes over HTTP, through serverless-offline and the same bundles as in AWS. */

const { database: t, request } = useOfflineStack();

it('serves every Likes route', async () => {
  await t.pg.query('INSERT INTO posts (id, author_id) VALUES (10, 20)');
  expect(await request('POST', '/posts/10/likes', 1)).toEqual({
    status: 200,
    type: expect.stringContaining('application/json'),
    body: { postId: 10, liked: true, changed: true, likeCount: 1 },
  });
  expect((await request('GET', '/posts/10/likes', 1)).body).toEqual({ postId: 10, likeCount: 1, likedByMe: true });
  expect((await request('GET', '/users/20/received-likes', 2)).body).toEqual({ userId: 20, receivedLikeCount: 1 });
  expect((await request('DELETE', '/posts/10/likes', 1)).body).toEqual({ postId: 10, liked: false, changed: true, likeCount: 0 });
  expect((await request('GET', '/users/20/received-likes', 2)).body).toEqual({ userId: 20, receivedLikeCount: 0 });
});

it('answers problem+json: 404 for a missing post, 400 for a bad id, 401 without a token', async () => {
  const cases: Array<[string, string, number | undefined, number, string]> = [
    ['POST', '/posts/999/likes', 1, 404, 'NOT_FOUND'],
    ['GET', '/posts/01/likes', 1, 400, 'VALIDATION_ERROR'],
    ['GET', '/users/1e3/received-likes', 1, 400, 'VALIDATION_ERROR'],
    ['DELETE', '/posts/10/likes', undefined, 401, 'UNAUTHORIZED'],
  ];
  for (const [method, path, userId, status, code] of cases) {
    const response = await request(method, path, userId);
    expect(response).toEqual({ status, type: expect.stringContaining('application/problem+json'), body: expect.objectContaining({ status, code }) });
  }
});

it('counts a concurrent burst of likes exactly', async () => {
  await t.pg.query('INSERT INTO posts (id, author_id) VALUES (11, 21)');
  const users = Array.from({ length: 100 }, (_, i) => 1000 + i);
  const responses = await Promise.all(users.map((userId) => request('POST', '/posts/11/likes', userId)));
  expect(responses.every((response) => response.status === 200)).toBe(true);
  expect((await request('GET', '/posts/11/likes', 1)).body).toEqual({ postId: 11, likeCount: 100, likedByMe: false });
  expect((await request('GET', '/users/21/received-likes', 1)).body).toEqual({ userId: 21, receivedLikeCount: 100 });
});
