/**
 * npm run evict-popular-items: runs the scheduled function once, here, against
 * the running local stack (npm start): its Data API endpoint (DATA_API_PORT or
 * DATA_API_ENDPOINT) and Redis. Run it with the same variables as npm start.
 */
import { closeRedis } from '../lib/platform/redis/client';
import { LocalStackError, loadLuaAsText } from './env';
import { connectToLocalStack } from './stack';

async function main(): Promise<void> {
  await connectToLocalStack('The eviction re-warms the cache from the database');
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
