/**
 * npm run evict-popular-items: runs the scheduled function once, here, against
 * the running local stack (npm start): its Data API endpoint (DATA_API_PORT or
 * DATA_API_ENDPOINT) and Redis. Run it with the same variables as npm start.
 */
import { db } from '../lib/platform/db';
import { DependencyUnavailableError } from '../lib/platform/errors';
import { closeRedis } from '../lib/platform/redis';
import { LocalStackError, assertRedisReachable, loadLuaAsText, localSettings, useLocalStackEnv } from './env';

async function main(): Promise<void> {
  const settings = localSettings();
  const endpoint = settings.dataApiEndpoint ?? `http://127.0.0.1:${settings.dataApiPort}`;
  useLocalStackEnv(settings, endpoint);
  await assertRedisReachable(settings.redisUrl);
  try {
    await db().query('SELECT 1');
  } catch (error) {
    if (!(error instanceof DependencyUnavailableError)) throw error;
    throw new LocalStackError(
      `No local Data API endpoint answers at ${endpoint}. The eviction re-warms the cache from the database, ` +
        'so start the local stack first (npm start), or set DATA_API_PORT / DATA_API_ENDPOINT to where it runs.',
    );
  }
  loadLuaAsText();
  const { handler } = await import('../functions/evict-popular-items');
  // The schedule passes no input; the function needs none.
  const result = await handler();
  console.log(JSON.stringify(result, null, 2));
}

main()
  .catch((error: Error) => {
    console.error(error instanceof LocalStackError ? error.message : error);
    process.exitCode = 1;
  })
  .finally(() => closeRedis());
