/**
 * npm run bench: every benchmark in one run against the same Redis and
 * database, each printing ratios against a baseline measured alongside it.
 * Uses REDIS_URL and DATABASE_URL (defaults: the local services).
 */
import './quiet';
import { loadLuaAsText } from '../local/env';
import { setupBenchEnvironment } from './environment';

loadLuaAsText();

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  // The queue bench's stream: named in the environment before anything reads the configuration.
  const kinesis = only.length === 0 || only.includes('queue') ? await (await import('./queue')).startBenchKinesis() : undefined;
  const env = await setupBenchEnvironment();
  try {
    const suites: Array<[string, () => Promise<{ run: () => Promise<void> }>]> = [
      ['likes', () => import('./likes')],
      ['lock', () => import('./lock')],
      ['popular-items', () => import('./popular-items')],
      ['popular-items-scale', () => import('./popular-items-scale')],
      ['trending', () => import('./trending')],
      ['cold-start', () => import('./cold-start')],
      ['queue', () => import('./queue')],
    ];
    for (const [name, load] of suites) {
      if (only.length > 0 && !only.includes(name)) continue;
      const suite = await load();
      await suite.run();
    }
  } finally {
    await env.close();
    await kinesis?.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
