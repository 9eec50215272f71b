import type { HttpHandler } from '../../lib/platform/http';
import type { TestDatabase } from '../support/database';
import { bodyOf, httpEvent, lambdaContext } from '../support/events';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy';
import { startRedisServer, type RedisServer } from '../support/redis-server';

/**
 * A like or an unlike whose reply is lost after Redis ran it (the connection
 * reset between the write and the answer): the outcome is unknown to the
 * client, so lib/platform/redis runs the idempotent script once more with a
 * fresh cutoff. The answer is then the truth (200, the state as it is), never
 * a 503 for a like that stands.
 */

let server: RedisServer;
let proxy: FaultProxy;
let database: TestDatabase;
let like: HttpHandler;
let unlike: HttpHandler;
let status: HttpHandler;
let closeRedis: () => Promise<void>;

beforeAll(async () => {
  server = await startRedisServer();
  const [host, port] = server.url.replace('redis://', '').split(':') as [string, string];
  proxy = await startFaultProxy({ host, port: Number(port) });
  process.env.REDIS_URL = proxy.url('redis');
  process.env.REDIS_CLUSTER = 'false';
  const { createTestDatabase } = await import('../support/database');
  database = await createTestDatabase();
  like = ((await import('../../functions/like')) as { handler: HttpHandler }).handler;
  unlike = ((await import('../../functions/unlike')) as { handler: HttpHandler }).handler;
  status = ((await import('../../functions/like-status')) as { handler: HttpHandler }).handler;
  ({ closeRedis } = await import('../../lib/platform/redis/client'));
}, 60_000);

afterAll(async () => {
  await closeRedis?.();
  await database?.close();
  await proxy?.close();
  await server?.stop();
});

const route = (routeKey: string, postId: number, userId: number) => httpEvent({ routeKey, pathParameters: { postId: String(postId) }, userId });

it('answers a like and an unlike whose replies were lost with the truth, and counts each once', async () => {
  const post = 11;
  const author = 1;
  await database.pg.query('INSERT INTO users (id) VALUES ($1)', [author]);
  await database.pg.query('INSERT INTO posts (id, author_id) VALUES ($1, $2)', [post, author]);
  // Warm: the post and its author are loaded, so the next like is one script call.
  expect((await like(route('POST /posts/{postId}/likes', post, 500), lambdaContext(10_000))).statusCode).toBe(200);

  proxy.set({ mode: 'dropAfterRequest', once: true });
  const liked = await like(route('POST /posts/{postId}/likes', post, 501), lambdaContext(10_000));
  expect(proxy.drops).toBe(1);
  expect(liked.statusCode).toBe(200);
  expect(bodyOf(liked)).toMatchObject({ postId: post, liked: true, likeCount: 2 });

  proxy.set({ mode: 'dropAfterRequest', once: true });
  const unliked = await unlike(route('DELETE /posts/{postId}/likes', post, 500), lambdaContext(10_000));
  expect(proxy.drops).toBe(2);
  expect(unliked.statusCode).toBe(200);
  expect(bodyOf(unliked)).toMatchObject({ postId: post, liked: false, likeCount: 1 });

  const seen = bodyOf(await status(route('GET /posts/{postId}/likes', post, 501), lambdaContext(10_000)));
  expect(seen).toEqual({ postId: post, likeCount: 1, likedByMe: true });
  const received = bodyOf(await status(httpEvent({ routeKey: 'GET /users/{userId}/received-likes', pathParameters: { userId: String(author) }, userId: author }), lambdaContext(10_000)));
  expect(received).toEqual({ userId: author, receivedLikeCount: 1 });
});
