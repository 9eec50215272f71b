import { setTimeout as sleep } from 'node:timers/promises';
import { useDataApiProxy } from '../fault/db-harness';
import { useTestDatabase } from '../support/database';
import { queueCharge, requestIdOf, settled, settledAll, useQueueStream } from '../support/kinesis';
import { freshRows, pointsState } from '../support/points';
import { startRedisServer, type RedisServer } from '../support/redis-server';

/**
 * Queued point requests while a dependency fails under the consumer: a
 * Redis of the file's own (paused, killed), and a fault proxy in front of
 * the Data API (replies lost, a black hole). Each case ends with exact
 * balances and histories against the outcomes: retried, then applied once
 * or REJECTED 503 with no effect.
 */

let server: RedisServer | undefined;
// Before anything reads the configuration: this file's Redis, standalone even in the cluster round.
beforeAll(async () => {
  server = await startRedisServer();
  process.env.REDIS_URL = server.url;
  process.env.REDIS_CLUSTER = 'false';
  process.env.POINT_REQUEST_RUN_TIMEOUT_MS = '1000';
});
afterAll(async () => {
  await server?.stop();
});
const stream = useQueueStream();
const proxy = useDataApiProxy();
const t = useTestDatabase();
const fresh = freshRows(() => t.pg);

const history = async (userId: number) => (await pointsState(t.pg, userId)).history.map((row) => [row.amount, row.balance_after]);

it('Redis paused while the consumer runs: the runs are retried and applied once, in order, when it answers again', async () => {
  const userId = await fresh.user(0);
  const ids = [];
  for (const amount of [1, 2, 3]) ids.push(requestIdOf(await queueCharge(userId, { amount })));
  server!.pause();
  const poller = stream.poller({ maxRetryAttempts: 50 });
  // Resumed once the consumer has met the paused Redis (its lock) and been retried.
  while (poller.invocations < 2) await sleep(50);
  const retriedWhilePaused = poller.invocations;
  server!.resume();
  const outcomes = await settledAll(userId, ids);
  await poller.stop();
  expect(retriedWhilePaused).toBeGreaterThan(1);
  expect(outcomes.map((o) => [o.status, o.result.balance])).toEqual([['DONE', 1], ['DONE', 3], ['DONE', 6]]);
  expect(await history(userId)).toEqual([[1, 1], [2, 3], [3, 6]]);
});

it('a lost reply after the run committed: the retry finds its rows and applies nothing twice', async () => {
  const userId = await fresh.user(10);
  const ids = [requestIdOf(await queueCharge(userId, { amount: 5 })), requestIdOf(await queueCharge(userId, { amount: 7 }))];
  // The next Data API reply is thrown away after the database ran the statement.
  proxy().set({ mode: 'dropAfterRequest', once: true });
  const poller = stream.poller({ maxRetryAttempts: 50 });
  const outcomes = await settledAll(userId, ids);
  await poller.stop();
  expect(proxy().drops).toBe(1);
  expect(outcomes.map((o) => o.result.balance)).toEqual([15, 22]);
  expect(await history(userId)).toEqual([[5, 15], [7, 22]]);
});

it('the database away past every retry: a request ends REJECTED 503 once it is back, with no effect, and the user’s later requests still apply', async () => {
  const userId = await fresh.user(100);
  const amounts = [11, 12];
  const sent = [];
  for (const amount of amounts) sent.push(requestIdOf(await queueCharge(userId, { amount })));
  proxy().set({ mode: 'blackhole' });
  proxy().closeAll();
  const poller = stream.poller({ maxRetryAttempts: 1 });
  // Every attempt (and the bisected halves') times out; the destination then waits for the database.
  await sleep(8000);
  proxy().set({ mode: 'pass' });
  const outcomes = await settledAll(userId, sent);
  const next = await settled(userId, requestIdOf(await queueCharge(userId, { amount: 1 })));
  await poller.stop();
  // The first ran out of retries while the database was away; the second,
  // bisected from it, had retries of its own, and may have met the database back.
  expect(outcomes[0]).toMatchObject({ status: 'REJECTED', statusCode: 503, result: { status: 503, code: 'DEPENDENCY_UNAVAILABLE' } });
  for (const outcome of outcomes) expect([`${outcome.status} ${outcome.statusCode}`]).toEqual([expect.stringMatching(/^(DONE 200|REJECTED 503)$/)]);
  // Exactly the DONE ones took effect, in order, and nothing twice.
  let balance = 100;
  const expected: number[][] = [];
  for (const [i, outcome] of [...outcomes, next].entries()) {
    if (outcome.status !== 'DONE') continue;
    const amount = i < amounts.length ? amounts[i]! : 1;
    balance += amount;
    expected.push([amount, balance]);
    expect(outcome.result.balance).toBe(balance);
  }
  expect(await history(userId)).toEqual(expected);
}, 120_000);

it('Redis gone for good while the consumer runs: REJECTED 503 after the retries, nothing applied', async () => {
  const userId = await fresh.user(0);
  const ids = [requestIdOf(await queueCharge(userId, { amount: 4 }))];
  await server!.kill();
  const poller = stream.poller({ maxRetryAttempts: 2 });
  const outcomes = await settledAll(userId, ids);
  await poller.stop();
  expect(outcomes[0]).toMatchObject({ status: 'REJECTED', statusCode: 503 });
  expect(await history(userId)).toEqual([]);
  await server!.restart();
}, 120_000);
