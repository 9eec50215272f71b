/**
 * npm run likes:rebuild   rebuilds every post's likes and every author's
 *                         received count in Redis from post_likes (plus the
 *                         changes not yet synced), on purpose
 * npm run likes:check     compares Redis with post_likes and reports drift;
 *                         exits 1 when there is some
 * Both run here against the running local stack (npm start): its Data API
 * endpoint (DATA_API_PORT or DATA_API_ENDPOINT) and Redis, with the same
 * variables as npm start.
 */
import { closeRedis } from '../lib/platform/redis/client';
import { LocalStackError, loadLuaAsText } from './env';
import { connectToLocalStack } from './stack';

async function main(command: string | undefined): Promise<void> {
  if (command !== 'rebuild' && command !== 'check') throw new LocalStackError('usage: tsx local/likes-cli.ts rebuild|check');
  await connectToLocalStack(`likes:${command} reads post_likes`);
  loadLuaAsText();
  const admin = await import('../lib/likes/admin');
  if (command === 'rebuild') {
    console.log(JSON.stringify(await admin.rebuildAll(), null, 2));
    return;
  }
  const report = await admin.checkLikes();
  console.log(JSON.stringify(report, null, 2));
  if (report.drift.length > 0) throw new LocalStackError(`${report.drift.length} drifted: npm run likes:rebuild repairs them from post_likes`);
}

if (require.main === module) {
  main(process.argv[2])
    .catch((error: Error) => {
      console.error(error instanceof LocalStackError ? error.message : error);
      process.exitCode = 1;
    })
    .finally(() => closeRedis());
}
