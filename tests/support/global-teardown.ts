import { Client } from 'pg';
import { testRedis, unlinkMatching } from './redis-nodes';

/** Stops what global-setup started and drops what the test files left behind. */
export default async function globalTeardown(): Promise<void> {
  const stack = globalThis.__TEST_STACK__;
  if (!stack) return;
  await stack.dataApi.close();
  const runId = process.env.TEST_RUN_ID!;
  await dropTestDatabases(stack.services.databaseUrl, runId);
  // A cluster of the run's own goes away whole; a shared Redis keeps others' keys.
  if (!stack.services.redisCluster) await dropTestKeys(stack.services.redisUrl, runId);
  await stack.services.stop();
}

async function dropTestDatabases(databaseUrl: string, runId: string): Promise<void> {
  const pg = new Client({ connectionString: databaseUrl });
  await pg.connect();
  try {
    const { rows } = await pg.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`t_${runId}_`]);
    for (const { datname } of rows) await pg.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  } finally {
    await pg.end();
  }
}

async function dropTestKeys(redisUrl: string, runId: string): Promise<void> {
  const redis = testRedis({}, redisUrl);
  try {
    await unlinkMatching(redis, `t:${runId}_*`);
  } finally {
    redis.disconnect();
  }
}
