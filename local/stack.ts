import { db } from '../lib/platform/db';
import { DependencyUnavailableError } from '../lib/platform/errors';
import { LocalStackError, assertRedisReachable, localSettings, useLocalStackEnv } from './env';

/**
 * Points this process (a CLI that runs a scheduled function or a likes tool
 * once) at the running local stack: its Data API endpoint (DATA_API_PORT or
 * DATA_API_ENDPOINT) and Redis, or explains what to start first. `why` says
 * what needs the database.
 */
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
