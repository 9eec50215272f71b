/**
 * npm run sync-likes: runs the scheduled function sync-likes once, here,
 * against the running local stack (npm start): its Data API endpoint
 * (DATA_API_PORT or DATA_API_ENDPOINT) and Redis. Run it with the same
 * variables as npm start. Exits 0 once no change is pending, 1 otherwise.
 */
import { closeRedis } from '../lib/platform/redis/client';
import { LocalStackError, loadLuaAsText } from './env';
import { connectToLocalStack } from './stack';

async function main(): Promise<void> {
  await connectToLocalStack('sync-likes writes likes to the database');
  loadLuaAsText();
  const { handler } = await import('../functions/sync-likes');
  // The schedule passes no input; without a context the function runs until caught up.
  const summary = await handler();
  console.log(JSON.stringify(summary, null, 2));
  if (!summary.caughtUp) throw new LocalStackError('sync-likes stopped before it caught up (see the log above)');
}

main()
  .catch((error: Error) => {
    console.error(error instanceof LocalStackError ? error.message : error);
    process.exitCode = 1;
  })
  .finally(() => closeRedis());
