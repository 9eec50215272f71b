import Redis from 'ioredis';
import { businessDate } from '../lib/platform/business-time';
import { cacheKeys, evictGroup } from '../lib/platform/cache';
import { InstanceTier } from '../lib/platform/cache/instance-tier';
import { config } from '../lib/platform/config';
import { cacheVariant, DEFAULT_QUERY, MAX_LIMIT, popularItemsJson } from '../lib/popular-items/popular-items';
import { startRedisServer } from '../tests/support/redis-server';
import { report, reportLatency } from './harness';
import { measureInterleaved } from './popular-items';

/**
 * The instance tier in front of popular items, on a Redis of the bench's own
 * (its INFO commandstats then counts this bench's commands and nothing
 * else's): a hit from memory against a raw HGET of the same bytes, the
 * Redis commands a hit inside δ costs, and the Redis reads that 1,000 hits a
 * second over 10 instances cost with δ = 1 s, on a simulated clock.
 */

const DELTA_MS = 1000;

export async function measureInstanceTier(): Promise<void> {
  const server = await startRedisServer();
  const client = new Redis(server.url);
  try {
    const timeZone = config().businessTimeZone;
    const now = new Date();
    const query = { days: 30, limit: MAX_LIMIT };
    let clock = Date.now();
    const tier = new InstanceTier({ ...config().cache.instance, freshMs: DELTA_MS }, () => clock);
    const deps = { redis: client, instance: tier, now: () => now, timeZone };
    const body = await popularItemsJson(query, deps);
    const hashKey = cacheKeys('popular-items').value(cacheVariant(businessDate(now, timeZone), query.days));

    const [rawHget, memory] = await measureInterleaved([() => client.hget(hashKey, String(query.limit)), () => popularItemsJson(query, deps)]);
    reportLatency(`raw HGET of the same body (baseline), ${body.length} B`, rawHget!);
    reportLatency('hit from memory inside δ: popularItemsJson()', memory!, rawHget);
    // A memory hit takes about as long as reading the timer twice: per-call
    // timing mostly measures the timer. Batches of calls, taking turns, say
    // what one call costs.
    const perCall = await perCallInBatches([() => client.hget(hashKey, String(query.limit)), () => popularItemsJson(query, deps)]);
    report('  per call, in batches of 1,000 taking turns: raw HGET, memory hit', `${(perCall[0]! * 1000).toFixed(2)} µs, ${(perCall[1]! * 1000).toFixed(2)} µs`);
    report('  memory hit faster than the raw HGET (goal: at least x20)', `x${(perCall[0]! / perCall[1]!).toFixed(1)} (per-call timing: x${(rawHget!.p50 / memory!.p50).toFixed(1)} p50)`);

    await client.config('RESETSTAT');
    const hits = 10_000;
    for (let i = 0; i < hits; i++) await popularItemsJson(query, deps);
    report(`Redis commands for ${hits} hits inside δ (INFO commandstats)`, `${await commandsSince(client)} (goal: 0)`);

    // 10 instances, 1,000 hits a second in turn, for 60 simulated seconds.
    const instances = Array.from({ length: 10 }, () => new InstanceTier({ ...config().cache.instance, freshMs: DELTA_MS }, () => clock));
    for (const instance of instances) await popularItemsJson(DEFAULT_QUERY, { ...deps, instance });
    await client.config('RESETSTAT');
    const seconds = 60;
    for (let ms = 0; ms < seconds * 1000; ms++) {
      clock += 1;
      await popularItemsJson(DEFAULT_QUERY, { ...deps, instance: instances[ms % instances.length] });
    }
    const reads = await commandsSince(client);
    report('Redis reads per second, 1,000 hits/s over 10 instances, δ = 1 s', `${(reads / seconds).toFixed(1)} (goal: at most 10; without the tier: 1,000)`);
  } finally {
    await evictGroup('popular-items', client).catch(() => undefined);
    client.disconnect();
    await server.stop();
  }
}

/** Median per-call time (ms) of each fn, run in batches that take turns. */
async function perCallInBatches(fns: Array<() => Promise<unknown>>, rounds = 30, batch = 1000): Promise<number[]> {
  const perRound = fns.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    for (let f = 0; f < fns.length; f++) {
      const started = performance.now();
      for (let i = 0; i < batch; i++) await fns[f]!();
      perRound[f]!.push((performance.now() - started) / batch);
    }
  }
  return perRound.map((times) => times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!);
}

/** Commands Redis ran since the last RESETSTAT (a script's own commands included), not counting the INFO that reads them. */
export async function commandsSince(client: Redis): Promise<number> {
  const info = await client.info('commandstats');
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info' && match[1] !== 'config|resetstat') calls += Number(match[2]);
  }
  return calls;
}
