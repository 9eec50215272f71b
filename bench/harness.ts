import { performance } from 'node:perf_hooks';
import type { RedisClient } from '../lib/platform/redis/client';

/**
 * A tiny benchmark harness. Speed is reported as ratios against a baseline
 * measured in the same run on the same machine (a raw Redis command, say), so
 * numbers mean something across machines; no test ever asserts a duration.
 */

export interface LatencyStats {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

/** Runs fn sequentially `iterations` times after `warmup` runs; milliseconds. */
export async function measure(fn: () => Promise<unknown>, iterations = 2000, warmup = 200): Promise<LatencyStats> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    await fn();
    samples[i] = performance.now() - start;
  }
  samples.sort();
  const at = (q: number) => samples[Math.min(iterations - 1, Math.floor(q * iterations))]!;
  return { n: iterations, p50: at(0.5), p99: at(0.99), mean: samples.reduce((a, b) => a + b, 0) / iterations };
}

export interface Row {
  name: string;
  value: string;
}

const rows: Row[] = [];

export function report(name: string, value: string): void {
  rows.push({ name, value });
  console.log(`${name.padEnd(58)} ${value}`);
}

export function reportLatency(name: string, stats: LatencyStats, baseline?: LatencyStats): void {
  const ratio = baseline ? `  (x${(stats.p50 / baseline.p50).toFixed(2)} p50, x${(stats.p99 / baseline.p99).toFixed(2)} p99 vs baseline)` : '';
  report(name, `p50 ${stats.p50.toFixed(3)} ms  p99 ${stats.p99.toFixed(3)} ms${ratio}`);
}

export function section(title: string): void {
  console.log(`\n== ${title}`);
}

export function allRows(): readonly Row[] {
  return rows;
}

/**
 * Counts the commands `client` sends from now on, as the client sees them (a
 * script is one; each is its own round trip unless pipelined), until stop().
 * take() reads the count and starts it again.
 */
export function countCommands(client: RedisClient): { readonly count: number; take(): number; stop(): void } {
  const send = client.sendCommand;
  let count = 0;
  client.sendCommand = function counted(this: RedisClient, ...args: unknown[]) {
    count++;
    return Reflect.apply(send, this, args);
  } as typeof send;
  return {
    get count() {
      return count;
    },
    take() {
      const taken = count;
      count = 0;
      return taken;
    },
    stop() {
      client.sendCommand = send;
    },
  };
}
