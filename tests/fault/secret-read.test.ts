import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { ANSWER_BOUND_MS, balanceOf, insertPost, insertUser, isUnavailableProblem, startFaultStack, type FaultStack, type Timed } from './redis-harness';

/**
 * The Redis AUTH token is read from SSM at cold start (lib/platform/secrets).
 * A local HTTP server stands in for SSM (the SDK's endpoint, by
 * AWS_ENDPOINT_URL_SSM) and the test's own Redis requires the password. SSM
 * first fails, then does not answer at all, then answers: each like and
 * charge meanwhile is a 503 DEPENDENCY_UNAVAILABLE within its deadline
 * (popular and trending items answer from the database, as when Redis is
 * down), and the first request after SSM answers is served, by the same
 * instance, with nothing changed by the refused ones.
 */

const PARAMETER = '/likes/test/redis-auth';
const PASSWORD = 'a-token-only-ssm-knows';
/** An answer later than this is a hang: recorded as status 0, so the test reports it instead of timing out. */
const HANG_MS = 12_000;

type Mode = 'fail' | 'hang' | 'answer';
let mode: Mode = 'fail';
const reads: Mode[] = [];
let ssm: Server;
let stack: FaultStack;

beforeAll(async () => {
  ssm = createServer((request, response) => answerSsm(request, response));
  await new Promise<void>((listening) => ssm.listen(0, '127.0.0.1', listening));
  process.env.AWS_ENDPOINT_URL_SSM = `http://127.0.0.1:${(ssm.address() as AddressInfo).port}`;
  process.env.REDIS_AUTH_PARAMETER = PARAMETER;
  stack = await startFaultStack();
  const admin = new Redis(stack.server.url, { maxRetriesPerRequest: 0 });
  await admin.config('SET', 'requirepass', PASSWORD);
  admin.disconnect();
}, 60_000);
afterAll(async () => {
  await stack?.close();
  ssm?.closeAllConnections();
  await new Promise((closed) => ssm?.close(closed));
  delete process.env.AWS_ENDPOINT_URL_SSM;
  delete process.env.REDIS_AUTH_PARAMETER;
});

/** SSM's GetParameter over its JSON protocol, in the mode the test set. */
function answerSsm(request: IncomingMessage, response: ServerResponse): void {
  let body = '';
  request.on('data', (chunk: Buffer) => (body += chunk.toString()));
  request.on('end', () => {
    reads.push(mode);
    if (mode === 'hang') return; // never answers; the client's abort closes the socket
    response.setHeader('content-type', 'application/x-amz-json-1.1');
    if (mode === 'fail') {
      response.statusCode = 500;
      response.end(JSON.stringify({ __type: 'InternalServerError', message: 'SSM is having a bad day' }));
      return;
    }
    const { Name, WithDecryption } = JSON.parse(body) as { Name: string; WithDecryption: boolean };
    expect({ Name, WithDecryption, target: request.headers['x-amz-target'] }).toEqual({ Name: PARAMETER, WithDecryption: true, target: 'AmazonSSM.GetParameter' });
    response.end(JSON.stringify({ Parameter: { Name, Type: 'SecureString', Value: PASSWORD, Version: 1 } }));
  });
}

async function unhung(call: () => Promise<Timed>): Promise<Timed | undefined> {
  return Promise.race([call(), sleep(HANG_MS, undefined, { ref: false })]);
}

it('answers 503 within the deadline while SSM fails or hangs, and serves from the first request after it answers', async () => {
  const author = 1;
  const post = 101;
  const charger = 2;
  await insertUser(stack.pg, author);
  await insertPost(stack.pg, post, author);
  await insertUser(stack.pg, charger);

  const refused: { mode: Mode; answer: Timed | undefined }[] = [];
  const readsFromDatabase: { mode: Mode; route: string; answer: Timed | undefined }[] = [];
  for (const failing of ['fail', 'hang'] as const) {
    mode = failing;
    refused.push({ mode: failing, answer: await unhung(() => stack.like(post, 1000)) });
    refused.push({ mode: failing, answer: await unhung(() => stack.charge(charger, 5)) });
    // The item rankings have the database to answer from, as when Redis is down.
    readsFromDatabase.push({ mode: failing, route: 'popular', answer: await unhung(() => stack.popular(charger)) });
    readsFromDatabase.push({
      mode: failing,
      route: 'trending',
      answer: await unhung(() => stack.call({ routeKey: 'GET /items/trending', rawQueryString: 'minutes=10&limit=5', userId: charger })),
    });
  }
  expect(readsFromDatabase.map(({ mode: m, route, answer }) => ({ mode: m, route, status: answer?.status, inTime: (answer?.ms ?? HANG_MS) < ANSWER_BOUND_MS }))).toEqual(
    readsFromDatabase.map(({ mode: m, route }) => ({ mode: m, route, status: 200, inTime: true })),
  );
  console.log(`while SSM fails or hangs: ${refused.map(({ mode: m, answer }) => `${m} ${answer?.status ?? 'no answer'}/${Math.round(answer?.ms ?? HANG_MS)}ms`).join(', ')}`);
  for (const { answer } of refused) {
    expect(answer && isUnavailableProblem(answer)).toBe(true);
    expect(answer!.ms).toBeLessThan(ANSWER_BOUND_MS);
  }
  // Every request read again: no failure was remembered.
  expect(reads.filter((read) => read === 'hang').length).toBeGreaterThanOrEqual(2);

  mode = 'answer';
  const liked = await unhung(() => stack.like(post, 1001));
  const charged = await unhung(() => stack.charge(charger, 7));
  expect({ like: liked?.status, charge: charged?.status }).toEqual({ like: 200, charge: 200 });
  const readsWhenServed = reads.length;
  expect((await stack.like(post, 1002)).status).toBe(200);
  expect(reads.length).toBe(readsWhenServed); // read once, then kept

  // Nothing refused took effect.
  expect((await stack.likeStatus(post, 1000)).body).toMatchObject({ likedByMe: false, likeCount: 2 });
  expect(await balanceOf(stack.pg, charger)).toEqual({ balance: 7, charges: 1 });
}, 60_000);
