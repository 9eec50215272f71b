import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalToken } from '../../lib/platform/local-token';
import { useTestDatabase } from '../support/database';
import { STACK_TIMEOUT_MS, startOfflineStack, type OfflineStack } from '../support/offline';
import { insertUser } from '../support/points';

/**
 * What `npm start` prints for a request (issue 12), read from the stack's
 * own output at log level INFO: one JSON line per request with its request
 * id, route and correlation id and the metrics it emitted, and the same
 * metrics as one CloudWatch EMF line, as the functions print them in AWS.
 */

const t = useTestDatabase();
let stack: OfflineStack | undefined;
afterAll(async () => {
  await stack?.stop();
});
beforeAll(async () => {
  void t.pg;
  stack = await startOfflineStack({ POWERTOOLS_LOG_LEVEL: 'INFO' });
}, STACK_TIMEOUT_MS);

type Line = Record<string, any>;
const lines = (): Line[] =>
  stack!
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{') && line.endsWith('}'))
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Line];
      } catch {
        return []; // the output window's first line may be cut
      }
    });

/** The lines that match, once they are there (the stack's stdout arrives a little after its answer). */
async function printed(match: (line: Line) => boolean, count = 1): Promise<Line[]> {
  for (let waited = 0; waited < 5000; waited += 50) {
    const found = lines().filter(match);
    if (found.length >= count) return found;
    await sleep(50);
  }
  return lines().filter(match);
}

async function send(method: string, path: string, userId: number, body?: object, headers: Record<string, string> = {}) {
  const response = await fetch(stack!.baseUrl + path, {
    method,
    headers: { authorization: `Bearer ${await createLocalToken(userId)}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

it('prints one line for a like, with its request id, route and metrics, and the metrics as EMF', async () => {
  await insertUser(t.pg, 81, 0);
  await t.pg.query('INSERT INTO posts (id, author_id) VALUES (810, 81)');
  expect((await send('POST', '/posts/810/likes', 82)).status).toBe(200);

  const route = 'POST /posts/{postId}/likes';
  const [line, ...more] = await printed((l) => l.message === 'request' && l.route === route);
  expect(more).toEqual([]);
  expect(line).toMatchObject({
    level: 'INFO',
    function_request_id: expect.any(String),
    function_name: expect.stringContaining('like'),
    cold_start: expect.any(Boolean),
    correlation_id: expect.any(String),
    status: 200,
    metrics: { LikeAdded: 1 },
  });
  const [emf] = await printed((l) => l._aws?.CloudWatchMetrics && l.LikeAdded === 1);
  expect(emf!._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'LikesPointsPopular', Metrics: [{ Name: 'LikeAdded', Unit: 'Count' }] });
});

it('counts a charge, then its idempotent replay, each on its own request line', async () => {
  await insertUser(t.pg, 83, 0);
  const headers = { 'idempotency-key': 'obs-1' };
  expect((await send('POST', '/points/charge', 83, { amount: 500 }, headers)).status).toBe(200);
  expect((await send('POST', '/points/charge', 83, { amount: 500 }, headers)).status).toBe(200);
  const charges = await printed((l) => l.message === 'request' && l.route === 'POST /points/charge', 2);
  // A replay is found by the balance statement, under the lock like any charge.
  expect(charges.map((l) => l.metrics)).toEqual([
    { PointsCharged: 1, ChargedAmount: 500, LockWaitMs: expect.any(Number) },
    { IdempotentReplay: 1, LockWaitMs: expect.any(Number) },
  ]);
});

it("logs a problem under the id its body carries as instance", async () => {
  const missing = await send('DELETE', '/posts/819/likes', 84);
  expect(missing).toMatchObject({ status: 404, body: { code: 'NOT_FOUND', instance: expect.any(String) } });
  const [line] = await printed((l) => l.message === 'request' && l.correlation_id === missing.body.instance);
  expect(line).toMatchObject({ route: 'DELETE /posts/{postId}/likes', status: 404 });
});
