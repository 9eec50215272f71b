/**
 * npm run likes:rebuild   rebuilds every post's likes and every author's
 *                         received count in Redis from post_likes (plus the
 *                         changes not yet synced), on purpose
 * npm run likes:check     compares Redis with post_likes and reports drift;
 *                         exits 1 when there is some
 * Both run here against the running local stack (npm start): its Data API
 * endpoint (DATA_API_PORT or DATA_API_ENDPOINT) and Redis, with the same
 * variables as npm start. local/sync-likes.ts shares the connection check.
 */
import { db } from '../lib/platform/db';
import { DependencyUnavailableError } from '../lib/platform/errors';
import { closeRedis } from '../lib/platform/redis';
import { LocalStackError, assertRedisReachable, loadLuaAsText, localSettings, useLocalStackEnv } from './env';

/** Points this process at the local stack, or explains what to start first. */
export async function connectToLocalStack(why: string): Promise<void> {
  const settings = localSettings();
  const endpoint = settings.dataApiEndpoint ?? `http://127.0.0.1:${settings.dataApiPort}`;
  useLocalStackEnv(settings, endpoint);
  await assertRedisReachable(settings.redisUrl);
  try {
    await db().query('SELECT 1');
  } catch (error) {
    if (!(error instanceof DependencyUnavailableError)) throw error;
    throw new LocalStackError(
      `No local Data API endpoint answers at ${endpoint}. ${why}, ` +
        'so start the local stack first (npm start), or set DATA_API_PORT / DATA_API_ENDPOINT to where it runs.',
    );
  }
}

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
