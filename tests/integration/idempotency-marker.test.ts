import { Deadline, withDeadline } from '../../lib/platform/deadline';
import { IdempotencyInProgressError, IdempotencyKeyReusedError, InternalError } from '../../lib/platform/errors';
import { problem } from '../../lib/platform/http';
import { closeRedis, redis } from '../../lib/platform/redis/client';
import { requestHash, withRunningMarker, type IdempotencyKey } from '../../lib/points/idempotency';
import { claimScript } from '../../lib/points/scripts';
import { testRedis, type TestRedisClient } from '../support/redis-nodes';

/** The running marker of an Idempotency-Key against real Redis (lib/points/idempotency). */

let raw: TestRedisClient;
beforeAll(() => {
  raw = testRedis({ keyPrefix: process.env.REDIS_KEY_PREFIX });
});
afterAll(async () => {
  raw.disconnect();
  await closeRedis();
});

let next = 0;
const key = (body: unknown = { amount: 1 }): IdempotencyKey => ({ route: 'POST /points/charge', key: `k-${++next}`, requestHash: requestHash(body) });
const markerOf = (scope: string, idempotency: IdempotencyKey) => `idem:${scope}:${idempotency.route}:${idempotency.key}`;

function held(): { started: Promise<void>; release(): void; fn: () => Promise<string> } {
  let release!: () => void;
  let entered!: () => void;
  const started = new Promise<void>((resolve) => (entered = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  return { started, release, fn: async () => (entered(), await gate, 'done') };
}

it('answers a duplicate 409 with Retry-After while the first runs, 422 for another body, and frees the key after', async () => {
  const idem = key();
  const first = held();
  const running = withRunningMarker(1, idem, 5000, redis(), first.fn);
  await first.started;
  const duplicate = await withRunningMarker(1, idem, 5000, redis(), async () => 'twice').catch((error: Error) => error);
  expect(duplicate).toBeInstanceOf(IdempotencyInProgressError);
  expect(problem(duplicate as IdempotencyInProgressError).headers).toMatchObject({ 'retry-after': '1' });
  const other = await withRunningMarker(1, { ...idem, requestHash: requestHash({ amount: 2 }) }, 5000, redis(), async () => 'x').catch((e: Error) => e);
  expect(other).toBeInstanceOf(IdempotencyKeyReusedError);
  first.release();
  expect(await running).toBe('done');
  expect(await raw.exists(markerOf('{u:1}', idem))).toBe(0);
  expect(await withRunningMarker(1, idem, 5000, redis(), async () => 'again')).toBe('again');
});

it('is deleted only by its owner: a request whose marker expired leaves the next one’s alone', async () => {
  const idem = key();
  const slow = held();
  const first = withRunningMarker(2, idem, 50, redis(), slow.fn);
  await slow.started;
  await new Promise((resolve) => setTimeout(resolve, 80)); // its marker expired
  const second = held();
  const secondRun = withRunningMarker(2, idem, 5000, redis(), second.fn);
  await second.started;
  slow.release();
  await first;
  // The first one's release did not delete the second's marker.
  expect(await raw.get(markerOf('{u:2}', idem))).toMatch(new RegExp(`^${idem.requestHash} [0-9a-f]+$`));
  await expect(withRunningMarker(2, idem, 5000, redis(), async () => 'x')).rejects.toBeInstanceOf(IdempotencyInProgressError);
  second.release();
  await secondRun;
  expect(await raw.exists(markerOf('{u:2}', idem))).toBe(0);
});

it('sets nothing when the claim reaches Redis after the request gave up', async () => {
  const idem = key();
  // A deadline that is already past the skew margin: Redis refuses the claim (EXPIRED, a 503).
  const outcome = await withDeadline(new Deadline(0), () => withRunningMarker(3, idem, 5000, redis(), async () => 'ran')).catch((e: Error) => e);
  expect(outcome).toBeInstanceOf(Error);
  expect((outcome as Error).message).toMatch(/EXPIRED|timed out/);
  expect(await raw.exists(markerOf('{u:3}', idem))).toBe(0);
});

it('refuses a key that holds no running marker (a bug, a manual edit) with a 500, and leaves it as it is', async () => {
  const idem = key();
  // The bare hash: a format no claim writes.
  await raw.set(markerOf('{u:4}', idem), idem.requestHash, 'PX', 5000);
  const refused = await withRunningMarker(4, idem, 5000, redis(), async () => 'ran').catch((error: unknown) => error);
  expect(refused).toBeInstanceOf(InternalError);
  expect(problem(refused as InternalError).statusCode).toBe(500);
  expect(await raw.get(markerOf('{u:4}', idem))).toBe(idem.requestHash);
});

it('recognizes a re-run of the same claim (a command re-sent after a reconnect) as its own', async () => {
  const { source } = claimScript;
  const idem = key();
  const marker = markerOf('{u:5}', idem);
  const owner = `${idem.requestHash} 0123456789abcdef`;
  const claim = (value: string) => raw.eval(source, 1, marker, Date.now() + 5000, value, 5000);
  expect(await claim(owner)).toBeNull();
  expect(await claim(owner)).toBeNull(); // the same claim again: still this request's
  expect(await claim(`${idem.requestHash} fedcba9876543210`)).toBe(idem.requestHash); // another request with the same body
  expect(await raw.eval(source, 1, `${marker}:late`, Date.now() - 1, owner, 5000).catch((e: Error) => e.message)).toMatch(/^EXPIRED/);
  expect(await raw.exists(`${marker}:late`)).toBe(0);
});
