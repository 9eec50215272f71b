import Redis from 'ioredis';
import type * as ClientModule from '../../lib/platform/redis/client';
import type * as ScriptsModule from '../../lib/platform/redis/scripts';
import { isRedisUnavailable } from '../../lib/platform/dependency-errors';
import type * as DeadlineModule from '../../lib/platform/deadline';
import { startRedisServer, type RedisServer } from '../support/redis-server';

/**
 * lib/platform/redis' client against a Redis of the test's own: what it does
 * with commands while the connection is away, a paused server, a short
 * deadline and a demoted primary (READONLY).
 */

let server: RedisServer;
let lib: typeof ClientModule & typeof ScriptsModule;
let deadlines: typeof DeadlineModule;
let raw: Redis;
const prefix = () => process.env.REDIS_KEY_PREFIX!;

beforeAll(async () => {
  server = await startRedisServer();
  // Before anything reads config (once per module registry).
  process.env.REDIS_URL = server.url;
  process.env.REDIS_CLUSTER = 'false';
  lib = { ...(await import('../../lib/platform/redis/client')), ...(await import('../../lib/platform/redis/scripts')) };
  deadlines = await import('../../lib/platform/deadline');
  raw = new Redis(server.url, { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  raw.on('error', () => {});
}, 30_000);

afterAll(async () => {
  server.resume();
  raw?.disconnect();
  await lib?.closeRedis();
  await server?.stop();
});

const elapsed = async <T>(fn: () => Promise<T>): Promise<{ ms: number; outcome: T | Error }> => {
  const started = performance.now();
  const outcome = await fn().catch((error: Error) => error);
  return { ms: performance.now() - started, outcome };
};

it('never sends later a command it gave up on while the connection was down', async () => {
  const client = lib.redis();
  await client.set('warm', '1');
  await server.kill();
  // Until the client has seen the reset, a command would still go to the dead socket and fail at once.
  while (client.status === 'ready') await new Promise((resolve) => setTimeout(resolve, 5));
  const { ms, outcome } = await elapsed(() => client.set('written-while-down', '1'));
  expect(outcome).toBeInstanceOf(Error);
  expect(isRedisUnavailable(outcome)).toBe(true);
  // It waited for the connection to come back, for REDIS_COMMAND_TIMEOUT_MS (1000), then gave up.
  expect(ms).toBeGreaterThanOrEqual(950);
  expect(ms).toBeLessThan(1600);
  await server.restart();
  // Serving again soon after the restart, with no new client.
  const started = performance.now();
  for (;;) {
    const pong = await client.ping().catch(() => undefined);
    if (pong === 'PONG') break;
    if (performance.now() - started > 3000) throw new Error('the client did not reconnect within 3 s');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  expect(performance.now() - started).toBeLessThan(2000);
  // Give a late re-send every chance to happen, then look.
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(await raw.exists(`${prefix()}written-while-down`)).toBe(0);
});

it('stops waiting for a command at the request deadline when that comes before the command timeout', async () => {
  const client = lib.redis();
  await client.ping();
  server.pause();
  try {
    const { ms, outcome } = await elapsed(() => deadlines.withDeadline(new deadlines.Deadline(300), () => client.get('k')));
    expect(isRedisUnavailable(outcome)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(800);
  } finally {
    server.resume();
  }
  // The connection recovers by itself once Redis answers again.
  await expect(client.ping()).resolves.toBe('PONG');
});

it('refuses a deadline script that reaches Redis after its cutoff, and reports it only after the cutoff', async () => {
  const source = `local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
redis.call('SET', KEYS[1], ARGV[2])
return 1`;
  const script = lib.luaScript('faultTestWrite', 1, source, { deadline: true });
  const client = lib.redis();
  expect(await lib.runScript(script, ['deadline-ok'], ['v'], client)).toBe(1);
  server.pause();
  const started = performance.now();
  const pending = deadlines.withDeadline(new deadlines.Deadline(400), () => lib.runScript(script, ['deadline-late'], ['v'], client)).catch((error: Error) => error);
  const outcome = await pending;
  const ms = performance.now() - started;
  server.resume();
  expect(isRedisUnavailable(outcome)).toBe(true);
  expect(ms).toBeGreaterThanOrEqual(390);
  expect(ms).toBeLessThan(1000);
  await expect(client.ping()).resolves.toBe('PONG');
  // It did reach Redis (frozen, then thawed), and did nothing there.
  expect(await raw.exists(`${prefix()}deadline-late`)).toBe(0);
  expect(await raw.info('errorstats')).toMatch(/errorstat_EXPIRED:count=[1-9]/);
});

it('answers READONLY (a demoted primary) as unavailable and reconnects', async () => {
  const client = lib.redis();
  await client.ping();
  const primary = await startRedisServer();
  try {
    // The server becomes a replica, as an ElastiCache primary does on failover.
    await raw.replicaof('127.0.0.1', primary.port);
    let reconnected = false;
    client.once('reconnecting', () => (reconnected = true));
    const outcome = await client.set('on-a-replica', '1').catch((error: Error) => error);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toMatch(/^READONLY/);
    expect(isRedisUnavailable(outcome)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(reconnected).toBe(true);
  } finally {
    await raw.replicaof('NO', 'ONE');
    await primary.stop();
  }
  await expect(client.set('after-promotion', '1')).resolves.toBe('OK');
});

it('has the health probe report a frozen Redis down within the request deadline', async () => {
  const { checkHealth } = await import('../../lib/platform/health');
  await lib.redis().ping();
  server.pause();
  try {
    const { ms, outcome } = await elapsed(() => deadlines.withDeadline(new deadlines.Deadline(250), () => checkHealth()));
    expect(outcome).toMatchObject({ redis: 'down' });
    expect(ms).toBeLessThan(700);
  } finally {
    server.resume();
  }
  await expect(lib.redis().ping()).resolves.toBe('PONG');
});

it('holds back the failure of a deadline script lost with its connection until its cutoff has passed', async () => {
  const script = lib.luaScript('faultTestLost', 1, `local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) then
  return redis.error_reply('EXPIRED the request gave up before this ran')
end
return redis.call('INCR', KEYS[1])`, { deadline: true });
  const client = lib.redis();
  await lib.runScript(script, ['lost'], [], client);
  server.pause();
  const started = performance.now();
  const [scripted, plain] = await Promise.all([
    deadlines.withDeadline(new deadlines.Deadline(700), () => elapsed(() => lib.runScript(script, ['lost'], [], client))),
    deadlines.withDeadline(new deadlines.Deadline(700), () => elapsed(() => client.get('plain'))),
    // The connection is reset while both are in flight (a crash, a failover).
    new Promise((resolve) => setTimeout(resolve, 150)).then(() => server.kill()),
  ]);
  console.log(`connection lost at ~150 ms: plain GET failed after ${Math.round(plain.ms)} ms, deadline script after ${Math.round(scripted.ms)} ms`);
  // Whether the script ran is unknown to the client: it says so only once Redis would refuse it anyway.
  expect(isRedisUnavailable(scripted.outcome)).toBe(true);
  expect(scripted.ms).toBeGreaterThanOrEqual(690);
  // A read has nothing to hold back.
  expect(isRedisUnavailable(plain.outcome)).toBe(true);
  expect(plain.ms).toBeLessThan(600);
  expect(performance.now() - started).toBeLessThan(1500);
  await server.restart();
});
